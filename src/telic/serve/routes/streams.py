"""Live streams as Server-Sent Events, read from the server's shared channels
(:mod:`telic.serve.fanout`).

``GET /runs/{id}/events`` catches up from ``?from=SEQ`` (inclusive) or the ``Last-Event-ID``
header (the last seq the client saw), then goes live, with no gap and no duplicate at the seam
or across a reconnect: each event's ``id`` is its seq. ``GET /events`` follows every run; its
ids are cursors over every run (``run:seq;TOKEN``), so a reconnect with ``Last-Event-ID``
resumes every run where the client left it. A comment line every ``heartbeat_s`` keeps
proxies from closing an idle stream. A client that has been live and then falls more than
``stream_queue`` events behind is dropped with a last ``stream.dropped`` event saying so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Final, Protocol

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from telic.access import Identity
from telic.errors import BadSubscription, SequenceError
from telic.events.patterns import Routes, compile_pattern
from telic.events.router import dense_mode
from telic.ledger.base import BaseLedger
from telic.serve.auth import Reader
from telic.serve.context import Context, Settings, context
from telic.serve.fanout import Batch, Channel, Streams, decode_cursor, encode_cursor, frame_of
from telic.serve.handoff import connection_of
from telic.transition import Transition

__all__ = [
    "HEAD",
    "EventStream",
    "Feed",
    "Handed",
    "StreamRequest",
    "open_stream",
    "router",
    "sse_frame",
]

router = APIRouter(tags=["streams"])

Ctx = Annotated[Context, Depends(context)]

_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_RETRY_MS: Final = 1000
_PAGE: Final = 512
"""Transitions read from the ledger per catch-up step."""
_HEARTBEAT: Final = b": heartbeat\n\n"
HEAD: Final = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    + b"".join(b"%s: %s\r\n" % (k.lower().encode(), v.encode()) for k, v in _HEADERS.items())
    + b"connection: close\r\n\r\n"
)
"""A stream's response head when a stream worker writes it (the body ends when the
connection does)."""


class Feed(Protocol):
    """What a stream reads from: a server's :class:`Context`, or a stream worker's own."""

    @property
    def ledger(self) -> BaseLedger: ...
    @property
    def streams(self) -> Streams: ...
    @property
    def reads(self) -> anyio.CapacityLimiter: ...
    @property
    def settings(self) -> Settings: ...


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """A checked stream request: what a stream worker needs to serve it (JSON on the wire)."""

    run: str | None
    """The run followed; None for every run (``GET /events``)."""
    kind: str = "*"
    """The event type pattern."""
    start: int | None = None
    """One run: the first seq to send (None: from now)."""
    fork_seq: int = 0
    """One run: its fork point (where its own history starts)."""
    seen: dict[str, int] | None = None
    """Every run: the resumed cursor (None: from now)."""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "run": self.run,
                "kind": self.kind,
                "start": self.start,
                "fork_seq": self.fork_seq,
                "seen": self.seen,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> StreamRequest:
        d = orjson.loads(raw)
        return cls(d["run"], d["kind"], d["start"], d["fork_seq"], d["seen"])


def open_stream(feed: Feed, req: StreamRequest) -> tuple[AsyncGenerator[bytes], Callable[[], None]]:
    """The frames of ``req`` from ``feed``'s channels, and what to call when the stream ends.
    The channel is joined now, so "from now" means now."""
    routes = _routes(req.kind)
    streams = feed.streams
    run_id = req.run
    if run_id is None:
        every = streams.open_all()
        return _all_frames(feed, every, req.seen, routes), streams.close_all
    channel = streams.open(run_id, req.fork_seq)
    cursor = channel.head + 1 if req.start is None else req.start
    return (
        _run_frames(feed, run_id, channel, cursor, routes),
        lambda: streams.close(run_id, channel),
    )


class Handed(Response):
    """The response of a stream handed to a stream worker: this process sends nothing. The
    connection was closed here on hand-off (the worker holds its own descriptor), so the
    server sees a disconnect at once."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass


async def _serve(ctx: Context, request: Request, req: StreamRequest) -> Response:
    """Hand the stream to a worker when the server has them and the connection can move;
    else serve it from this process."""
    workers = ctx.workers
    if workers is not None:
        transport = connection_of(request.scope)
        # "From now" is this server's now: the worker's view of the ledger may be a poll behind.
        vector = ctx.streams.vector
        if req.run is not None and req.start is None:
            req = replace(req, start=vector.get(req.run, req.fork_seq) + 1)
        elif req.run is None and req.seen is None:
            req = replace(req, seen=dict(vector))
        if transport is not None and workers.hand(transport, req.to_json()):
            return Handed()
    body, done = open_stream(ctx, req)
    return EventStream(body, done)


