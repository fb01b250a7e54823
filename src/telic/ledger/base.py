"""The ledger protocol and the logic every backend shares.

A backend stores four things: runs (id, parent, fork point, head), transitions (one row per
sequence number, the canonical payload bytes and the chain hash), snapshots of the folded
state, and content-addressed blobs. Everything else (chaining, forks that walk their parent's
prefix, snapshots by count and by bytes (:mod:`telic.ledger.snapshots`), verification, replay) lives here, once.
"""

from __future__ import annotations

import abc
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol, Self, runtime_checkable

import orjson
from pydantic import ValidationError

from telic.canonical import ZERO_HASH, digest, encode
from telic.canonical import sha256 as canonical_sha256
from telic.errors import (
    BlobMissing,
    ChainBroken,
    LedgerError,
    LedgerOptionInvalid,
    LedgerUnavailable,
    NotCanonical,
    PayloadInvalid,
    PayloadTooLarge,
    RecordError,
    RecordInvalid,
    ReplayMismatch,
    RunNotFound,
    SequenceConflict,
    SequenceError,
    SnapshotBroken,
    TelicError,
    UnknownKind,
)
from telic.kinds import CATALOGUE
from telic.ledger.lease import Lease, Leases
from telic.ledger.snapshots import (
    DEFAULT_SNAPSHOT_BYTES,
    DEFAULT_SNAPSHOT_EVERY,
    DEFAULT_SNAPSHOT_PERCENT,
    Since,
    SnapshotPolicy,
)
from telic.reducer import Fold, State
from telic.transition import SCHEMA_VERSION, Draft, Transition, record_body

__all__ = [
    "DEFAULT_BLOB_THRESHOLD",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_SNAPSHOT_EVERY",
    "AppendGroup",
    "BaseLedger",
    "Ledger",
    "ReplayReport",
    "Row",
    "RunInfo",
    "Snapshot",
    "VerifyReport",
]

DEFAULT_MAX_PAYLOAD: Final = 16 * 1024 * 1024
DEFAULT_BLOB_THRESHOLD: Final = 64 * 1024
_BLOB_KEY: Final = "$blob"
_BLOB_PREFIX: Final = b'{"' + _BLOB_KEY.encode() + b'"'
"""How a stored payload that refers to a blob begins (its canonical JSON: one key first)."""
_HEAD_CACHE: Final = 64
_HELD_BYTES: Final = 1024 * 1024
"""The payload bytes a run's head fold may lag behind by (:class:`_Held`) before it is
brought up to the head without a snapshot being due."""


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


class Snapshot(NamedTuple):
    """A stored snapshot of a run's folded state."""

    seq: int
    state: bytes
    """The canonical JSON of the folded state after ``seq``."""
    state_hash: str
    """:func:`telic.reducer.state_hash` of that state."""
    chain: bytes
    """The chain hash of the transition at ``seq``: where the snapshot belongs."""
    digest: bytes
    """SHA-256 of ``state``, checked whenever the snapshot is read."""


RawRow = tuple[int, int, str | None, str, tuple[int, ...], int, int, bytes, bytes]
"""A :class:`Row` as a plain tuple, which is what backends may yield when reading (cheaper)."""
FoldRow = tuple[int, int, str | None, str, int, bytes]
"""What a fold reads of a row: ``(seq, tick, agent, kind, ts, payload)``."""

_new: Final[Callable[[type[Any], tuple[Any, ...]], Any]] = tuple.__new__  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
"""Builds a NamedTuple from a tuple in one C call, skipping its Python-level ``__new__``;
on the hot paths (a few hundred thousand records a second) that is a third of the cost."""


@dataclass(frozen=True, slots=True)
class AppendGroup:
    """One run's group of drafts for :meth:`BaseLedger.append_groups` (what :meth:`append`
    takes for one run)."""

    run_id: str
    drafts: Sequence[Draft]
    expected: int | None = None
    create: bool = False


HeldRow = tuple[int, int, str | None, str, tuple[int, ...], int, bytes, bytes, bytes]
"""A record appended after its run's head fold, not yet applied to it: seq, tick, agent,
kind, causes, ts, the payload as the caller gave it (before any blob), prev and hash."""


class _Held:
    """The records a run's head fold has not applied yet (appended after its seq), undecoded.

    The head fold is lazy: an append only numbers, hashes and stores its records, and they
    are decoded and applied to the fold when a snapshot is due (which needs the state), the
    head state is asked for, or they hold :data:`_HELD_BYTES` of payload."""

    __slots__ = ("rows", "size")

    def __init__(self) -> None:
        self.rows: list[HeldRow] = []
        self.size = 0


