"""The ledger protocol and the logic every backend shares.

A backend stores four things: runs (id, parent, fork point, head), transitions (one row per
sequence number, the canonical payload bytes and the chain hash), snapshots of the folded
state, and content-addressed blobs. Everything else (chaining, forks that walk their parent's
prefix, snapshots every K transitions, verification, replay) lives here, once.
"""

from __future__ import annotations

import abc
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol, runtime_checkable

import orjson
from pydantic import ValidationError

from telic.canonical import ZERO_HASH, digest, encode
from telic.errors import (
    BlobMissing,
    ChainBroken,
    NotCanonical,
    PayloadInvalid,
    PayloadTooLarge,
    ReplayMismatch,
    RunNotFound,
    SequenceConflict,
    SequenceError,
    UnknownKind,
)
from telic.kinds import CATALOGUE
from telic.reducer import Fold, State
from telic.transition import SCHEMA_VERSION, Draft, Transition

__all__ = [
    "DEFAULT_BLOB_THRESHOLD",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_SNAPSHOT_EVERY",
    "BaseLedger",
    "Ledger",
    "ReplayReport",
    "Row",
    "RunInfo",
    "VerifyReport",
]

DEFAULT_SNAPSHOT_EVERY: Final = 1000
DEFAULT_MAX_PAYLOAD: Final = 16 * 1024 * 1024
DEFAULT_BLOB_THRESHOLD: Final = 64 * 1024
_BLOB_KEY: Final = "$blob"
_HEAD_CACHE: Final = 64


class RunInfo(NamedTuple):
    """A run as the ledger knows it."""

    id: str
    parent: str | None
    """The run this one was forked from, if any."""
    fork_seq: int
    """The last parent sequence number shared with the parent (0 for a root run)."""
    head: int
    """The last sequence number."""
    head_hash: bytes
    created: int
    """Creation order: a counter that only grows."""


class Row(NamedTuple):
    """A stored transition as a backend returns it."""

    seq: int
    tick: int
    agent: str | None
    kind: str
    causes: tuple[int, ...]
    ts: int
    v: int
    payload: bytes
    hash: bytes


RawRow = tuple[int, int, str | None, str, tuple[int, ...], int, int, bytes, bytes]
"""A :class:`Row` as a plain tuple, which is what backends may yield when reading (cheaper)."""