def sse_frame(event: str, data: Any, id_: str | None = None) -> bytes:
    head = b"" if id_ is None else b"id: " + id_.encode() + b"\n"
    return head + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _dropped(limit: int, last: str | None) -> bytes:
    return sse_frame(
        "stream.dropped",
        {
            "reason": f"the client fell more than {limit} events behind (it reads too slowly)",
            "last_event_id": last,
            "hint": "reconnect with Last-Event-ID to catch up from the ledger",
        },
    )


class EventStream(StreamingResponse):
    """A streaming response that ends (and frees its channel) when the client goes away."""

    media_type = "text/event-stream"

    def __init__(self, body: AsyncGenerator[bytes], done: Callable[[], None]) -> None:
        super().__init__(body, headers=_HEADERS, background=BackgroundTask(done))
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            async with asyncio.TaskGroup() as group:
                watch = group.create_task(gone())
                writer = group.create_task(self._write(send))
                await asyncio.wait([watch, writer], return_when=asyncio.FIRST_COMPLETED)
                watch.cancel()
                writer.cancel()
        except* OSError:
            pass  # the client went away mid-write
        finally:
            await self._body.aclose()
            if self.background is not None:
                await self.background()

    async def _write(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async for chunk in self._body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _encode(
    transitions: list[Transition], routes: Routes | None, ident: Callable[[Transition], str]
) -> bytes:
    if routes is None:
        return b"".join(frame_of(t, t.kind, ident(t)) for t in transitions)
    get = routes.get
    return b"".join(
        frame_of(t, etype, ident(t)) for t in transitions if (etype := get(t.kind)) is not None
    )


def _filtered(
    batch: Batch, skip: int, routes: Routes | None, ident: Callable[[Transition], str]
) -> bytes:
    if routes is None:
        return batch.blob() if skip == 0 else b"".join(batch.frames()[skip:])
    return _encode(list(batch.transitions[skip:]), routes, ident)


def _routes(kind: str) -> Routes | None:
    routes = compile_pattern(kind)
    return None if dense_mode(routes) == "own" else routes


# -- one run ------------------------------------------------------------------------------


async def _run_frames(
    ctx: Feed, run_id: str, channel: Channel, cursor: int, routes: Routes | None
) -> AsyncGenerator[bytes]:
    limit = ctx.settings.stream_queue
    heartbeat = ctx.settings.heartbeat_s
    ledger = ctx.ledger

    def ident(t: Transition) -> str:
        return str(t.seq)

    def page(lo: int, hi: int) -> bytes:
        return _encode(list(ledger.read(run_id, lo, hi)), routes, ident)

    yield f"retry: {_RETRY_MS}\n\n".encode()
    live = False
    while True:
        if cursor > channel.head:
            live = True
            if not await channel.wait(heartbeat):
                yield _HEARTBEAT
            continue
        if live and channel.head - cursor + 1 > limit:
            yield _dropped(limit, str(cursor - 1) if cursor > 1 else None)
            return
        batches = channel.since(cursor)
        if batches is None:  # older than the channel keeps: from the ledger, off the loop
            hi = min(channel.head, cursor + _PAGE - 1)
            blob = await anyio.to_thread.run_sync(page, cursor, hi, limiter=ctx.reads)
            cursor = hi + 1
        else:
            parts: list[bytes] = []
            for b in batches:
                parts.append(_filtered(b, max(0, cursor - b.lo), routes, ident))
            blob = b"".join(parts)
            cursor = batches[-1].hi + 1
        if blob:
            yield blob


def _start(from_seq: int | None, last_event_id: str | None) -> int | None:
    """Where a stream starts: after ``Last-Event-ID`` when the client sends one (a reconnect:
    a browser's ``EventSource`` comes back to the same URL, ``?from=`` and all, with the id of
    the last event it saw), else at ``?from=``, else live."""
    if last_event_id is None or not last_event_id.strip():
        return from_seq
    try:
        last = int(last_event_id.strip().rsplit(":", 1)[-1])
    except ValueError:
        raise BadSubscription(f"Last-Event-ID {last_event_id!r} is not a sequence number") from None
    if last < 0:
        raise BadSubscription(f"Last-Event-ID {last} is negative")
    return last + 1


@router.get(
    "/runs/{run_id}/events",
    summary="A run's events as SSE: catch-up, then live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_events(
    run_id: str,
    request: Request,
    ctx: Ctx,
    who: Identity = Reader,
    from_seq: Annotated[
        int | None, Query(alias="from", ge=1, description="Catch up from this seq.")
    ] = None,
    kind: Annotated[str, Query(description="Event type pattern, e.g. `tool.*`.")] = "*",
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    _routes(kind)  # a bad pattern is a 400 here, before anything is opened
    info = await anyio.to_thread.run_sync(ctx.ledger.run, run_id, limiter=ctx.reads)  # 404
    start = _start(from_seq, last_event_id)
    if start is not None and not 1 <= start <= info.head + 1:
        raise SequenceError(run_id, start, info.head)
    return await _serve(ctx, request, StreamRequest(run_id, kind, start, info.fork_seq))


# -- every run ----------------------------------------------------------------------------


async def _all_frames(
    ctx: Feed, channel: Channel, seen: dict[str, int] | None, routes: Routes | None
) -> AsyncGenerator[bytes]:
    limit = ctx.settings.stream_queue
    heartbeat = ctx.settings.heartbeat_s
    ledger = ctx.ledger
    streams = ctx.streams
    floors: dict[str, int] = {}

    def page(run_id: str, lo: int, hi: int, token: str) -> bytes:
        batch = [
            t if t.run == run_id else t._replace(run=run_id)  # a fork's prefix
            for t in ledger.read(run_id, lo, hi)
        ]
        return _encode(batch, routes, _ident(token))

    yield f"retry: {_RETRY_MS}\n\n".encode()
    cursor = channel.head + 1
    behind = seen is not None  # a resumed stream catches up first
    have = dict(streams.vector) if seen is None else dict(seen)
    live = seen is None
    while True:
        batches = None if behind else channel.since(cursor)
        behind = False
        if batches is None:
            target = dict(streams.vector)
            cursor = channel.head + 1  # what the catch-up below reaches, in the channel
            infos = await anyio.to_thread.run_sync(ledger.runs, limiter=ctx.reads)
            fork_seqs = {i.id: i.fork_seq for i in infos}
            for run_id in sorted(target):  # every transition past `have`, run by run
                hi = target[run_id]
                lo = have.get(run_id, fork_seqs.get(run_id, 0)) + 1
                if lo > hi + 1:
                    floors[run_id] = lo - 1  # the client saw more than this server published
                while lo <= hi:
                    end = min(hi, lo + _PAGE - 1)
                    token = encode_cursor(have)
                    blob = await anyio.to_thread.run_sync(
                        page, run_id, lo, end, token, limiter=ctx.reads
                    )
                    have[run_id] = end
                    lo = end + 1
                    if blob:
                        yield blob
            continue
        if not batches:
            live = True
            if not await channel.wait(heartbeat):
                yield _HEARTBEAT
            continue
        if live and channel.head - cursor + 1 > limit:
            last = max(have.items(), key=lambda kv: kv[1], default=None)
            yield _dropped(
                limit, None if last is None else f"{last[0]}:{last[1]};{encode_cursor(have)}"
            )
            return
        parts: list[bytes] = []
        for b in batches:
            skip = max(0, cursor - (b.pos - len(b.transitions) + 1))
            floor = floors.get(b.run)
            if floor is not None:
                skip = max(skip, min(len(b.transitions), floor - b.lo + 1))
                if b.hi >= floor:
                    del floors[b.run]
            if skip < len(b.transitions):
                parts.append(_filtered(b, skip, routes, _ident(b.cursor())))
                have[b.run] = b.hi
        cursor = batches[-1].pos + 1
        blob = b"".join(parts)
        if blob:
            yield blob


def _ident(token: str) -> Callable[[Transition], str]:
    return lambda t: f"{t.run}:{t.seq};{token}"


def _cursor(last_event_id: str | None) -> dict[str, int] | None:
    if last_event_id is None or not last_event_id.strip():
        return None
    head, sep, token = last_event_id.strip().partition(";")
    run_id, colon, seq = head.rpartition(":")
    if not (sep and colon and seq.isdigit()):
        raise BadSubscription(
            f"Last-Event-ID {last_event_id[:80]!r} is not an id of GET /events "
            "(`run:seq;cursor`); reconnect with the id of the last event this stream sent"
        )
    vector = decode_cursor(token)
    vector[run_id] = int(seq)
    return vector


@router.get(
    "/events",
    summary="Every run's events as SSE: catch-up from Last-Event-ID, then live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def all_events(
    request: Request,
    ctx: Ctx,
    who: Identity = Reader,
    kind: Annotated[str, Query(description="Event type pattern, e.g. `run.*`.")] = "*",
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    _routes(kind)  # a bad pattern is a 400 here, before anything is opened
    seen = _cursor(last_event_id)
    if seen is not None:
        infos = await anyio.to_thread.run_sync(ctx.ledger.runs, limiter=ctx.reads)
        heads = {i.id: i.head for i in infos}
        for run_id, seq in seen.items():
            if run_id not in heads:
                raise BadSubscription(
                    f"the Last-Event-ID cursor names run {run_id!r}, which this ledger does not hold"
                )
            if seq > heads[run_id]:
                raise SequenceError(run_id, seq, heads[run_id])
    return await _serve(ctx, request, StreamRequest(None, kind, seen=seen))