@dataclass(frozen=True, slots=True)
class PreparedGroup:
    """A group checked, numbered and hashed, ready to be stored."""

    info: RunInfo
    """The run's head it goes after."""
    create: bool
    rows: list[Row]
    snapshots: list[Snapshot]
    blobs: list[tuple[str, bytes]]
    out: list[Transition]
    fold: Fold | None
    """The head fold (None: not kept), with ``held`` the records after it up to the group's
    last."""
    held: _Held
    since: Since
    """The run's bytes since its last snapshot, past the group."""


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
    leases: Leases

    def create_run(self, run_id: str) -> RunInfo: ...
    def append(
        self,
        run_id: str,
        drafts: Sequence[Draft],
        *,
        expected: int | None = None,
        create: bool = False,
        fork_of: tuple[str, int] | None = None,
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
    def fence(self, lease: Lease) -> None: ...
    def unfence(self, run_id: str) -> None: ...
    def fenced(self, run_id: str) -> int | None: ...
    def close(self) -> None: ...


class BaseLedger(abc.ABC):
    """Shared logic; a backend implements the storage primitives below the line."""

    url: str
    leases: Leases
    """The lease operations on this store (run ownership: :mod:`telic.ledger.lease`)."""

    def __init__(
        self,
        *,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        snapshot_bytes: int = DEFAULT_SNAPSHOT_BYTES,
        snapshot_percent: int = DEFAULT_SNAPSHOT_PERCENT,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        blob_threshold: int = DEFAULT_BLOB_THRESHOLD,
        readonly: bool = False,
    ) -> None:
        """``snapshot_every``, ``snapshot_bytes`` and ``snapshot_percent``: when to snapshot
        (:class:`~telic.ledger.snapshots.SnapshotPolicy`)."""
        for name, value in (
            ("snapshot_every", snapshot_every),
            ("snapshot_bytes", snapshot_bytes),
            ("snapshot_percent", snapshot_percent),
            ("max_payload", max_payload),
            ("blob_threshold", blob_threshold),
        ):
            if type(value) is not int or value < 1:
                raise LedgerOptionInvalid(name, value, "a positive integer")
        self.readonly = readonly
        self.snapshot_every = snapshot_every
        self.snapshots = SnapshotPolicy(snapshot_every, snapshot_bytes, snapshot_percent)
        self.max_payload = max_payload
        self.blob_threshold = blob_threshold
        self._lock = threading.RLock()
        self._heads: OrderedDict[str, Fold] = OrderedDict()
        self._held: dict[str, _Held] = {}
        """Per run in ``_heads``: the records after its fold's seq, up to the head (lazy)."""
        self._sound: set[tuple[str, int]] = set()
        """(run, seq) found stored, at the top of a segment of a lineage (:meth:`_readable`)."""
        self._known: dict[str, RunInfo] = {}
        """Runs as this instance last wrote or read them: appends start from here and the
        store's head check catches another writer (then the entry is refreshed)."""
        self._fences: dict[str, int] = {}
        """The lease epoch this instance appends to each run under (:meth:`fence`)."""
        self._since: dict[str, tuple[int, Since]] = {}
        """Each run's head as this instance last wrote it and the bytes since its last
        snapshot there (at another head, rebuilt from the store: :meth:`_since_snapshot`)."""

    # -- public API ----------------------------------------------------------------------

    def create_run(self, run_id: str) -> RunInfo:
        """Create an empty root run."""
        if self.readonly:
            raise LedgerUnavailable(self.url, "it was opened read-only; runs cannot be created")
        with self._lock:
            return self._insert_run(run_id, None, 0, ZERO_HASH)

    def run(self, run_id: str) -> RunInfo:
        info = self._load_run(run_id)
        if info is None:
            raise RunNotFound(run_id)
        return info

    def runs(self) -> list[RunInfo]:
        return self._list_runs()

    def fence(self, lease: Lease) -> None:
        """Append to ``lease.run_id`` under ``lease.epoch`` from now on: the store refuses any
        of these appends (:class:`~telic.errors.Fenced`, nothing written) once the run's lease
        has another epoch or was released. See :mod:`telic.ledger.lease`."""
        with self._lock:
            self._fences[lease.run_id] = lease.epoch

    def unfence(self, run_id: str) -> None:
        """Append to ``run_id`` without an epoch again (after releasing its lease)."""
        with self._lock:
            self._fences.pop(run_id, None)

    def fenced(self, run_id: str) -> int | None:
        """The epoch this instance appends to ``run_id`` under, if it is fenced."""
        return self._fences.get(run_id)

    def append(
        self,
        run_id: str,
        drafts: Sequence[Draft],
        *,
        expected: int | None = None,
        create: bool = False,
        fork_of: tuple[str, int] | None = None,
        states: Mapping[int, tuple[bytes, str]] | None = None,
    ) -> list[Transition]:
        """Append ``drafts`` atomically, all or nothing, in one durable commit.

        ``expected`` is the sequence number the first draft must get; if another writer got
        there first, :class:`SequenceConflict` is raised and nothing is written. Without
        ``expected`` the drafts go after whatever the head is.

        ``create=True`` creates the run (a root run; :class:`RunExists` if the id is taken) in
        the same transaction as its first transitions: a crash leaves either no run or a run
        holding them all (the kernel boots runs this way, with ``run.booted`` first).

        ``fork_of=(parent, at)`` creates the run as :meth:`fork` would (a fork of ``parent``
        after ``at``), in the same transaction as its first transitions: one durable commit,
        and a crash leaves either no fork or a fork holding them (the kernel records
        ``run.forked`` this way).

        ``states``: the caller's own fold of the run gave, by seq, the state a snapshot after
        that draft would store (:meth:`Fold.encoded <telic.reducer.Fold.encoded>` and its
        state hash): the kernel folds
        every transition it adds and gives those of the seqs due by count. While the run is
        snapshotted by count only (its state is not growing), the ledger then keeps no head
        fold of its own for it (it does not decode and fold each record a second time) and
        takes a snapshot's state from here; a snapshot due at a seq not given is folded from
        the store. A growing state keeps (once built) the head fold its snapshots by bytes
        come from.
        """
        if self.readonly:
            raise LedgerUnavailable(self.url, "it was opened read-only; appends are refused")
        if not drafts:
            if create or fork_of is not None:
                raise ValueError("a run created by append needs at least one transition")
            return []
        with self._lock:
            if fork_of is not None:
                info = self._fork_point(*fork_of, run_id)
                if expected not in (None, info.head + 1):
                    raise SequenceConflict(run_id, expected, info.head + 1)
                try:
                    return self._append(info, drafts, create=True, states=states)
                finally:
                    self._known.pop(run_id, None)  # ``created`` is the store's: read it back
            if create:
                if expected not in (None, 1):
                    raise SequenceConflict(run_id, expected, 1)
                fresh = RunInfo(run_id, None, 0, 0, ZERO_HASH, 0)
                try:
                    return self._append(fresh, drafts, create=True, states=states)
                finally:
                    self._known.pop(run_id, None)  # ``created`` is the store's: read it back
            info = self._known.get(run_id) or self._refresh(run_id)
            if expected is not None and expected != info.head + 1:
                info = self._refresh(run_id)  # another instance may have moved the head
                if expected != info.head + 1:
                    raise SequenceConflict(run_id, expected, info.head + 1)
            try:
                return self._append(info, drafts, states=states)
            except SequenceConflict:
                # Our idea of the head was stale. Only a caller without ``expected`` can
                # have the drafts placed after the new head instead.
                fresh = self._refresh(run_id)
                if expected is not None or fresh.head == info.head:
                    raise
                return self._append(fresh, drafts)  # renumbered: ``states`` do not apply

    def _refresh(self, run_id: str) -> RunInfo:
        info = self._readable(run_id)
        self._known[run_id] = info
        return info

    def _readable(self, run_id: str) -> RunInfo:
        """The run, once its lineage has shown (once per instance) that the last transition of
        each of its segments is stored: the run's head, with the recorded head hash, and each
        fork point in a parent. Damage at the end of a run (a cut file, a lost row) is refused
        here, naming its first bad seq, and only for the runs that read it."""
        info = self.run(run_id)
        current, top = info, info.head
        while True:
            key = (current.id, top)
            if top > current.fork_seq and key not in self._sound:
                try:
                    last = self._row_hash(current.id, top)
                except LedgerError as exc:
                    raise self._damaged(info.id, exc) from None
                if last is None or (top == current.head and last != current.head_hash):
                    broken = ChainBroken(current.id, top, "its last transition is not stored")
                    raise self._damaged(info.id, broken)
                self._sound.add(key)
            if current.parent is None:
                return info
            current, top = self.run(current.parent), current.fork_seq

    def _damaged(self, run_id: str, exc: Exception) -> Exception:
        """What to raise for ``exc``, met reading ``run_id``: :class:`ChainBroken` naming the
        first bad seq :meth:`verify` finds, or ``exc`` itself if the run verifies."""
        try:
            report = self.verify(run_id)
        except LedgerError as again:
            return again
        if report.ok:
            return exc
        return ChainBroken(run_id, report.first_bad or 0, report.reason or str(exc))

    def _append(
        self,
        info: RunInfo,
        drafts: Sequence[Draft],
        *,
        create: bool = False,
        states: Mapping[int, tuple[bytes, str]] | None = None,
    ) -> list[Transition]:
        run_id = info.id
        try:
            group = self._number(info, drafts, create=create, states=states)
            self._write(
                run_id,
                info.head,
                group.rows,
                group.snapshots,
                group.blobs,
                create=create,
                parent=info.parent,
                epoch=self._fences.get(run_id),
            )
        except BaseException:
            self._drop(run_id)  # the fold ran ahead of what was stored
            raise
        self._stored(group)
        return group.out

    def _number(
        self,
        info: RunInfo,
        drafts: Sequence[Draft],
        *,
        create: bool = False,
        states: Mapping[int, tuple[bytes, str]] | None = None,
    ) -> PreparedGroup:
        """Check, number and hash ``drafts`` after ``info``'s head, and fold them into the
        head fold where a snapshot is due: what is written next (the caller forgets the run's
        caches if anything fails). The other records wait, undecoded, in :class:`_Held`.
        ``states``: see :meth:`append` (no head fold is kept then)."""
        run_id = info.id
        policy = self.snapshots
        every = policy.every
        kept = self._since.get(run_id)
        since, due, snapped = (
            kept[1] if kept and kept[0] == info.head else self._since_snapshot(info)
        )
        fold = self._heads.get(run_id)
        held = self._held.get(run_id)
        if fold is None or held is None or fold.seq + len(held.rows) != info.head:
            fold = held = None
        if (
            states is not None
            and info.head > 0
            and (
                due is None  # by count only: the state is not growing
                or (fold is None and since + sum(len(d.payload) for d in drafts) < due)
            )
        ):
            # The caller's fold gives the snapshots due by count (see append); one due by
            # bytes, or while the state grows, comes from a head fold, kept once built.
            fold = held = None
        if held is None:
            # Built only once a snapshot is due (free for an empty run): appending to a fork
            # or a resumed run does not read its state back first.
            fold = Fold() if info.head == 0 else None
            held = _Held()
        prev = info.head_hash
        seq = info.head
        rows: list[Row] = []
        out: list[Transition] = []
        waiting = held.rows
        waiting_size = held.size
        snapshots: list[Snapshot] = []
        blobs: list[tuple[str, bytes]] = []
        max_payload = self.max_payload
        threshold = self.blob_threshold
        sha256 = canonical_sha256
        for d in drafts:
            kind, payload, ts, tick, agent, causes, data = d
            raw = payload
            size = len(payload)
            if kind not in CATALOGUE:
                raise UnknownKind(kind)
            if size > max_payload:
                raise PayloadTooLarge(kind, size, max_payload)
            if data is None:  # bytes of unknown origin: decode and validate them
                data = _checked(kind, payload)
            if size > threshold:
                blob_id = digest(payload).hex()
                blobs.append((blob_id, payload))
                payload = encode({_BLOB_KEY: blob_id, "size": size})
                size = len(payload)
            seq += 1
            if type(causes) is not tuple:
                causes = _causes_tuple(causes)
            h = sha256(
                prev + record_body(seq, tick, agent, kind, causes, ts, SCHEMA_VERSION, payload)
            ).digest()
            rows.append(_new(Row, (seq, tick, agent, kind, causes, ts, SCHEMA_VERSION, payload, h)))
            out.append(
                _new(
                    Transition,
                    (run_id, seq, tick, agent, kind, causes, ts, SCHEMA_VERSION, data, prev, h),
                )
            )
            # The head fold keeps values of its own: ``data`` goes back to the caller (and on
            # to subscribers), who must not reach a future snapshot through it. The record
            # waits, undecoded, until a snapshot (or the head state) needs it.
            waiting.append((seq, tick, agent, kind, causes, ts, raw, prev, h))
            waiting_size += len(raw)
            since += size
            if seq % every == 0 or (due is not None and since >= due):  # policy.due, inlined
                given = None if states is None or fold is not None else states.get(seq)
                if given is not None:
                    state, state_hash = given
                else:
                    if fold is None:
                        fold = self._fold_to(info, info.head)
                    _catch_up(run_id, fold, held)
                    waiting_size = 0
                    state, state_hash = fold.encoded(), fold.hash()
                snapshots.append(
                    _new(Snapshot, (seq, state, state_hash, h, sha256(state).digest()))
                )
                since, due, snapped = policy.after(len(state), Since(since, due, snapped))
            prev = h
        held.size = waiting_size
        if fold is not None and waiting_size >= _HELD_BYTES:
            _catch_up(run_id, fold, held)
        return PreparedGroup(
            info, create, rows, snapshots, blobs, out, fold, held, Since(since, due, snapped)
        )

    def _since_snapshot(self, info: RunInfo) -> Since:
        """``info``'s bytes since its last snapshot (in its lineage), read from the store: the
        sizes of its last two snapshots and the payload bytes after each."""
        policy = self.snapshots
        taken = self._last_snapshots(info, 2)
        since = self._lineage_bytes(info, taken[0][0] + 1 if taken else 1, info.head)
        if not taken:
            return policy.first()._replace(bytes=since)
        (last, size), *earlier = taken
        before = policy.first()
        if earlier:
            seq, earlier_size = earlier[0]
            before = Since(self._lineage_bytes(info, seq + 1, last), None, earlier_size)
        else:
            before = before._replace(bytes=self._lineage_bytes(info, 1, last))
        return policy.after(size, before)._replace(bytes=since)

    def _last_snapshots(self, info: RunInfo, n: int) -> list[tuple[int, int]]:
        """The (seq, size) of up to ``n`` latest snapshots at or before ``info``'s head in its
        lineage, latest first."""
        out: list[tuple[int, int]] = []
        for seg_run, lo, hi in reversed(self._segments(info, 1, info.head)):
            while len(out) < n and lo <= hi:
                found = self._snapshot_size(seg_run, lo, hi)
                if found is None:
                    break
                out.append(found)
                hi = found[0] - 1
            if len(out) == n:
                break
        return out

    def _lineage_bytes(self, info: RunInfo, start: int, stop: int) -> int:
        """The stored payload bytes of ``start..stop`` of ``info``'s lineage."""
        return sum(
            self._payload_bytes(seg_run, lo, hi)
            for seg_run, lo, hi in self._segments(info, start, stop)
        )

    def _stored(self, group: PreparedGroup) -> None:
        """Remember what ``group`` left as its run's head, once it is stored."""
        info, last = group.info, group.rows[-1]
        self._known[info.id] = RunInfo(
            info.id, info.parent, info.fork_seq, last.seq, last.hash, info.created
        )
        self._since[info.id] = (last.seq, group.since)
        if group.fold is not None:
            self._cache_head(info.id, group.fold, group.held)
        elif info.id in self._heads:  # a fold of an older head: of no use any more
            del self._heads[info.id]
            self._held.pop(info.id, None)

    def append_groups(self, groups: Sequence[AppendGroup]) -> list[list[Transition] | TelicError]:
        """Append several runs' groups in one transaction: one durable commit (one fsync)
        for all of them, each group still all or nothing.

        The answer has one entry per group, in order: its committed transitions, or the
        error that refused it (:class:`SequenceConflict`, :class:`RunExists`, a
        :class:`~telic.errors.RecordError`...), which leaves nothing of that group written
        and the others unaffected. A failure of the commit itself (a full disk) is raised:
        then no group was written. A run may appear once (``ValueError`` otherwise); a group
        without ``expected`` that finds the head moved is refused, not placed after it. See
        :class:`telic.ledger.group.GroupCommitter` for the asyncio side.
        """
        if self.readonly:
            raise LedgerUnavailable(self.url, "it was opened read-only; appends are refused")
        ids = [g.run_id for g in groups]
        if len(set(ids)) != len(ids):
            raise ValueError("append_groups takes one group per run")
        if any(g.create and not g.drafts for g in groups):
            raise ValueError("a run created by append needs at least one transition")
        answers: list[list[Transition] | TelicError] = []
        with self._lock:
            ready: list[tuple[int, PreparedGroup]] = []
            for i, g in enumerate(groups):
                answers.append([])
                try:
                    info = self._group_head(g)
                    if g.drafts:
                        ready.append((i, self._number(info, g.drafts, create=g.create)))
                except (RecordError, LedgerError) as exc:
                    self._drop(g.run_id)
                    answers[i] = exc
            try:
                refused = self._write_groups([p for _, p in ready])
            except BaseException:
                for _, p in ready:
                    self._drop(p.info.id)
                raise
            for (i, p), exc in zip(ready, refused, strict=True):
                if exc is None:
                    self._stored(p)
                    if p.create:
                        self._known.pop(p.info.id, None)  # ``created`` is the store's
                    answers[i] = p.out
                else:
                    self._drop(p.info.id)
                    answers[i] = exc
        return answers

    def _group_head(self, g: AppendGroup) -> RunInfo:
        """The head ``g`` appends after (what :meth:`append` checks, for one group)."""
        if g.create:
            if g.expected not in (None, 1):
                raise SequenceConflict(g.run_id, g.expected, 1)
            return RunInfo(g.run_id, None, 0, 0, ZERO_HASH, 0)
        info = self._known.get(g.run_id) or self._refresh(g.run_id)
        if g.expected is not None and g.expected != info.head + 1:
            info = self._refresh(g.run_id)  # another instance may have moved the head
            if g.expected != info.head + 1:
                raise SequenceConflict(g.run_id, g.expected, info.head + 1)
        return info

    def _write_groups(self, groups: list[PreparedGroup]) -> list[TelicError | None]:
        """Store each prepared group all or nothing; what refused each (None: stored).

        This default writes each in a transaction of its own; a backend that can put them in
        one transaction (one fsync) overrides it (SQLite does)."""
        refused: list[TelicError | None] = []
        for g in groups:
            try:
                self._write(
                    g.info.id,
                    g.info.head,
                    g.rows,
                    g.snapshots,
                    g.blobs,
                    create=g.create,
                    parent=g.info.parent,
                    epoch=self._fences.get(g.info.id),
                )
                refused.append(None)
            except LedgerError as exc:
                refused.append(exc)
        return refused

    def read(self, run_id: str, start: int = 1, end: int | None = None) -> Iterator[Transition]:
        """Transitions ``start..end`` (inclusive) of a run, walking a fork's parent prefix.

        A run that does not exist or a ``start`` below 1 raises here, not on iteration.
        """
        info = self._readable(run_id)
        stop = info.head if end is None else min(end, info.head)
        if start < 1:
            raise SequenceError(run_id, start, info.head)
        if start > stop:
            return iter(())
        prev = ZERO_HASH if start == 1 else self._hash_at(info, start - 1)
        return self._read(info, start, stop, prev)

    def _read(self, info: RunInfo, start: int, stop: int, prev: bytes) -> Iterator[Transition]:
        loads = orjson.loads
        try:
            for seg_run, lo, hi in self._segments(info, start, stop):
                for seq, tick, agent, kind, causes, ts, v, payload, h in self._scan(
                    seg_run, lo, hi
                ):
                    data = (
                        self._blob_data(payload) if payload[:8] == _BLOB_PREFIX else loads(payload)
                    )
                    yield _new(
                        Transition, (seg_run, seq, tick, agent, kind, causes, ts, v, data, prev, h)
                    )
                    prev = h
        except _DAMAGE as exc:
            raise self._damaged(info.id, exc) from None

    def get(self, run_id: str, seq: int) -> Transition:
        info = self._readable(run_id)
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
        if self.readonly:
            raise LedgerUnavailable(self.url, "it was opened read-only; runs cannot be forked")
        with self._lock:
            point = self._fork_point(run_id, at, new_id)
            return self._insert_run(new_id, run_id, at, point.head_hash)

    def _fork_point(self, run_id: str, at: int, new_id: str) -> RunInfo:
        """The run ``new_id`` as a fork of ``run_id`` after ``at``, before it is stored."""
        info = self._readable(run_id)
        if not 0 <= at <= info.head:
            raise SequenceError(run_id, at, info.head)
        head_hash = ZERO_HASH if at == 0 else self._hash_at(info, at)
        return RunInfo(new_id, run_id, at, at, head_hash, 0)

    def state_at(self, run_id: str, seq: int | None = None) -> State:
        """The folded state after ``seq`` (the head by default), from the nearest snapshot."""
        info = self._readable(run_id)
        target = info.head if seq is None else seq
        if not 0 <= target <= info.head:
            raise SequenceError(run_id, target, info.head)
        if target == info.head:
            cached = self._caught_up(run_id, target)
            if cached is not None:
                return cached.state()
        try:
            return self._fold_to(info, target).peek()
        except _DAMAGE as exc:
            raise self._damaged(run_id, exc) from None

    def last_snapshot(self, run_id: str, seq: int | None = None) -> int:
        """The seq of the latest snapshot at or before ``seq`` (the head by default), or 0:
        where :meth:`state_at` starts folding."""
        info = self._readable(run_id)
        target = info.head if seq is None else seq
        if not 0 <= target <= info.head:
            raise SequenceError(run_id, target, info.head)
        for seg_run, lo, hi in reversed(self._segments(info, 1, target)):
            taken = self._snapshot_seqs(seg_run, lo, hi)
            if taken:
                return max(taken)
        return 0

    def verify(self, run_id: str, *, start: int = 1) -> VerifyReport:
        """Check everything a reader trusts in a run (its whole lineage); name the first bad
        seq.

        Recomputes the chain (every record through :func:`~telic.transition.record_body`),
        checks every blob against its digest, folds the transitions and compares the fold
        with every recorded state hash (``tick.completed``) and every snapshot (its digest,
        its place in the chain, its bytes and its state hash). ``start`` > 1 checks only
        ``start..head``, chained from the stored hash at ``start - 1``, and folds from the
        snapshot at ``start - 1`` when there is one (what :meth:`~telic.kernel.Kernel.resume`
        folds on top of); without one it checks the chain, blobs and snapshots alone.
        """
        info = self.run(run_id)
        if not 1 <= start <= info.head + 1:
            raise SequenceError(run_id, start, info.head)
        audit = _Audit(info, start, info.head)
        try:
            fold = self._audit(audit)
        except ChainBroken as exc:
            return VerifyReport(run_id, False, audit.checked, exc.seq, exc.reason)
        except ReplayMismatch as exc:
            if audit.base:  # the transitions chain: what folds wrong is the snapshot
                why = f"its snapshot does not fold to the state hash recorded at seq {exc.seq}"
                return VerifyReport(run_id, False, audit.checked, audit.base, why)
            why = "the fold before it does not match the state hash it records"
            return VerifyReport(run_id, False, audit.checked, exc.seq, why)
        if fold is not None:
            # The head state, folded from checked records only and shared with no one: what
            # ``state_at`` and the next snapshot start from (a resume reads it next).
            with self._lock:
                self._cache_head(run_id, fold)
        return VerifyReport(run_id, True, audit.checked, head_hash=audit.prev.hex())

    def replay(self, run_id: str, to: int | None = None) -> ReplayReport:
        """Fold from the start, checking the chain on the way and comparing the fold against
        every recorded state hash and snapshot; raises :class:`ChainBroken` (a bad link or
        snapshot) or :class:`ReplayMismatch` (a fold that disagrees) at the first bad seq."""
        info = self.run(run_id)
        stop = info.head if to is None else to
        if not 0 <= stop <= info.head:
            raise SequenceError(run_id, stop, info.head)
        audit = _Audit(info, 1, stop)
        fold = self._audit(audit)
        assert fold is not None  # a fold from seq 1 always exists
        return ReplayReport(run_id, stop, audit.checked, audit.hashes, fold.hash(), fold.peek())

    def close(self) -> None:
        self._forget()

    def _forget(self) -> None:
        """Drop what this instance remembers of the store (after the store was changed under
        it: the tamper hooks of the tests)."""
        self._heads.clear()
        self._held.clear()
        self._known.clear()
        self._sound.clear()
        self._since.clear()

    def __enter__(self) -> Self:
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
        """The fold after ``target``: from the nearest snapshot, placed by its chain hash and
        seq (:meth:`_adopt` without its digest), with the rows after it as stored. Like those
        rows, whose hashes are not recomputed here, the snapshot's bytes are trusted as the
        store gives them back: :meth:`verify`, :meth:`replay` and a resume's check audit both
        (see docs/ledger.md, "Reading a state")."""
        found = self._nearest_placed(info, target)
        if found is None:
            fold, start = Fold(), 1
        else:
            snap, chain = found
            fold = self._adopt(info.id, snap, chain, digested=False)
            start = snap.seq + 1
        if start <= target:
            fold.apply_all(self._fold_rows(info, start, target))
        return fold

    def _fold_rows(self, info: RunInfo, start: int, stop: int) -> Iterator[Transition]:
        """Transitions ``start..stop`` of ``info``'s lineage with what the reducer reads
        (seq, tick, agent, kind, ts, data): no causes, previous hash or hash (empty), which a
        fold does not need, so a backend can read fewer columns (:meth:`_scan_fold`). They
        never leave the fold."""
        loads = orjson.loads
        v = SCHEMA_VERSION
        for seg_run, lo, hi in self._segments(info, start, stop):
            for seq, tick, agent, kind, ts, payload in self._scan_fold(seg_run, lo, hi):
                data = self._blob_data(payload) if payload[:8] == _BLOB_PREFIX else loads(payload)
                yield _new(Transition, (seg_run, seq, tick, agent, kind, (), ts, v, data, b"", b""))

    def _scan_fold(self, run_id: str, lo: int, hi: int) -> Iterator[FoldRow]:
        """The run's own rows with ``lo <= seq <= hi`` in seq order, as ``(seq, tick, agent,
        kind, ts, payload)``: what a fold reads. A backend may read just these columns."""
        for seq, tick, agent, kind, _, ts, _, payload, _ in self._scan(run_id, lo, hi):
            yield seq, tick, agent, kind, ts, payload

    def _adopt(
        self, run_id: str, snap: Snapshot, chain: bytes | None, *, digested: bool = True
    ) -> Fold:
        """A fold from a stored snapshot, once the snapshot has shown it can be trusted: its
        bytes match its digest (unless ``digested`` is False: :meth:`_fold_to`), it sits at
        the chain position it names (``chain`` is the stored hash of the transition at its
        seq) and it is the state after that seq."""
        seq = snap.seq
        if type(snap.state) is not bytes or (digested and digest(snap.state) != snap.digest):
            raise SnapshotBroken(run_id, seq, "its snapshot's state does not match its digest")
        if chain is None or snap.chain != chain:
            raise SnapshotBroken(
                run_id, seq, "its snapshot does not belong to the transition at this seq"
            )
        try:
            state = orjson.loads(snap.state)
        except orjson.JSONDecodeError:
            raise SnapshotBroken(run_id, seq, "its snapshot is not JSON") from None
        if type(state) is not dict or state.get("seq") != seq:  # pyright: ignore[reportUnknownMemberType]
            raise SnapshotBroken(run_id, seq, "its snapshot is not the state after this seq")
        return Fold.adopt(state)  # pyright: ignore[reportUnknownArgumentType]

    def _nearest_placed(self, info: RunInfo, target: int) -> tuple[Snapshot, bytes | None] | None:
        """The latest snapshot at or before ``target`` in the lineage, and the stored hash of
        the transition at its seq (:meth:`_get_placed_snapshot`)."""
        for seg_run, lo, hi in reversed(self._segments(info, 1, target)):
            found = self._get_placed_snapshot(seg_run, lo, hi)
            if found is not None:
                return found
        return None

    def _get_placed_snapshot(
        self, run_id: str, lo: int, hi: int
    ) -> tuple[Snapshot, bytes | None] | None:
        """The run's latest snapshot with ``lo <= seq <= hi`` and the stored hash of the run's
        transition at its seq (None: not stored), where the snapshot says it belongs. A
        backend may read both in one query (SQLite does)."""
        snap = self._get_snapshot(run_id, lo, hi)
        return None if snap is None else (snap, self._row_hash(run_id, snap.seq))

    def _nearest_snapshot(self, info: RunInfo, target: int) -> tuple[str, Snapshot] | None:
        """The latest snapshot at or before ``target`` in the lineage, and the run storing it."""
        for seg_run, lo, hi in reversed(self._segments(info, 1, target)):
            snap = self._get_snapshot(seg_run, lo, hi)
            if snap is not None:
                return seg_run, snap
        return None

    def _audit(self, audit: _Audit) -> Fold | None:
        """Walk ``audit``'s range checking everything (see :meth:`verify`); returns the fold
        at the end (None when there was no state to fold from). Raises :class:`ChainBroken`,
        :class:`SnapshotBroken` or :class:`ReplayMismatch` at the first bad seq."""
        info, start, stop = audit.info, audit.start, audit.stop
        run_id = info.id
        prev = audit.prev = ZERO_HASH if start == 1 else self._hash_at(info, start - 1)
        fold: Fold | None = None
        if start == 1:
            fold = Fold()
        else:
            found = self._nearest_snapshot(info, start - 1)
            if found is not None and found[1].seq == start - 1:
                fold = self._adopt(run_id, found[1], prev)
                audit.base = start - 1
        expected = start
        sha256 = canonical_sha256
        for seg_run, lo, hi in self._segments(info, start, stop):
            snapshots = set(self._snapshot_seqs(seg_run, lo, hi))
            for seq, tick, agent, kind, causes, ts, v, payload, h in self._scan(seg_run, lo, hi):
                if seq != expected:
                    if type(seq) is not int:
                        raise ChainBroken(run_id, expected, f"its stored seq is {seq!r:.40}")
                    why = (
                        "a transition is missing"
                        if seq > expected
                        else "a transition is duplicated or out of order"
                    )
                    raise ChainBroken(run_id, min(seq, expected), why)
                try:
                    body = record_body(seq, tick, agent, kind, causes, ts, v, payload)
                except RecordInvalid as exc:
                    raise ChainBroken(run_id, seq, f"its {exc.field} {exc.detail}") from None
                if sha256(prev + body).digest() != h:
                    raise ChainBroken(
                        run_id, seq, "its hash does not match its content and the chain"
                    )
                if kind not in CATALOGUE:
                    raise ChainBroken(run_id, seq, f"unknown kind {kind!r}")
                data = self._audited_data(run_id, seq, payload)
                if fold is not None:
                    if kind == "tick.completed":
                        actual = fold.hash()
                        recorded = data.get("state_hash")
                        if actual != recorded:
                            raise ReplayMismatch(run_id, seq, str(recorded), actual)
                        audit.hashes += 1
                    t = _new(
                        Transition, (seg_run, seq, tick, agent, kind, causes, ts, v, data, prev, h)
                    )
                    try:
                        fold.apply(t)
                    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                        raise ChainBroken(
                            run_id, seq, f"its payload does not fit its kind ({exc!r:.80})"
                        ) from None
                if seq in snapshots:
                    self._audit_snapshot(run_id, seg_run, seq, h, fold)
                    audit.hashes += fold is not None
                prev = audit.prev = h
                expected += 1
                audit.checked += 1
        if expected != stop + 1:
            raise ChainBroken(
                run_id, expected, "the run is truncated: transitions are missing before its head"
            )
        if stop == info.head and prev != info.head_hash:
            raise ChainBroken(
                run_id, info.head, "the run's recorded head hash does not match its last transition"
            )
        return fold

    def _audited_data(self, run_id: str, seq: int, payload: bytes) -> dict[str, Any]:
        """The payload of a transition whose hash checked out, its blob checked too."""
        try:
            if payload[:8] == _BLOB_PREFIX:
                blob_id: str = orjson.loads(payload)[_BLOB_KEY]
                blob = self._get_blob(blob_id)
                if blob is None or digest(blob).hex() != blob_id:
                    raise ChainBroken(run_id, seq, "its blob is missing or altered")
                payload = blob
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise ChainBroken(run_id, seq, "its payload is not JSON") from None
        if type(data) is not dict:
            raise ChainBroken(run_id, seq, "its payload is not a JSON object")
        return data  # pyright: ignore[reportUnknownVariableType]

    def _audit_snapshot(
        self, run_id: str, owner: str, seq: int, chain: bytes, fold: Fold | None
    ) -> None:
        snap = self._get_snapshot(owner, seq, seq)
        if snap is None:
            return  # removed since it was listed: nothing left to trust
        if fold is None:
            self._adopt(run_id, snap, chain)  # its digest, chain and seq: all there is to check
            return
        if type(snap.state) is not bytes or digest(snap.state) != snap.digest:
            raise SnapshotBroken(run_id, seq, "its snapshot's state does not match its digest")
        if snap.chain != chain:
            raise SnapshotBroken(
                run_id, seq, "its snapshot does not belong to the transition at this seq"
            )
        if not _holds(snap.state, fold):  # the fold's seq is this one: so is the snapshot's
            raise SnapshotBroken(
                run_id, seq, "its snapshot differs from the fold of the transitions before it"
            )
        if snap.state_hash != fold.hash():
            raise SnapshotBroken(run_id, seq, "its snapshot's state hash differs from the fold's")

    def _head_fold(self, info: RunInfo) -> Fold:
        fold = self._caught_up(info.id, info.head)
        if fold is None:
            fold = self._fold_to(info, info.head)
            self._cache_head(info.id, fold)
        return fold

    def _caught_up(self, run_id: str, head: int) -> Fold | None:
        """The run's head fold brought up to ``head`` (its held records applied), if this
        instance has one that leads there."""
        with self._lock:
            fold = self._heads.get(run_id)
            held = self._held.get(run_id)
            if fold is None or held is None or fold.seq + len(held.rows) != head:
                return None
            _catch_up(run_id, fold, held)
            self._heads.move_to_end(run_id)
            return fold

    def _cache_head(self, run_id: str, fold: Fold, held: _Held | None = None) -> None:
        """Keep ``fold`` as the run's head fold, ``held`` the records after it (none)."""
        heads = self._heads
        heads[run_id] = fold
        heads.move_to_end(run_id)
        self._held[run_id] = _Held() if held is None else held
        if len(heads) > _HEAD_CACHE:
            evicted, _ = heads.popitem(last=False)
            self._held.pop(evicted, None)

    def _drop(self, run_id: str) -> None:
        """Forget what this instance keeps of the run's head (after a failed append, whose
        numbering may have run ahead of what was stored)."""
        self._heads.pop(run_id, None)
        self._held.pop(run_id, None)
        self._since.pop(run_id, None)
        self._known.pop(run_id, None)

    def head_fold(self, run_id: str) -> Fold:
        """An independent fold of the head state, which the caller owns: the head fold this
        instance keeps (a :meth:`verify` leaves it, folded from checked records) copied with
        its entry digests, so the caller's next state hash does not hash every entry again.
        What :meth:`~telic.kernel.Kernel.resume` hands the resumed run."""
        with self._lock:
            info = self._readable(run_id)
            try:
                return self._head_fold(info).copy()
            except _DAMAGE as exc:
                raise self._damaged(run_id, exc) from None

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
        snapshots: list[Snapshot],
        blobs: list[tuple[str, bytes]],
        *,
        create: bool = False,
        parent: str | None = None,
        epoch: int | None = None,
    ) -> None:
        """Atomically store rows, snapshots and blobs and move the head, if it is still
        ``expected_head``; otherwise :class:`SequenceConflict` and nothing is written.
        ``create``: insert the run's row in the same transaction (a root run, or with
        ``parent`` a fork of it after ``expected_head``), or :class:`RunExists` and nothing
        is written. ``epoch``: the lease epoch the append is
        made under, checked against the run's lease in the same transaction
        (:func:`telic.ledger.lease.check_fence`; :class:`Fenced` and nothing written)."""

    @abc.abstractmethod
    def _scan(self, run_id: str, lo: int, hi: int) -> Iterator[RawRow]:
        """The run's own rows with ``lo <= seq <= hi``, in seq order."""

    @abc.abstractmethod
    def _row_hash(self, run_id: str, seq: int) -> bytes | None: ...

    @abc.abstractmethod
    def _get_snapshot(self, run_id: str, lo: int, hi: int) -> Snapshot | None:
        """The latest snapshot of the run with ``lo <= seq <= hi``."""

    @abc.abstractmethod
    def _snapshot_seqs(self, run_id: str, lo: int, hi: int) -> list[int]:
        """The seqs of the run's snapshots with ``lo <= seq <= hi``."""

    @abc.abstractmethod
    def _get_blob(self, blob_id: str) -> bytes | None: ...

    @abc.abstractmethod
    def _snapshot_size(self, run_id: str, lo: int, hi: int) -> tuple[int, int] | None:
        """The seq and state size in bytes of the run's latest snapshot with
        ``lo <= seq <= hi`` (without reading the state)."""

    @abc.abstractmethod
    def _payload_bytes(self, run_id: str, lo: int, hi: int) -> int:
        """The stored payload bytes of the run's own rows with ``lo <= seq <= hi``."""