_new: Final[Callable[[type[Any], tuple[Any, ...]], Any]] = tuple.__new__  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
"""Builds a NamedTuple from a tuple in one C call, skipping its Python-level ``__new__``;
on the hot paths (a few hundred thousand records a second) that is a third of the cost."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    run: str
    ok: bool
    checked: int
    """Transitions whose hash was recomputed."""
    first_bad: int | None = None
    reason: str | None = None
    head_hash: str = ""


@dataclass(frozen=True, slots=True)
class ReplayReport:
    run: str
    to: int
    folded: int
    checked_hashes: int
    """Recorded state hashes (snapshots, tick.completed) the fold was compared against."""
    state_hash: str
    state: State


@runtime_checkable
class Ledger(Protocol):
    """What the kernel, the event kernel and the CLI use. See :class:`BaseLedger`."""

    url: str

    def create_run(self, run_id: str) -> RunInfo: ...
    def append(
        self, run_id: str, drafts: Sequence[Draft], *, expected: int | None = None
    ) -> list[Transition]: ...
    def read(self, run_id: str, start: int = 1, end: int | None = None) -> Iterator[Transition]: ...
    def get(self, run_id: str, seq: int) -> Transition: ...
    def run(self, run_id: str) -> RunInfo: ...
    def runs(self) -> list[RunInfo]: ...
    def fork(self, run_id: str, at: int, new_id: str) -> RunInfo: ...
    def state_at(self, run_id: str, seq: int | None = None) -> State: ...
    def last_snapshot(self, run_id: str, seq: int | None = None) -> int: ...
    def verify(self, run_id: str, *, start: int = 1) -> VerifyReport: ...
    def replay(self, run_id: str, to: int | None = None) -> ReplayReport: ...
    def close(self) -> None: ...


class BaseLedger(abc.ABC):
    """Shared logic; a backend implements the storage primitives below the line."""

    url: str

    def __init__(
        self,
        *,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        blob_threshold: int = DEFAULT_BLOB_THRESHOLD,
    ) -> None:
        if snapshot_every < 1:
            raise ValueError("snapshot_every must be at least 1")
        self.snapshot_every = snapshot_every
        self.max_payload = max_payload
        self.blob_threshold = blob_threshold
        self._lock = threading.RLock()
        self._heads: OrderedDict[str, Fold] = OrderedDict()
        self._known: dict[str, RunInfo] = {}
        """Runs as this instance last wrote or read them: appends start from here and the
        store's head check catches another writer (then the entry is refreshed)."""

    # -- public API ----------------------------------------------------------------------

    def create_run(self, run_id: str) -> RunInfo:
        """Create an empty root run."""
        with self._lock:
            return self._insert_run(run_id, None, 0, ZERO_HASH)

    def run(self, run_id: str) -> RunInfo:
        info = self._load_run(run_id)
        if info is None:
            raise RunNotFound(run_id)
        return info

    def runs(self) -> list[RunInfo]:
        return self._list_runs()

    def append(
        self, run_id: str, drafts: Sequence[Draft], *, expected: int | None = None
    ) -> list[Transition]:
        """Append ``drafts`` atomically, all or nothing, in one durable commit.

        ``expected`` is the sequence number the first draft must get; if another writer got
        there first, :class:`SequenceConflict` is raised and nothing is written. Without
        ``expected`` the drafts go after whatever the head is.
        """
        if not drafts:
            return []
        with self._lock:
            info = self._known.get(run_id) or self._refresh(run_id)
            if expected is not None and expected != info.head + 1:
                info = self._refresh(run_id)  # another instance may have moved the head
                if expected != info.head + 1:
                    raise SequenceConflict(run_id, expected, info.head + 1)
            try:
                return self._append(info, drafts)
            except SequenceConflict:
                # Our idea of the head was stale. Only a caller without ``expected`` can
                # have the drafts placed after the new head instead.
                fresh = self._refresh(run_id)
                if expected is not None or fresh.head == info.head:
                    raise
                return self._append(fresh, drafts)

    def _refresh(self, run_id: str) -> RunInfo:
        info = self.run(run_id)
        self._known[run_id] = info
        return info

    def _append(self, info: RunInfo, drafts: Sequence[Draft]) -> list[Transition]:
        run_id = info.id
        fold = self._heads.get(run_id)
        if fold is None or fold.seq != info.head:
            # Built only once a snapshot is due (free for an empty run): appending to a fork
            # or a resumed run does not read its state back first.
            fold = Fold() if info.head == 0 else None
        prev = info.head_hash
        seq = info.head
        rows: list[Row] = []
        out: list[Transition] = []
        snapshots: list[tuple[int, bytes, str, bytes]] = []
        blobs: list[tuple[str, bytes]] = []
        every = self.snapshot_every
        max_payload = self.max_payload
        threshold = self.blob_threshold
        sha256 = hashlib.sha256
        try:
            for d in drafts:
                kind, payload, ts, tick, agent, causes, data = d
                size = len(payload)
                if kind not in CATALOGUE:
                    raise UnknownKind(kind)
                if size > max_payload:
                    raise PayloadTooLarge(kind, size, max_payload)
                if data is None:  # bytes of unknown origin: decode and validate them
                    data = _checked(kind, payload)
                if type(tick) is not int or type(ts) is not int:
                    raise PayloadInvalid(
                        kind, f"tick and ts must be integers, not {tick!r}, {ts!r}"
                    )
                if size > threshold:
                    blob_id = digest(payload).hex()
                    blobs.append((blob_id, payload))
                    payload = encode({_BLOB_KEY: blob_id, "size": size})
                seq += 1
                if type(causes) is not tuple:
                    causes = tuple(causes)
                h = sha256(
                    prev + _body(seq, tick, agent, kind, causes, ts, SCHEMA_VERSION, payload)
                ).digest()
                rows.append(
                    _new(Row, (seq, tick, agent, kind, causes, ts, SCHEMA_VERSION, payload, h))
                )
                t = _new(
                    Transition,
                    (run_id, seq, tick, agent, kind, causes, ts, SCHEMA_VERSION, data, prev, h),
                )
                out.append(t)
                if fold is not None:
                    fold.apply(t)
                if seq % every == 0:
                    if fold is None:
                        fold = self._fold_to(info, info.head)
                        fold.apply_all(out)
                    snapshots.append((seq, _state_bytes(fold), fold.hash(), h))
                prev = h
            self._write(run_id, info.head, rows, snapshots, blobs)
        except BaseException:
            self._heads.pop(run_id, None)  # the fold ran ahead of what was stored
            self._known.pop(run_id, None)
            raise
        self._known[run_id] = RunInfo(run_id, info.parent, info.fork_seq, seq, prev, info.created)
        if fold is not None:
            self._cache_head(run_id, fold)
        return out

    def read(self, run_id: str, start: int = 1, end: int | None = None) -> Iterator[Transition]:
        """Transitions ``start..end`` (inclusive) of a run, walking a fork's parent prefix.

        A run that does not exist or a ``start`` below 1 raises here, not on iteration.
        """
        info = self.run(run_id)
        stop = info.head if end is None else min(end, info.head)
        if start < 1:
            raise SequenceError(run_id, start, info.head)
        if start > stop:
            return iter(())
        prev = ZERO_HASH if start == 1 else self._hash_at(info, start - 1)
        return self._read(info, start, stop, prev)

    def _read(self, info: RunInfo, start: int, stop: int, prev: bytes) -> Iterator[Transition]:
        loads = orjson.loads
        for seg_run, lo, hi in self._segments(info, start, stop):
            for seq, tick, agent, kind, causes, ts, v, payload, h in self._scan(seg_run, lo, hi):
                data = self._blob_data(payload) if payload[:8] == b'{"$blob"' else loads(payload)
                yield _new(
                    Transition, (seg_run, seq, tick, agent, kind, causes, ts, v, data, prev, h)
                )
                prev = h

    def get(self, run_id: str, seq: int) -> Transition:
        info = self.run(run_id)
        if not 1 <= seq <= info.head:
            raise SequenceError(run_id, seq, info.head)
        for t in self.read(run_id, seq, seq):
            return t
        raise ChainBroken(run_id, seq, "the transition is missing")

    def fork(self, run_id: str, at: int, new_id: str) -> RunInfo:
        """Fork ``run_id`` after sequence ``at`` into ``new_id``, copy-on-write, in O(1).

        The fork shares the parent's transitions ``1..at`` (nothing is copied) and its chain
        continues from the parent's hash at ``at``.
        """
        with self._lock:
            info = self.run(run_id)
            if not 0 <= at <= info.head:
                raise SequenceError(run_id, at, info.head)
            head_hash = ZERO_HASH if at == 0 else self._hash_at(info, at)
            return self._insert_run(new_id, run_id, at, head_hash)

    def state_at(self, run_id: str, seq: int | None = None) -> State:
        """The folded state after ``seq`` (the head by default), from the nearest snapshot."""
        info = self.run(run_id)
        target = info.head if seq is None else seq
        if not 0 <= target <= info.head:
            raise SequenceError(run_id, target, info.head)
        if target == info.head:
            cached = self._heads.get(run_id)
            if cached is not None and cached.seq == target:
                return cached.state()
        return self._fold_to(info, target).peek()

    def last_snapshot(self, run_id: str, seq: int | None = None) -> int:
        """The seq of the latest snapshot at or before ``seq`` (the head by default), or 0:
        where :meth:`state_at` starts folding."""
        info = self.run(run_id)
        target = info.head if seq is None else seq
        if not 0 <= target <= info.head:
            raise SequenceError(run_id, target, info.head)
        for seg_run, lo, hi in reversed(self._segments(info, 1, target)):
            taken = self._list_snapshot_hashes(seg_run, lo, hi)
            if taken:
                return max(taken)
        return 0

    def verify(self, run_id: str, *, start: int = 1) -> VerifyReport:
        """Recompute the chain of a run (its whole lineage); name the first bad seq.

        ``start`` > 1 checks only ``start..head``, chained from the stored hash at
        ``start - 1`` (what :meth:`~telic.kernel.Kernel.resume` folds on top of a snapshot).
        """
        info = self.run(run_id)
        if not 1 <= start <= info.head + 1:
            raise SequenceError(run_id, start, info.head)
        prev = ZERO_HASH if start == 1 else self._hash_at(info, start - 1)
        expected = start
        sha256 = hashlib.sha256
        dumps = orjson.dumps
        for seg_run, lo, hi in self._segments(info, start, info.head):
            for seq, tick, agent, kind, causes, ts, v, payload, h in self._scan(seg_run, lo, hi):
                if seq != expected:
                    why = (
                        "a transition is missing"
                        if seq > expected
                        else "a transition is duplicated or out of order"
                    )
                    return VerifyReport(run_id, False, expected - start, min(seq, expected), why)
                try:
                    body = _BODY % (
                        dumps(agent),
                        dumps(causes),
                        dumps(kind),
                        payload,
                        seq,
                        tick,
                        ts,
                        v,
                    )
                except TypeError:
                    body = b""  # a field of the wrong type: it cannot match its hash
                if sha256(prev + body).digest() != h:
                    return VerifyReport(
                        run_id,
                        False,
                        seq - start,
                        seq,
                        "its hash does not match its content and the chain",
                    )
                if kind not in CATALOGUE:
                    return VerifyReport(run_id, False, seq - start, seq, f"unknown kind {kind!r}")
                if payload[:8] == b'{"$blob"':
                    ref = orjson.loads(payload)
                    blob = self._get_blob(ref[_BLOB_KEY])
                    if blob is None or digest(blob).hex() != ref[_BLOB_KEY]:
                        return VerifyReport(
                            run_id, False, seq - start, seq, "its blob is missing or altered"
                        )
                prev = h
                expected += 1
        checked = expected - start
        if expected != info.head + 1:
            return VerifyReport(
                run_id,
                False,
                checked,
                expected,
                "the run is truncated: transitions are missing before its head",
            )
        if prev != info.head_hash:
            return VerifyReport(
                run_id,
                False,
                checked,
                info.head,
                "the run's recorded head hash does not match its last transition",
            )
        return VerifyReport(run_id, True, checked, head_hash=prev.hex())

    def replay(self, run_id: str, to: int | None = None) -> ReplayReport:
        """Fold from the start and compare against every recorded state hash on the way."""
        info = self.run(run_id)
        stop = info.head if to is None else to
        if not 0 <= stop <= info.head:
            raise SequenceError(run_id, stop, info.head)
        recorded = self._snapshot_hashes(info, stop)
        fold = Fold()
        apply = fold.apply
        at = recorded.get
        checked = 0
        folded = 0
        for t in self.read(run_id, 1, stop):
            if t.kind == "tick.completed":
                actual = fold.hash()
                if actual != t.data["state_hash"]:
                    raise ReplayMismatch(run_id, t.seq, t.data["state_hash"], actual)
                checked += 1
            apply(t)
            folded += 1
            expected = at(t.seq)
            if expected is not None:
                actual = fold.hash()
                if actual != expected:
                    raise ReplayMismatch(run_id, t.seq, expected, actual)
                checked += 1
        return ReplayReport(run_id, stop, folded, checked, fold.hash(), fold.peek())

    def close(self) -> None:
        self._heads.clear()
        self._known.clear()

    def __enter__(self) -> BaseLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared internals ----------------------------------------------------------------

    def _segments(self, info: RunInfo, start: int, stop: int) -> list[tuple[str, int, int]]:
        """The (run, lo, hi) pieces that hold ``start..stop`` of ``info``'s lineage."""
        out: list[tuple[str, int, int]] = []
        current: RunInfo | None = info
        hi = stop
        while current is not None and hi >= start:
            lo = max(start, current.fork_seq + 1)
            if lo <= hi:
                out.append((current.id, lo, hi))
            hi = min(hi, current.fork_seq)
            current = None if current.parent is None else self.run(current.parent)
        out.reverse()
        return out

    def _owner(self, info: RunInfo, seq: int) -> str:
        current = info
        while seq <= current.fork_seq and current.parent is not None:
            current = self.run(current.parent)
        return current.id

    def _hash_at(self, info: RunInfo, seq: int) -> bytes:
        if seq == info.head:
            return info.head_hash
        h = self._row_hash(self._owner(info, seq), seq)
        if h is None:
            raise ChainBroken(info.id, seq, "the transition is missing")
        return h

    def _blob_data(self, ref: bytes) -> dict[str, Any]:
        blob_id: str = orjson.loads(ref)[_BLOB_KEY]
        blob = self._get_blob(blob_id)
        if blob is None:
            raise BlobMissing(blob_id, "is referenced but not stored")
        data: dict[str, Any] = orjson.loads(blob)
        return data

    def _fold_to(self, info: RunInfo, target: int) -> Fold:
        snap = self._nearest_snapshot(info, target)
        if snap is None:
            fold, start = Fold(), 1
        else:
            seq, state = snap
            fold, start = Fold.adopt(orjson.loads(state)), seq + 1
        if start <= target:
            # Folding needs no previous hashes: the rows as read, without looking up the hash
            # before ``start`` (the transitions never leave this method).
            fold.apply_all(self._read(info, start, target, ZERO_HASH))
        return fold

    def _nearest_snapshot(self, info: RunInfo, target: int) -> tuple[int, bytes] | None:
        for seg_run, lo, hi in reversed(self._segments(info, 1, target)):
            snap = self._get_snapshot(seg_run, lo, hi)
            if snap is not None:
                return snap
        return None

    def _snapshot_hashes(self, info: RunInfo, stop: int) -> dict[int, str]:
        out: dict[int, str] = {}
        for seg_run, lo, hi in self._segments(info, 1, stop):
            out.update(self._list_snapshot_hashes(seg_run, lo, hi))
        return out

    def _head_fold(self, info: RunInfo) -> Fold:
        fold = self._heads.get(info.id)
        if fold is None or fold.seq != info.head:
            fold = self._fold_to(info, info.head)
        self._cache_head(info.id, fold)
        return fold

    def _cache_head(self, run_id: str, fold: Fold) -> None:
        heads = self._heads
        heads[run_id] = fold
        heads.move_to_end(run_id)
        if len(heads) > _HEAD_CACHE:
            heads.popitem(last=False)

    def head_state(self, run_id: str) -> State:
        """The head state, live (not a copy): for the kernel, which must not change it."""
        with self._lock:
            return self._head_fold(self.run(run_id)).peek()

    # -- storage primitives (per backend) ------------------------------------------------

    @abc.abstractmethod
    def _insert_run(
        self, run_id: str, parent: str | None, fork_seq: int, head_hash: bytes
    ) -> RunInfo:
        """Create a run row; :class:`RunExists` if taken."""

    @abc.abstractmethod
    def _load_run(self, run_id: str) -> RunInfo | None: ...

    @abc.abstractmethod
    def _list_runs(self) -> list[RunInfo]: ...

    @abc.abstractmethod
    def _write(
        self,
        run_id: str,
        expected_head: int,
        rows: list[Row],
        snapshots: list[tuple[int, bytes, str, bytes]],
        blobs: list[tuple[str, bytes]],
    ) -> None:
        """Atomically store rows, snapshots and blobs and move the head, if it is still
        ``expected_head``; otherwise :class:`SequenceConflict` and nothing is written."""

    @abc.abstractmethod
    def _scan(self, run_id: str, lo: int, hi: int) -> Iterator[RawRow]:
        """The run's own rows with ``lo <= seq <= hi``, in seq order."""

    @abc.abstractmethod
    def _row_hash(self, run_id: str, seq: int) -> bytes | None: ...

    @abc.abstractmethod
    def _get_snapshot(self, run_id: str, lo: int, hi: int) -> tuple[int, bytes] | None:
        """The latest snapshot of the run with ``lo <= seq <= hi``."""

    @abc.abstractmethod
    def _list_snapshot_hashes(self, run_id: str, lo: int, hi: int) -> dict[int, str]: ...

    @abc.abstractmethod
    def _get_blob(self, blob_id: str) -> bytes | None: ...


