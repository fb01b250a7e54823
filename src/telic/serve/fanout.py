"""The server's live streams, shared: what the kernel commits is kept once, encoded once, and
read by every SSE client at its own pace.

Publishing (:meth:`Streams.publish`, called by the ledger follower for every committed
batch) does a fixed amount of work per batch whatever the number of clients: it appends the
batch to its run's :class:`Channel` (and to the all-runs channel) and schedules one wake-up
of the channel's readers a few milliseconds later (``coalesce_s``), so a burst of batches
wakes each reader once. It never encodes, never writes to a socket, never waits.

Each client is a cursor (the next position it wants). Woken, it takes every batch past its
cursor from the channel's recent batches (each encoded once, on first read, for all), joins
them and writes them in one piece. A cursor older than what the channel keeps reads the
ledger instead, a page at a time in a worker thread: a client catching up from seq 1 of a
long run costs reads, not memory, and never blocks the event loop. A client that has been
live and then falls more than ``limit`` events behind the head (it reads too slowly) is
dropped with a final ``stream.dropped`` event; it reconnects with ``Last-Event-ID``.

The all-runs channel (``GET /events``) has no sequence of its own in the ledger, so its
cursor is a vector, one seq per run (:func:`encode_cursor`): every event's ``id`` is
``run:seq;TOKEN`` where TOKEN is the vector before the event's batch, so the id names exactly
what the client has seen, and a reconnect resumes every run with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import base64
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Final

import orjson

from telic.errors import BadSubscription
from telic.transition import Transition

__all__ = ["Batch", "Channel", "Streams", "decode_cursor", "encode_cursor", "frame_of"]

_MAX_CURSOR: Final = 64 * 1024
"""The largest decoded cursor accepted (a vector of tens of thousands of runs)."""


def frame_of(t: Transition, etype: str, id_: str) -> bytes:
    """One SSE frame: the transition's JSON with its event ``type``."""
    data = t.to_json()
    data["type"] = etype
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (id_.encode(), etype.encode(), orjson.dumps(data))