class _Audit:
    """Where a :meth:`BaseLedger._audit` walk is, for the report when it stops early."""

    __slots__ = ("base", "checked", "hashes", "info", "prev", "start", "stop")

    def __init__(self, info: RunInfo, start: int, stop: int) -> None:
        self.info = info
        self.start = start
        self.stop = stop
        self.checked = 0
        """Transitions whose hash was recomputed and found right."""
        self.hashes = 0
        """Recorded state hashes and snapshots the fold was compared against."""
        self.prev = ZERO_HASH
        self.base = 0
        """The snapshot the fold started from (0: the start of the run, or no fold)."""


_DAMAGE: Final = (TypeError, ValueError, KeyError, AttributeError, IndexError)
"""What reading a damaged row can raise (a NULL column, bytes that are not JSON, a state
without its keys); a reader turns it into :class:`ChainBroken` at the first bad seq."""


def _causes_tuple(causes: object) -> tuple[int, ...]:
    """Causes given as another iterable (a list): :func:`record_body` checks the items."""
    try:
        return tuple(causes)  # pyright: ignore[reportArgumentType,reportUnknownArgumentType,reportUnknownVariableType]
    except TypeError:
        raise RecordInvalid("causes", f"must be a tuple of integers, not {causes!r:.80}") from None


def _catch_up(run_id: str, fold: Fold, held: _Held) -> None:
    """Apply ``held``'s records to ``fold`` (the run's head fold), each payload decoded anew
    so that the fold shares no value with the transitions handed to the caller."""
    loads = orjson.loads
    v = SCHEMA_VERSION
    fold.apply_all(
        _new(Transition, (run_id, q, k, a, n, c, w, v, loads(r), p, x))
        for q, k, a, n, c, w, r, p, x in held.rows
    )
    held.rows.clear()
    held.size = 0


def _holds(stored: bytes, fold: Fold) -> bool:
    """Whether a snapshot's bytes hold ``fold``'s state: the same bytes (a snapshot keeps
    the state's order, :meth:`Fold.encoded`), or, for a snapshot in another order (files
    written before snapshots kept it had their keys sorted), the same canonical form, which
    tells ``1`` from ``1.0`` and ``true`` as equality of decoded values would not."""
    if stored == fold.encoded():
        return True
    try:
        again = orjson.dumps(orjson.loads(stored), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        return False
    return again == orjson.dumps(fold.peek(), option=orjson.OPT_SORT_KEYS)


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