def _state_bytes(fold: Fold) -> bytes:
    """The canonical encoding of a folded state, as :meth:`Fold.encoded` gives it.

    :func:`telic.canonical.encode` walks any value whose encoding contains ``null`` to rule
    out NaN and infinity, and a state always holds a ``null``; a fold of validated payloads
    cannot hold a non-finite number, so the walk (a millisecond per snapshot) is skipped.
    """
    return orjson.dumps(fold.peek(), option=orjson.OPT_SORT_KEYS)


_BODY: Final = b'{"agent":%b,"causes":%b,"kind":%b,"payload":%b,"seq":%d,"tick":%d,"ts":%d,"v":%d}'


def _body(
    seq: int,
    tick: int,
    agent: str | None,
    kind: str,
    causes: tuple[int, ...],
    ts: int,
    v: int,
    payload: bytes,
) -> bytes:
    """:func:`telic.transition.record_body`, byte for byte, without building a dict.

    The keys are fixed and already in sorted order; integers print the same either way.
    """
    dumps = orjson.dumps
    return _BODY % (dumps(agent), dumps(causes), dumps(kind), payload, seq, tick, ts, v)


_VALIDATORS: Final = {kind: model.__pydantic_validator__ for kind, model in CATALOGUE.items()}


def _checked(kind: str, payload: bytes) -> dict[str, Any]:
    """The payload decoded, if it is canonical JSON that fits ``kind``'s schema."""
    validator = _VALIDATORS.get(kind)
    if validator is None:
        raise UnknownKind(kind)
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PayloadInvalid(kind, f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PayloadInvalid(kind, "a payload must be a JSON object")
    try:
        validator.validate_json(payload)
    except ValidationError as exc:
        raise PayloadInvalid(kind, str(exc)) from None
    if orjson.dumps(data, option=orjson.OPT_SORT_KEYS) != payload:
        raise NotCanonical(
            f"the {kind!r} payload is not in canonical form (sorted keys, no whitespace); "
            "build drafts with telic.transition.draft or telic.canonical.encode"
        )
    return data  # pyright: ignore[reportUnknownVariableType]