def encode_cursor(vector: Mapping[str, int]) -> str:
    """A position in every run at once (run -> last seq seen), as a short opaque token."""
    raw = orjson.dumps(dict(vector), option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(zlib.compress(raw, 6)).rstrip(b"=").decode()


def decode_cursor(token: str) -> dict[str, int]:
    """The vector of :func:`encode_cursor`; :class:`BadSubscription` for anything else."""
    try:
        packed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = zlib.decompressobj()
        raw = d.decompress(packed, _MAX_CURSOR)
        if d.unconsumed_tail:
            raise ValueError("too long")
        vector = orjson.loads(raw)
    except (ValueError, zlib.error, orjson.JSONDecodeError):
        raise BadSubscription(
            "the Last-Event-ID is not a cursor of GET /events (reconnect with the id of the "
            "last event this stream sent, or without one to follow from now)"
        ) from None
    if not isinstance(vector, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in vector.items()  # pyright: ignore[reportUnknownVariableType]
    ):
        raise BadSubscription("the Last-Event-ID cursor is not a map of run ids to seqs")
    return vector  # pyright: ignore[reportUnknownVariableType]


class Batch:
    """One published batch of one run, encoded on first read and shared by every reader."""

    __slots__ = ("_blob", "_frames", "hi", "lo", "pos", "run", "token", "transitions")

    def __init__(
        self, transitions: Sequence[Transition], pos: int, token: Mapping[str, int] | None
    ) -> None:
        self.transitions = transitions
        self.run = transitions[0].run
        self.lo = transitions[0].seq
        self.hi = transitions[-1].seq
        self.pos = pos
        """Position of the batch's last event in its channel (a seq, or a count for all runs)."""
        self.token: Mapping[str, int] | str | None = token
        """The all-runs vector before this batch (all-runs channel only)."""
        self._frames: list[bytes] | None = None
        self._blob: bytes | None = None

    def cursor(self) -> str:
        token = self.token
        if token is None:
            return ""
        if not isinstance(token, str):
            token = self.token = encode_cursor(token)
        return token

    def frames(self) -> list[bytes]:
        """Each event's frame under its own kind."""
        if self._frames is None:
            token = self.cursor()
            if token:
                self._frames = [
                    frame_of(t, t.kind, f"{t.run}:{t.seq};{token}") for t in self.transitions
                ]
            else:
                self._frames = [frame_of(t, t.kind, str(t.seq)) for t in self.transitions]
        return self._frames

    def blob(self) -> bytes:
        if self._blob is None:
            self._blob = b"".join(self.frames())
        return self._blob


class Channel:
    """The recent batches of one stream, and the readers waiting for more."""

    __slots__ = ("_handle", "_waiter", "batches", "coalesce", "head", "keep", "kept", "readers")

    def __init__(self, head: int, keep: int, coalesce: float) -> None:
        self.head = head
        """Position of the last event published (a seq; for all runs, a count)."""
        self.keep = keep
        self.coalesce = coalesce
        self.batches: deque[Batch] = deque()
        self.kept = 0
        """Events in :attr:`batches`."""
        self.readers = 0
        self._waiter: asyncio.Future[None] | None = None
        self._handle: asyncio.TimerHandle | None = None

    def add(self, batch: Batch) -> None:
        self.batches.append(batch)
        self.kept += len(batch.transitions)
        self.head = batch.pos
        while self.kept - len(self.batches[0].transitions) >= self.keep:
            self.kept -= len(self.batches.popleft().transitions)
        if self._waiter is not None and self._handle is None:
            loop = self._waiter.get_loop()
            self._handle = loop.call_later(self.coalesce, self._wake)

    def _wake(self) -> None:
        self._handle = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def since(self, pos: int) -> list[Batch] | None:
        """The kept batches holding positions from ``pos`` on; None if some were let go."""
        batches = self.batches
        if pos > self.head:
            return []
        if not batches or batches[0].pos - len(batches[0].transitions) + 1 > pos:
            return None
        out: list[Batch] = []
        for b in reversed(batches):
            out.append(b)
            if b.pos - len(b.transitions) + 1 <= pos:
                break
        out.reverse()
        return out

    async def wait(self, idle: float) -> bool:
        """Wait until something is published (True) or ``idle`` s pass (False)."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(idle):
                await asyncio.shield(self._waiter)
        except TimeoutError:
            return False
        return True


class Streams:
    """Every live stream of a server: one channel per followed run, one for all runs."""

    def __init__(
        self, delivered: Mapping[str, int], *, keep: int = 4096, coalesce: float = 0.005
    ) -> None:
        self.keep = keep
        self.coalesce = coalesce
        self.vector: dict[str, int] = dict(delivered)
        """Per run, the last seq published (what the all-runs cursor is made of)."""
        self._runs: dict[str, Channel] = {}
        self.all = Channel(0, keep, coalesce)

    @property
    def open_streams(self) -> int:
        """SSE streams open now (of one run or of all)."""
        return self.all.readers + sum(c.readers for c in self._runs.values())

    def publish(self, transitions: Sequence[Transition]) -> None:
        """A committed batch of one run, in order (the follower's guarantee)."""
        if not transitions:
            return
        run_id = transitions[0].run
        channel = self._runs.get(run_id)
        if channel is not None:
            channel.add(Batch(transitions, transitions[-1].seq, None))
        vector = self.vector
        if self.all.readers:
            token = dict(vector)
            self.all.add(Batch(transitions, self.all.head + len(transitions), token))
        else:
            self.all.head += len(transitions)
        vector[run_id] = transitions[-1].seq

    def open(self, run_id: str, head: int) -> Channel:
        """The channel of ``run_id`` (made with ``head`` if no one follows it yet)."""
        channel = self._runs.get(run_id)
        if channel is None:
            channel = self._runs[run_id] = Channel(
                self.vector.get(run_id, head), self.keep, self.coalesce
            )
        channel.readers += 1
        return channel

    def close(self, run_id: str, channel: Channel) -> None:
        channel.readers -= 1
        if channel.readers <= 0 and self._runs.get(run_id) is channel:
            del self._runs[run_id]

    def open_all(self) -> Channel:
        self.all.readers += 1
        return self.all

    def close_all(self) -> None:
        self.all.readers -= 1
        if self.all.readers <= 0:
            self.all.batches.clear()
            self.all.kept = 0
