"""The one ledger test suite, run unchanged against every backend.

Each backend's test module subclasses :class:`LedgerSuite` and says how to open a fresh store,
how to open a second ledger on the same store, and how to reach under the ledger to damage it
(the tamper hooks). Everything else, including the hypothesis properties, is here, once.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telic.canonical import digest, encode
from telic.errors import (
    ChainBroken,
    Fenced,
    LeaseError,
    LeaseHeld,
    LeaseLost,
    LedgerOptionInvalid,
    NotCanonical,
    PayloadInvalid,
    PayloadTooLarge,
    RecordInvalid,
    ReplayMismatch,
    RunExists,
    RunNotFound,
    SequenceConflict,
    SequenceError,
    SnapshotBroken,
    UnknownKind,
)
from telic.kinds import (
    AgentSpawned,
    ApprovalGranted,
    MemoryUpdated,
    MessageSent,
    ObservationRecorded,
    PlanUpdated,
    TickCompleted,
    TickStarted,
)
from telic.ledger import BaseLedger, Row, Snapshot
from telic.ledger.base import FoldRow
from telic.ledger.lease import Lease
from telic.reducer import Fold, fold, state_hash
from telic.transition import Draft, Transition, chain_hash, draft, record_body

# One body of property tests runs on several backend classes: that is the point, not a smell.
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.differing_executors]
_TEXT = "abcdefghijklmnopqrstuvwxyz._-0123456789éß"
Tamper = Callable[[list[Row]], int]
"""Changes a run's stored rows in place; returns the seq verify must name first."""


def workload(n: int, *, start: int = 1, seed: int = 0) -> list[Draft]:
    """``n`` drafts of kinds that change state, deterministic in ``start`` and ``seed``."""
    out: list[Draft] = []
    for i in range(start, start + n):
        agent = f"a{(i + seed) % 3}"
        pick = (i * 7 + seed) % 6
        if pick == 0:
            p: Any = TickStarted(tick=i)
        elif pick == 1:
            p = AgentSpawned(agent=agent, role="researcher")
        elif pick == 2:
            p = MemoryUpdated(agent=agent, key=f"k{i % 5}", value={"i": i, "s": "x" * (i % 7)})
        elif pick == 3:
            p = ObservationRecorded(agent=agent, source="test", content=[i, seed])
        elif pick == 4:
            p = PlanUpdated(agent=agent, key=f"p{i % 4}", value=i)
        else:
            p = MessageSent(sender=agent, to="a0", content={"n": i})
        out.append(draft(p, ts=1_000_000 + i, tick=i // 4, agent=agent, causes=(i - 1,) * (i > 1)))
    return out


def fill(ledger: BaseLedger, run: str, n: int, *, group: int = 7) -> list[Transition]:
    """Create ``run`` and append ``n`` transitions in groups of ``group``."""
    ledger.create_run(run)
    out: list[Transition] = []
    for start in range(1, n + 1, group):
        out += ledger.append(run, workload(min(group, n - start + 1), start=start))
    return out


def _grow_drafts(start: int, stop: int) -> list[Draft]:
    """Memory entries of about 300 bytes under new keys: a state that grows every draft."""
    return [
        draft(MemoryUpdated(agent="a", key=f"k{i}", value=f"{i:06d}" * 50), ts=i)
        for i in range(start, stop)
    ]


def growing(ledger: BaseLedger, run: str, n: int) -> None:
    """Create ``run`` and append ``n`` growing drafts in groups of 5."""
    ledger.create_run(run)
    for start in range(0, n, 5):
        ledger.append(run, _grow_drafts(start, min(n, start + 5)))


def _snapshot_seqs(ledger: BaseLedger, run: str) -> list[int]:
    head = ledger.run(run).head
    return sorted({ledger.last_snapshot(run, s) for s in range(head + 1)} - {0})


def _scribble(data: Any) -> None:
    """Change in place every container a payload holds, as a careless subscriber would."""
    for value in list(data.values()) if isinstance(data, dict) else []:
        if isinstance(value, dict):
            value["scribbled"] = True
        elif isinstance(value, list):
            value.append("scribbled")


def _snapshot(ledger: BaseLedger, run: str, seq: int) -> Snapshot:
    snap = ledger._get_snapshot(run, seq, seq)  # pyright: ignore[reportPrivateUsage]
    assert snap is not None and snap.seq == seq
    return snap


def same(a: Sequence[Transition], b: Sequence[Transition]) -> bool:
    """The same records, ignoring which run they were read through."""
    return [t._replace(run="") for t in a] == [t._replace(run="") for t in b]


def _retag(row: Row, seq: int) -> Row:
    return row._replace(seq=seq)


def _edit_byte(rows: list[Row], k: int) -> int:
    row = rows[k - 1]
    payload = bytearray(row.payload)
    payload[len(payload) // 2] ^= 0x01
    rows[k - 1] = row._replace(payload=bytes(payload))
    return k


def _delete(rows: list[Row], k: int) -> int:
    del rows[k - 1]
    return k


def _insert(rows: list[Row], k: int) -> int:
    forged = rows[k - 1]._replace(payload=encode({"agent": "evil", "key": "k", "value": 1}))
    rows.insert(k - 1, forged)
    rows[k - 1 :] = [_retag(r, k + i) for i, r in enumerate(rows[k - 1 :])]
    return k


def _reorder(rows: list[Row], k: int) -> int:
    rows[k - 1], rows[k] = _retag(rows[k], k), _retag(rows[k - 1], k + 1)
    return k


def _duplicate(rows: list[Row], k: int) -> int:
    rows.insert(k, rows[k - 1])
    rows[k:] = [_retag(r, k + 1 + i) for i, r in enumerate(rows[k:])]
    return k + 1


def _truncate_middle(rows: list[Row], k: int) -> int:
    del rows[k - 1 : k + 4]
    return k


def _truncate_end(rows: list[Row], k: int) -> int:
    del rows[k - 1 :]
    return k


def _edit_hash(rows: list[Row], k: int) -> int:
    row = rows[k - 1]
    rows[k - 1] = row._replace(hash=bytes([row.hash[0] ^ 0x80]) + row.hash[1:])
    return k


TAMPERS: dict[str, Tamper] = {
    "single-byte edit": lambda rows: _edit_byte(rows, 9),
    "hash edit": lambda rows: _edit_hash(rows, 9),
    "deletion": lambda rows: _delete(rows, 9),
    "insertion": lambda rows: _insert(rows, 9),
    "reordering": lambda rows: _reorder(rows, 9),
    "duplication": lambda rows: _duplicate(rows, 9),
    "truncation in the middle": lambda rows: _truncate_middle(rows, 9),
    "truncation at the end": lambda rows: _truncate_end(rows, 15),
}


class LedgerSuite(abc.ABC):
    """Every behaviour a ledger backend must have. Subclass per backend."""

    supports_second_instance: ClassVar[bool] = True

    # -- what a backend's test module provides -------------------------------------------

    @abc.abstractmethod
    def fresh(self, **options: Any) -> contextlib.AbstractContextManager[BaseLedger]:
        """A ledger on a new, empty store, closed (and the store removed) on exit."""

    @abc.abstractmethod
    def second(self, ledger: BaseLedger) -> BaseLedger:
        """Another ledger instance on the same store as ``ledger``."""

    @abc.abstractmethod
    def stored_rows(self, ledger: BaseLedger, run: str) -> list[Row]:
        """The run's own rows as stored, in seq order."""

    @abc.abstractmethod
    def store_rows(self, ledger: BaseLedger, run: str, rows: list[Row]) -> None:
        """Replace the run's own stored rows with ``rows`` (tampering)."""

    @abc.abstractmethod
    def tamper_blob(self, ledger: BaseLedger, blob_id: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def tamper_snapshot(self, ledger: BaseLedger, run: str, seq: int, **fields: Any) -> None:
        """Set columns (``state``, ``state_hash``, ``chain``, ``digest``) of a stored snapshot."""

    @abc.abstractmethod
    def age(self, ledger: BaseLedger, seconds: float) -> None:
        """Make every stored lease ``seconds`` older (acquired, renewed and expiry times), as
        if the lease clock had moved on: expiry tests without waiting."""

    @pytest.fixture
    def ledger(self) -> Iterator[BaseLedger]:
        with self.fresh() as ledger:
            yield ledger

    # -- appends -------------------------------------------------------------------------

    def test_append_numbers_densely_and_chains(self, ledger: BaseLedger) -> None:
        info = ledger.create_run("r")
        assert (info.head, info.parent) == (0, None)
        first = ledger.append("r", workload(3))
        second = ledger.append("r", workload(4, start=4), expected=4)
        written = first + second
        assert [t.seq for t in written] == [1, 2, 3, 4, 5, 6, 7]
        assert written[0].prev_hash == bytes(32)
        for before, after in itertools.pairwise(written):
            assert after.prev_hash == before.hash
        for t in written:
            body = record_body(t.seq, t.tick, t.agent, t.kind, t.causes, t.ts, t.v, encode(t.data))
            assert t.hash == chain_hash(t.prev_hash, body)
        assert list(ledger.read("r")) == written
        assert ledger.get("r", 5) == written[4]
        assert ledger.run("r").head == 7
        assert ledger.run("r").head_hash == written[-1].hash
        assert ledger.append("r", []) == []

    def test_create_run_twice_is_refused(self, ledger: BaseLedger) -> None:
        ledger.create_run("r")
        with pytest.raises(RunExists, match="'r' already exists"):
            ledger.create_run("r")
        assert [r.id for r in ledger.runs()] == ["r"]

    def test_runs_lists_in_creation_order(self, ledger: BaseLedger) -> None:
        for name in ("b", "a", "c"):
            ledger.create_run(name)
        ledger.append("a", workload(2))
        ledger.fork("a", 1, "d")
        runs = ledger.runs()
        assert [r.id for r in runs] == ["b", "a", "c", "d"]
        assert [r.created for r in runs] == sorted(r.created for r in runs)
        assert runs[3].parent == "a"

    @pytest.mark.parametrize(
        ("bad", "error"),
        [
            (Draft("run.exploded", b"{}", 1), UnknownKind),
            (Draft("tick.started", b'{"tick":"soon"}', 1), PayloadInvalid),
            (Draft("tick.started", b"{not json", 1), PayloadInvalid),
            (Draft("tick.started", b"[1]", 1), PayloadInvalid),
            (Draft("tick.started", b'{"tick": 1}', 1), NotCanonical),
            (Draft("tick.started", b'{"tick":1,"zzz":' + b"9" * 300 + b"}", 1), PayloadTooLarge),
        ],
        ids=["unknown kind", "schema", "not json", "not an object", "not canonical", "too large"],
    )
    def test_a_bad_draft_in_the_middle_writes_nothing(
        self, bad: Draft, error: type[Exception]
    ) -> None:
        with self.fresh(max_payload=256) as ledger:
            fill(ledger, "r", 4)
            before = list(ledger.read("r"))
            group = [*workload(3, start=5), bad, *workload(3, start=8)]
            with pytest.raises(error):
                ledger.append("r", group)
            assert list(ledger.read("r")) == before
            assert len(self.stored_rows(ledger, "r")) == 4
            assert ledger.run("r").head == 4
            after = ledger.append("r", workload(2, start=5))
            assert [t.seq for t in after] == [5, 6]
            assert ledger.verify("r").ok

    def test_error_messages_say_what_was_wrong(self) -> None:
        with self.fresh(max_payload=100) as ledger:
            ledger.create_run("r")
            with pytest.raises(UnknownKind, match=r"'run\.exploded'"):
                ledger.append("r", [Draft("run.exploded", b"{}", 1)])
            big = draft(ObservationRecorded(agent="a", source="s", content="x" * 200), ts=1)
            with pytest.raises(PayloadTooLarge, match=r"is 2\d\d bytes, over the limit of 100"):
                ledger.append("r", [big])

    def test_expected_sequence_conflict(self, ledger: BaseLedger) -> None:
        fill(ledger, "r", 3)
        with pytest.raises(SequenceConflict, match="expected next sequence 3") as info:
            ledger.append("r", workload(1, start=4), expected=3)
        assert (info.value.expected, info.value.actual) == (3, 4)
        with pytest.raises(SequenceConflict):
            ledger.append("r", workload(1, start=4), expected=9)
        assert ledger.run("r").head == 3
        assert [t.seq for t in ledger.append("r", workload(1, start=4), expected=4)] == [4]

    def test_two_instances_on_one_store_conflict_and_never_fork_the_chain(
        self, ledger: BaseLedger
    ) -> None:
        if not self.supports_second_instance:
            pytest.skip("this backend cannot open a second instance on one store")
        fill(ledger, "r", 5)
        other = self.second(ledger)
        try:
            assert ledger.state_at("r") == other.state_at("r")  # both have a warm head cache
            other.append("r", workload(2, start=6), expected=6)
            with pytest.raises(SequenceConflict):
                ledger.append("r", workload(2, start=6), expected=6)
            written = ledger.append("r", workload(1, start=8), expected=8)
            assert written[0].prev_hash == other.get("r", 7).hash
            assert other.run("r").head == 8
            everything = list(other.read("r"))
            assert ledger.state_at("r") == other.state_at("r") == fold(everything)
            assert ledger.verify("r").ok
        finally:
            other.close()

    def test_concurrent_writers_get_conflicts_never_gaps_or_duplicates(
        self, ledger: BaseLedger
    ) -> None:
        if not self.supports_second_instance:
            pytest.skip("this backend cannot open a second instance on one store")
        ledger.create_run("r")
        writers = [ledger, self.second(ledger)]
        won: list[list[int]] = [[], []]
        conflicts = [0, 0]
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def write(i: int) -> None:
            try:
                start.wait()
                me = writers[i]
                while len(won[i]) < 15:
                    head = me.run("r").head
                    try:
                        got = me.append("r", workload(2, start=head + 1, seed=i), expected=head + 1)
                    except SequenceConflict:
                        conflicts[i] += 1
                        continue
                    won[i].append(got[0].seq)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        writers[1].close()
        assert errors == []
        seqs = [t.seq for t in ledger.read("r")]
        assert seqs == list(range(1, 61))
        assert sorted(won[0] + won[1]) == list(range(1, 61, 2))
        assert ledger.verify("r").ok

    def test_readers_in_other_threads_never_see_part_of_a_group(self, ledger: BaseLedger) -> None:
        ledger.create_run("r")
        done = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def read() -> None:
            try:
                while not done.is_set():
                    ticks = [t.tick for t in ledger.read("r")]
                    seen.append(len(ticks))
                    assert len(ticks) % 5 == 0, ticks
                    assert ticks == sorted(ticks)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for g in range(20):
                group = [d._replace(tick=g) for d in workload(5, start=g * 5 + 1)]
                ledger.append("r", group)
        finally:
            done.set()
            reader.join()
        assert errors == []
        assert seen
        assert ledger.run("r").head == 100

    def test_unknown_run(self, ledger: BaseLedger) -> None:
        calls: list[Callable[[], object]] = [
            lambda: ledger.run("nope"),
            lambda: ledger.append("nope", workload(1)),
            lambda: ledger.read("nope"),
            lambda: ledger.get("nope", 1),
            lambda: ledger.fork("nope", 0, "f"),
            lambda: ledger.state_at("nope"),
            lambda: ledger.verify("nope"),
            lambda: ledger.replay("nope"),
        ]
        for call in calls:
            with pytest.raises(RunNotFound, match="no run 'nope'"):
                call()

    # -- reads ---------------------------------------------------------------------------

    def test_read_ranges(self, ledger: BaseLedger) -> None:
        written = fill(ledger, "r", 20)
        assert list(ledger.read("r", 3, 7)) == written[2:7]
        assert list(ledger.read("r", 18)) == written[17:]
        assert list(ledger.read("r", 15, 99)) == written[14:]
        assert list(ledger.read("r", 21)) == []
        assert list(ledger.read("r", 8, 7)) == []
        assert ledger.read("r", 7, 7).__next__().prev_hash == written[5].hash
        with pytest.raises(SequenceError):
            ledger.read("r", 0)
        for bad in (0, 21, -1):
            with pytest.raises(SequenceError, match=r"holds 1\.\.20"):
                ledger.get("r", bad)

    def test_a_run_of_many_pages_reads_whole(self) -> None:
        with self.fresh(snapshot_every=5000) as ledger:
            written = fill(ledger, "r", 9000, group=3000)
            got = list(ledger.read("r"))
            assert len(got) == 9000
            assert got == written
            assert ledger.verify("r").checked == 9000

    # -- blobs ---------------------------------------------------------------------------

    def test_large_payloads_go_to_blobs_and_stay_in_the_chain(self) -> None:
        with self.fresh(blob_threshold=200) as ledger:
            ledger.create_run("r")
            big = {"text": "y" * 1000, "n": 1}
            drafts = [
                *workload(2),
                draft(ObservationRecorded(agent="a0", source="web", content=big), ts=5),
                draft(ObservationRecorded(agent="a0", source="web", content=big), ts=6),
                *workload(2, start=5),
            ]
            written = ledger.append("r", drafts)
            stored = self.stored_rows(ledger, "r")
            assert stored[2].payload.startswith(b'{"$blob"')
            assert stored[2].payload == stored[3].payload  # content-addressed
            assert len(stored[2].payload) < 200
            assert not stored[1].payload.startswith(b'{"$blob"')
            got = list(ledger.read("r"))
            assert got == written
            assert got[2].data["content"] == big
            assert ledger.verify("r").ok
            assert fold(got) == ledger.state_at("r")

            blob_id = stored[2].payload.decode().split('"')[3]
            self.tamper_blob(ledger, blob_id, encode({"agent": "a0", "source": "web"}))
            report = ledger.verify("r")
            assert (report.ok, report.first_bad) == (False, 3)
            assert "blob" in (report.reason or "")

    # -- forks ---------------------------------------------------------------------------

    def test_fork_copies_nothing_and_continues_the_chain(self, ledger: BaseLedger) -> None:
        parent = fill(ledger, "p", 12)
        info = ledger.fork("p", 8, "f")
        assert (info.parent, info.fork_seq, info.head) == ("p", 8, 8)
        assert info.head_hash == parent[7].hash
        assert self.stored_rows(ledger, "f") == []
        assert same(list(ledger.read("f")), parent[:8])
        assert {t.run for t in ledger.read("f")} == {"p"}  # the run each was written to
        assert ledger.get("f", 3).hash == parent[2].hash
        more = ledger.append("f", workload(3, start=50), expected=9)
        assert [t.seq for t in more] == [9, 10, 11]
        assert more[0].prev_hash == parent[7].hash
        assert len(self.stored_rows(ledger, "f")) == 3
        assert [t.run for t in ledger.read("f", 8, 9)] == ["p", "f"]
        assert ledger.verify("f").ok
        assert ledger.state_at("f") == fold([*parent[:8], *more])
        assert list(ledger.read("p")) == parent  # the parent is untouched
        assert ledger.verify("p").ok

    def test_fork_at_the_ends(self, ledger: BaseLedger) -> None:
        parent = fill(ledger, "p", 5)
        empty = ledger.fork("p", 0, "zero")
        assert (empty.head, empty.head_hash) == (0, bytes(32))
        assert list(ledger.read("zero")) == []
        assert ledger.append("zero", workload(1))[0].seq == 1
        whole = ledger.fork("p", 5, "whole")
        assert whole.head_hash == parent[-1].hash
        with pytest.raises(SequenceError, match="outside run 'p'"):
            ledger.fork("p", 6, "beyond")
        with pytest.raises(SequenceError):
            ledger.fork("p", -1, "before")
        with pytest.raises(RunExists):
            ledger.fork("p", 2, "whole")
        assert "beyond" not in {r.id for r in ledger.runs()}

    def test_forks_of_forks(self, ledger: BaseLedger) -> None:
        a = fill(ledger, "a", 10)
        ledger.fork("a", 6, "b")
        b = ledger.append("b", workload(4, start=100))
        ledger.fork("b", 8, "c")
        c = ledger.append("c", workload(3, start=200))
        ledger.append("a", workload(2, start=11))  # the ancestors keep growing
        ledger.append("b", workload(1, start=300))
        expected = [*a[:6], *b[:2], *c]
        assert same(list(ledger.read("c")), expected)
        assert same(list(ledger.read("c", 5, 10)), expected[4:10])
        assert ledger.verify("c").ok
        assert ledger.verify("c").checked == 11
        for seq in range(12):
            assert ledger.state_at("c", seq) == fold(expected[:seq])
        assert len(self.stored_rows(ledger, "c")) == 3

    def test_tampering_in_the_parent_shows_in_the_fork(self, ledger: BaseLedger) -> None:
        fill(ledger, "p", 12)
        ledger.fork("p", 10, "f")
        ledger.append("f", workload(2, start=11))
        rows = self.stored_rows(ledger, "p")
        _edit_byte(rows, 4)
        self.store_rows(ledger, "p", rows)
        report = ledger.verify("f")
        assert (report.ok, report.first_bad) == (False, 4)

    # -- snapshots, state_at, replay -----------------------------------------------------

    def test_state_at_matches_a_full_fold_everywhere(self) -> None:
        with self.fresh(snapshot_every=5) as ledger:
            written = fill(ledger, "r", 33, group=4)
            for seq in range(34):
                assert ledger.state_at("r", seq) == fold(written[:seq]), seq
            assert ledger.state_at("r") == fold(written)
            with pytest.raises(SequenceError):
                ledger.state_at("r", 34)

    def test_state_at_folds_only_from_the_nearest_snapshot(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with self.fresh(snapshot_every=10) as ledger:
            fill(ledger, "r", 47, group=6)
            ledger.fork("r", 35, "f")
            ledger.append("f", workload(9, start=36))
            scans: list[tuple[str, int, int]] = []
            real = ledger._scan_fold  # pyright: ignore[reportPrivateUsage]

            def spy(run: str, lo: int, hi: int) -> Iterator[FoldRow]:
                scans.append((run, lo, hi))
                return real(run, lo, hi)

            monkeypatch.setattr(ledger, "_scan_fold", spy)
            ledger.state_at("r", 37)
            assert scans == [("r", 31, 37)]
            scans.clear()
            ledger.state_at("f", 43)  # the fork's own snapshot at 40
            assert scans == [("f", 41, 43)]
            scans.clear()
            ledger.state_at("f", 38)  # the parent's snapshot at 30
            assert scans == [("r", 31, 35), ("f", 36, 38)]

    def test_snapshots_of_a_fork_appended_to_without_its_state_in_memory(self) -> None:
        """The head fold is built only once a snapshot is due; what it snapshots is still the
        fold of the lineage, whichever instance appends."""
        with self.fresh(snapshot_every=10) as ledger:
            parent = fill(ledger, "r", 27, group=5)
            ledger.fork("r", 17, "f")
            writers = [ledger, self.second(ledger)] if self.supports_second_instance else [ledger]
            own: list[Transition] = []
            for i, start in enumerate(range(18, 46, 4)):
                writer = writers[i % len(writers)]
                own += writer.append("f", workload(4, start=start, seed=1))
            lineage = parent[:17] + own
            assert ledger.last_snapshot("f") == 40
            for seq in range(len(lineage) + 1):
                assert ledger.state_at("f", seq) == fold(lineage[:seq]), seq
            assert ledger.replay("f").checked_hashes == 4  # 10 of the parent, 20, 30, 40 its own
            for writer in writers[1:]:
                writer.close()

    def test_what_append_returns_cannot_reach_a_later_snapshot(self) -> None:
        """Callers (and event subscribers, who get the same transitions) may change what
        append returned; the next snapshots still hold the fold of what was stored."""
        with self.fresh(snapshot_every=4) as ledger:
            ledger.create_run("r")
            for start in range(1, 40, 3):
                for t in ledger.append("r", workload(3, start=start)):
                    _scribble(t.data)
            assert ledger.verify("r").ok
            stored = list(ledger.read("r"))
            assert ledger.state_at("r") == fold(stored)
            assert ledger.replay("r").checked_hashes >= 1

    def test_the_head_fold_waits_until_a_snapshot_or_the_head_state_needs_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Appends only number, hash and store: the records are folded (each once) when a
        snapshot is due or the head state is read, and the snapshots hold the same state."""
        with self.fresh(snapshot_every=10) as ledger:
            applied = _count_folds(monkeypatch)
            written = fill(ledger, "r", 7, group=3)
            assert applied == []  # no snapshot due, nothing asked: nothing folded
            expected = fold(written)
            applied.clear()
            assert ledger.state_at("r") == expected
            assert applied == list(range(1, 8))
            applied.clear()
            assert ledger.head_state("r") == expected
            assert applied == []  # folded once
            written += ledger.append("r", workload(6, start=8))  # the snapshot at 10 is due
            assert applied == [8, 9, 10]
            expected = fold(written)
            applied.clear()
            assert ledger.state_at("r") == expected
            assert applied == [11, 12, 13]
        with self.fresh(snapshot_every=10) as eager, self.fresh(snapshot_every=10) as lazy:
            # the same transitions, the head state read after every group in one ledger only:
            # the same snapshots, byte for byte
            eager.create_run("r")
            lazy.create_run("r")
            for start in range(1, 36, 4):
                eager.append("r", workload(4, start=start))
                lazy.append("r", workload(4, start=start))
                eager.head_state("r")
            for seq in (10, 20, 30):
                assert _snapshot(eager, "r", seq) == _snapshot(lazy, "r", seq)
            assert lazy.verify("r").ok

    def test_the_head_fold_catches_up_once_it_holds_a_mebibyte(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a snapshot due or a read, the records held for the head fold are folded
        once they hold 1 MiB of payload: what waits undecoded stays bounded."""
        with self.fresh(snapshot_every=10**6, snapshot_bytes=10**9) as ledger:
            applied = _count_folds(monkeypatch)
            ledger.create_run("r")
            big = [
                draft(MemoryUpdated(agent="a", key=f"k{i}", value=f"{i:05d}" * 12_780), ts=i)
                for i in range(1, 21)
            ]  # about 64,000 bytes each: 17 of them pass 1 MiB
            for start in range(0, 16, 4):
                ledger.append("r", big[start : start + 4])
            assert applied == []
            ledger.append("r", big[16:20])
            assert applied == list(range(1, 21))
            assert ledger.last_snapshot("r") == 0  # no snapshot for it

    def test_replay_checks_recorded_hashes(self) -> None:
        with self.fresh(snapshot_every=4) as ledger:
            fill(ledger, "r", 10)
            h = state_hash(ledger.state_at("r"))
            ledger.append(
                "r",
                [
                    draft(
                        TickCompleted(tick=3, progress=0.5, delta=0.5, valid=True, state_hash=h),
                        ts=99,
                        tick=3,
                    )
                ],
            )
            fill_more = workload(6, start=12)
            ledger.append("r", fill_more)
            report = ledger.replay("r")
            assert (report.to, report.folded) == (17, 17)
            assert report.checked_hashes == 4 + 1  # snapshots at 4, 8, 12, 16 and one tick
            assert report.state == ledger.state_at("r")
            assert report.state_hash == state_hash(ledger.state_at("r"))
            assert ledger.replay("r", 9).checked_hashes == 2

            self.tamper_snapshot(ledger, "r", 12, state_hash="0" * 64)
            with pytest.raises(SnapshotBroken, match="at sequence 12"):
                ledger.replay("r")
            assert ledger.replay("r", 11).checked_hashes == 3

    def test_replay_refuses_a_wrong_tick_hash(self, ledger: BaseLedger) -> None:
        fill(ledger, "r", 6)
        wrong = TickCompleted(tick=1, progress=0.1, delta=0.1, valid=True, state_hash="ab" * 32)
        ledger.append("r", [draft(wrong, ts=7, tick=1)])
        with pytest.raises(ReplayMismatch, match="at sequence 7"):
            ledger.replay("r")
        assert ledger.replay("r", 6).folded == 6

    def test_replay_checks_the_chain(self, ledger: BaseLedger) -> None:
        fill(ledger, "r", 12)
        rows = self.stored_rows(ledger, "r")
        _edit_hash(rows, 9)  # the fold cannot see it: only the chain can
        self.store_rows(ledger, "r", rows)
        with pytest.raises(ChainBroken, match="at sequence 9"):
            ledger.replay("r")
        assert ledger.replay("r", 8).folded == 8

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [(b"[1,2]", "is not a JSON object"), (b"{not json", "is not JSON")],
    )
    def test_verify_names_a_chained_payload_that_is_not_an_object(
        self, ledger: BaseLedger, payload: bytes, reason: str
    ) -> None:
        fill(ledger, "r", 6)
        rows = self.stored_rows(ledger, "r")
        prev = rows[2].hash
        for k in range(3, 6):  # seq 4 replaced, the chain hashed again from there
            row = rows[k]._replace(payload=payload) if k == 3 else rows[k]
            body = record_body(
                row.seq, row.tick, row.agent, row.kind, row.causes, row.ts, row.v, row.payload
            )
            rows[k] = row._replace(hash=chain_hash(prev, body))
            prev = rows[k].hash
        self.store_rows(ledger, "r", rows)
        report = ledger.verify("r")
        assert (report.ok, report.first_bad, report.checked) == (False, 4, 3), report
        assert reason in (report.reason or "")
        with pytest.raises(ChainBroken, match="at sequence 4"):
            ledger.replay("r")

    # -- snapshots -----------------------------------------------------------------------

    @pytest.mark.parametrize("damage", ["its chain", "a state from elsewhere"])
    def test_state_at_refuses_a_misplaced_snapshot(self, damage: str) -> None:
        with self.fresh(snapshot_every=4) as ledger:
            written = fill(ledger, "r", 20)
            if damage == "its chain":
                self.tamper_snapshot(ledger, "r", 12, chain=written[10].hash)
            else:  # the snapshot at 8, with its digest: right bytes, wrong place
                other = _snapshot(ledger, "r", 8)
                self.tamper_snapshot(ledger, "r", 12, state=other.state, digest=other.digest)
            for seq in (12, 13, 15):
                with pytest.raises(SnapshotBroken, match="at sequence 12"):
                    ledger.state_at("r", seq)
            assert ledger.state_at("r", 11) == fold(written[:11])  # from the snapshot at 8
            assert ledger.state_at("r", 16) == fold(written[:16])  # from its own
            report = ledger.verify("r")
            assert (report.ok, report.first_bad) == (False, 12), report
            with pytest.raises(SnapshotBroken, match="at sequence 12"):
                ledger.replay("r")
            # resume's check folds from this snapshot: it names it too
            assert ledger.verify("r", start=13).first_bad == 12
            ledger.fork("r", 14, "f")
            with pytest.raises(SnapshotBroken, match="at sequence 12"):
                ledger.state_at("f")

    @pytest.mark.parametrize("damage", ["a byte of its state", "its digest", "not JSON"])
    def test_verify_catches_a_snapshot_that_does_not_match_its_digest(self, damage: str) -> None:
        # state_at trusts a snapshot's bytes as it trusts the rows it folds (neither is
        # hashed on the read path); verify, replay and resume's check compare the digest.
        with self.fresh(snapshot_every=4) as ledger:
            written = fill(ledger, "r", 20)
            snap = _snapshot(ledger, "r", 12)
            if damage == "a byte of its state":
                self.tamper_snapshot(ledger, "r", 12, state=snap.state.replace(b"{", b" {", 1))
            elif damage == "its digest":
                self.tamper_snapshot(ledger, "r", 12, digest=bytes(32))
            else:
                self.tamper_snapshot(ledger, "r", 12, state=snap.state[:-1])
            if damage == "not JSON":
                with pytest.raises(SnapshotBroken, match="at sequence 12"):
                    ledger.state_at("r", 13)
            else:
                assert ledger.state_at("r", 13) == fold(written[:13])
            report = ledger.verify("r")
            assert (report.ok, report.first_bad) == (False, 12), report
            assert "digest" in (report.reason or "") or damage == "not JSON"
            with pytest.raises(SnapshotBroken, match="at sequence 12"):
                ledger.replay("r")
            assert ledger.verify("r", start=13).first_bad == 12
            assert ledger.verify("r", start=17).ok  # from the snapshot at 16

    def test_verify_and_replay_compare_every_snapshot_with_the_fold(self) -> None:
        with self.fresh(snapshot_every=4) as ledger:
            written = fill(ledger, "r", 20)
            snap = _snapshot(ledger, "r", 12)
            forged = orjson.loads(snap.state)
            forged["goal"] = "forged, with a digest to match"
            state = encode(forged)
            self.tamper_snapshot(ledger, "r", 12, state=state, digest=digest(state))
            # state_at cannot tell a well-forged snapshot without folding from the start...
            assert ledger.state_at("r", 12)["goal"] == forged["goal"]
            # ...verify and replay do, and name it.
            report = ledger.verify("r")
            assert (report.ok, report.first_bad, report.checked) == (False, 12, 11)
            assert "differs from the fold" in (report.reason or "")
            with pytest.raises(SnapshotBroken, match="at sequence 12"):
                ledger.replay("r")
            assert ledger.replay("r", 11).state == fold(written[:11])

            self.tamper_snapshot(ledger, "r", 12, state=snap.state, digest=snap.digest)
            self.tamper_snapshot(ledger, "r", 16, state_hash="ab" * 32)
            report = ledger.verify("r")
            assert (report.ok, report.first_bad) == (False, 16)
            assert "state hash" in (report.reason or "")

    def test_snapshots_carry_the_digest_of_their_state(self) -> None:
        with self.fresh(snapshot_every=5) as ledger:
            written = fill(ledger, "r", 10)
            snap = _snapshot(ledger, "r", 10)
            assert snap.digest == digest(snap.state)
            assert snap.chain == written[-1].hash
            assert snap.state == orjson.dumps(fold(written))  # the state's own order
            assert snap.state_hash == state_hash(fold(written))

    def test_a_state_read_from_a_snapshot_keeps_the_live_order(self) -> None:
        """A snapshot keeps the order the state's mappings were filled in (a plan's steps,
        the agents, memory), so a state read back from one is the live state, order and all."""
        with self.fresh(snapshot_every=4) as ledger:
            ledger.create_run("r")
            keys = ["zeta", "alpha", "mid", "beta", "gamma", "delta"]
            written = ledger.append(
                "r",
                [
                    draft(MemoryUpdated(agent="a", key=k, value=i), ts=i)
                    for i, k in enumerate(keys, start=1)
                ],
            )
            assert _snapshot(ledger, "r", 4).state == orjson.dumps(fold(written[:4]))
            read = ledger.state_at("r", 4)  # the snapshot at 4, nothing folded onto it
            assert list(read["memory"]["a"]) == keys[:4]
            assert orjson.dumps(read) == orjson.dumps(fold(written[:4]))
            assert ledger.verify("r").ok

    def test_a_snapshot_in_another_order_verifies_by_its_canonical_form(self) -> None:
        """Files written before snapshots kept the state's order hold them with sorted keys:
        verify takes a snapshot whose canonical form is the fold's, and still tells an
        integer from a float (which equality of decoded values would not)."""
        with self.fresh(snapshot_every=4) as ledger:
            ledger.create_run("r")
            keys = ["zeta", "alpha", "mid", "beta", "gamma", "delta", "eta", "theta", "iota"]
            written = ledger.append(
                "r",
                [
                    draft(MemoryUpdated(agent="a", key=k, value=i), ts=i)
                    for i, k in enumerate(keys, start=1)
                ],
            )
            sorted_keys = encode(fold(written[:8]))
            assert sorted_keys != _snapshot(ledger, "r", 8).state
            self.tamper_snapshot(ledger, "r", 8, state=sorted_keys, digest=digest(sorted_keys))
            assert ledger.verify("r").ok
            assert ledger.replay("r").state == fold(written)

            forged = fold(written[:8])
            forged["memory"]["a"]["alpha"] = 2.0  # the fold has 2
            state = encode(forged)
            self.tamper_snapshot(ledger, "r", 8, state=state, digest=digest(state))
            report = ledger.verify("r")
            assert (report.ok, report.first_bad) == (False, 8), report
            assert "differs from the fold" in (report.reason or "")

    # -- the record encoder --------------------------------------------------------------

    @pytest.mark.parametrize("field", ["tick", "ts", "v"])
    def test_verify_refuses_a_non_integer_field(self, ledger: BaseLedger, field: str) -> None:
        """1.5 printed with %d is 1: a body must never be built from what is not an int."""
        fill(ledger, "r", 12)
        rows = self.stored_rows(ledger, "r")
        original = getattr(rows[8], field)
        rows[8] = rows[8]._replace(**{field: original + 0.5})
        self.store_rows(ledger, "r", rows)
        stored = getattr(self.stored_rows(ledger, "r")[8], field)
        if type(stored) is int:  # the column's type made it an integer (PostgreSQL's BIGINT)
            assert ledger.verify("r").ok == (stored == original)
            return
        report = ledger.verify("r")
        assert (report.ok, report.first_bad) == (False, 9), report
        with pytest.raises(ChainBroken, match="at sequence 9"):
            ledger.replay("r")

    @pytest.mark.parametrize(
        ("field", "value"),
        [("tick", 1.0), ("ts", 2**63), ("tick", True), ("causes", (1.5,)), ("agent", "\ud800")],
    )
    def test_append_refuses_what_the_encoder_cannot_hash(
        self, ledger: BaseLedger, field: str, value: object
    ) -> None:
        ledger.create_run("r")
        good = workload(3)
        bad = good[1]._replace(**{field: value})
        with pytest.raises(RecordInvalid, match=field):
            ledger.append("r", [good[0], bad, good[2]])
        assert ledger.run("r").head == 0

    # -- creating a run with its first transitions ---------------------------------------

    def test_append_can_create_the_run_in_the_same_transaction(self, ledger: BaseLedger) -> None:
        written = ledger.append("r", workload(3), create=True)
        assert [t.seq for t in written] == [1, 2, 3]
        info = ledger.run("r")
        assert (info.head, info.head_hash, info.parent) == (3, written[-1].hash, None)
        assert [r.id for r in ledger.runs()] == ["r"]
        assert ledger.verify("r").ok
        with pytest.raises(RunExists):
            ledger.append("r", workload(1, start=4), create=True)
        more = ledger.append("r", workload(2, start=4), expected=4)
        assert more[0].prev_hash == written[-1].hash

    def test_a_run_created_with_a_bad_group_does_not_exist(self, ledger: BaseLedger) -> None:
        drafts = workload(3)
        drafts[2] = drafts[2]._replace(kind="no.such.kind", data=None)
        with pytest.raises(UnknownKind):
            ledger.append("r", drafts, create=True)
        with pytest.raises(RunNotFound):
            ledger.run("r")
        assert ledger.runs() == []
        assert ledger.append("r", workload(1), create=True)[0].seq == 1

    # -- verify --------------------------------------------------------------------------

    @pytest.mark.parametrize("name", list(TAMPERS))
    def test_verify_names_the_first_bad_seq(self, ledger: BaseLedger, name: str) -> None:
        fill(ledger, "r", 20)
        assert ledger.verify("r").ok
        rows = self.stored_rows(ledger, "r")
        first_bad = TAMPERS[name](rows)
        self.store_rows(ledger, "r", rows)
        report = ledger.verify("r")
        assert not report.ok
        assert report.first_bad == first_bad, report.reason
        assert report.reason

    def test_verify_reports_a_good_chain(self, ledger: BaseLedger) -> None:
        written = fill(ledger, "r", 20)
        report = ledger.verify("r")
        assert (report.ok, report.checked, report.first_bad) == (True, 20, None)
        assert report.head_hash == written[-1].hash.hex()
        ledger.create_run("empty")
        assert ledger.verify("empty").ok

    def test_verify_from_a_start_checks_only_the_tail(self, ledger: BaseLedger) -> None:
        fill(ledger, "r", 20)
        report = ledger.verify("r", start=12)
        assert (report.ok, report.checked) == (True, 9)
        assert ledger.verify("r", start=21).checked == 0  # nothing after the head
        rows = self.stored_rows(ledger, "r")
        _edit_byte(rows, 15)
        _edit_byte(rows, 5)
        self.store_rows(ledger, "r", rows)
        tail = ledger.verify("r", start=12)
        assert (tail.ok, tail.first_bad, tail.checked) == (False, 15, 3)
        assert ledger.verify("r", start=16).ok  # 15's stored hash is where 16 chains from
        assert ledger.verify("r").first_bad == 5
        for bad in (0, 22):
            with pytest.raises(SequenceError):
                ledger.verify("r", start=bad)

    def test_verify_from_a_start_inside_the_parent_of_a_fork(self, ledger: BaseLedger) -> None:
        fill(ledger, "r", 20)
        ledger.fork("r", 10, "f")
        ledger.append("f", workload(5, start=11))
        assert ledger.verify("f", start=8).checked == 8  # 8..10 of the parent, 11..15 its own

    def test_last_snapshot_is_where_state_at_starts(self) -> None:
        with self.fresh(snapshot_every=10) as ledger:
            fill(ledger, "r", 47, group=6)
            assert [ledger.last_snapshot("r", s) for s in (0, 9, 10, 37, 47)] == [0, 0, 10, 30, 40]
            assert ledger.last_snapshot("r") == 40
            ledger.fork("r", 35, "f")
            ledger.append("f", workload(9, start=36))
            assert ledger.last_snapshot("f", 38) == 30  # the parent's
            assert ledger.last_snapshot("f") == 40  # its own
            with pytest.raises(SequenceError):
                ledger.last_snapshot("r", 48)

    def test_append_can_create_a_fork_with_its_first_transitions(self, ledger: BaseLedger) -> None:
        written = fill(ledger, "r", 20)
        out = ledger.append("f", workload(3, start=11, seed=4), fork_of=("r", 10))
        assert [t.seq for t in out] == [11, 12, 13]
        assert out[0].prev_hash == written[9].hash
        info = ledger.run("f")
        assert (info.parent, info.fork_seq, info.head) == ("r", 10, 13)
        assert [t.hash for t in ledger.read("f", 1, 10)] == [t.hash for t in written[:10]]
        assert ledger.state_at("f") == fold([*written[:10], *out])
        assert ledger.verify("f").ok
        ledger.append("f", workload(2, start=14))  # an ordinary run from then on
        assert ledger.run("f").head == 15
        # Refused whole: a taken id, a fork point past the head, a wrong expected seq.
        with pytest.raises(RunExists):
            ledger.append("f", workload(1), fork_of=("r", 5))
        with pytest.raises(SequenceError):
            ledger.append("g", workload(1), fork_of=("r", 21))
        with pytest.raises(SequenceConflict):
            ledger.append("g", workload(1), fork_of=("r", 5), expected=1)
        with pytest.raises(RunNotFound):
            ledger.run("g")
        assert ledger.run("f").head == 15
        at_zero = ledger.append("z", workload(1), fork_of=("r", 0))
        assert (at_zero[0].seq, ledger.run("z").parent) == (1, "r")

    def test_snapshots_by_bytes_bound_the_fold_and_the_storage(self) -> None:
        with self.fresh(snapshot_every=10_000, snapshot_bytes=4096, snapshot_percent=50) as ledger:
            growing(ledger, "r", 120)
            written = list(ledger.read("r"))
            sizes = [len(encode(t.data)) for t in written]  # what each stored payload takes
            taken = _snapshot_seqs(ledger, "r")
            assert len(taken) >= 5  # all by bytes: the count alone would take none
            # Each is taken at the first seq where the bytes since the last one reach its due.
            last, due, stored = 0, 4096, 0
            for seq in taken:
                assert sum(sizes[last : seq - 1]) < due <= sum(sizes[last:seq])
                state = len(encode(ledger.state_at("r", seq)))
                last, due, stored = seq, max(4096, state * 50 // 100), stored + state
            assert stored <= sum(sizes) * 100 // 50  # linear: at most 2 bytes a payload byte
            for seq in range(0, len(written) + 1, 7):
                assert ledger.state_at("r", seq) == fold(written[:seq])
            assert ledger.verify("r").ok
            assert ledger.replay("r").checked_hashes >= len(taken)

    def test_a_state_that_stops_growing_is_left_to_the_count(self) -> None:
        with self.fresh(snapshot_every=200, snapshot_bytes=4096, snapshot_percent=50) as ledger:
            growing(ledger, "r", 40)  # grows: snapshots by bytes
            grown = _snapshot_seqs(ledger, "r")
            assert len(grown) >= 3 and grown[-1] < 200
            same = [
                draft(MemoryUpdated(agent="a", key="k0", value=f"{i:06d}" * 50), ts=i)
                for i in range(300)
            ]
            for start in range(0, len(same), 10):
                ledger.append("r", same[start : start + 10])
            taken = _snapshot_seqs(ledger, "r")
            # One more by bytes (the one that finds the state no bigger), then the count's.
            later = [s for s in taken if s > grown[-1]]
            assert len([s for s in later if s % 200]) == 1
            assert [s for s in later if s % 200 == 0] == [200]
            assert ledger.verify("r").ok
            other = self.second(ledger)
            try:  # another instance draws the same conclusion from the store
                other.append("r", same[:100])
            finally:
                other.close()
            assert [s for s in _snapshot_seqs(ledger, "r") if s > 340] == [400]

    def test_another_instance_snapshots_where_this_one_would(self) -> None:
        options = {"snapshot_every": 10_000, "snapshot_bytes": 4096, "snapshot_percent": 50}
        with self.fresh(**options) as one, self.fresh(**options) as two:
            growing(one, "r", 90)
            growing(two, "r", 45)
            other = self.second(two)
            try:
                other.append("r", _grow_drafts(45, 90))
            finally:
                other.close()
            assert _snapshot_seqs(two, "r") == _snapshot_seqs(one, "r")
            # A fork counts from its parent's last snapshot before the fork point.
            one.fork("r", 60, "f")
            one.append("f", _grow_drafts(200, 260))
            two.fork("r", 60, "f")
            other = self.second(two)
            try:
                other.append("f", _grow_drafts(200, 260))
            finally:
                other.close()
            assert _snapshot_seqs(two, "f") == _snapshot_seqs(one, "f")
            assert two.verify("f").ok

    # -- properties ----------------------------------------------------------------------

    @settings(max_examples=25, deadline=None, suppress_health_check=_SUPPRESS)
    @given(
        groups=st.lists(st.integers(1, 12), min_size=1, max_size=8),
        every=st.integers(1, 9),
        seed=st.integers(0, 5),
    )
    def test_property_state_at_is_the_fold_of_the_prefix(
        self, groups: list[int], every: int, seed: int
    ) -> None:
        with self.fresh(snapshot_every=every) as ledger:
            ledger.create_run("r")
            start = 1
            for size in groups:
                ledger.append("r", workload(size, start=start, seed=seed))
                start += size
            written = list(ledger.read("r"))
            for n in range(len(written) + 1):
                assert ledger.state_at("r", n) == fold(written[:n])
            replayed = ledger.replay("r")
            assert replayed.state == fold(written)
            assert replayed.checked_hashes == len(written) // every

    @settings(max_examples=25, deadline=None, suppress_health_check=_SUPPRESS)
    @given(n=st.integers(1, 30), data=st.data())
    def test_property_a_fork_shares_exactly_the_prefix(self, n: int, data: st.DataObject) -> None:
        at = data.draw(st.integers(0, n), label="at")
        extra = data.draw(st.integers(0, 5), label="extra")
        with self.fresh(snapshot_every=4) as ledger:
            parent = fill(ledger, "p", n, group=5)
            ledger.fork("p", at, "f")
            mine = ledger.append("f", workload(extra, start=at + 1, seed=1)) if extra else []
            got = list(ledger.read("f"))
            assert same(got[:at], parent[:at])
            assert got[at:] == mine
            if mine and at < n:
                assert mine[0].hash != parent[at].hash
            assert ledger.state_at("f") == fold(got)
            assert ledger.verify("f").ok

    @settings(max_examples=40, deadline=None, suppress_health_check=_SUPPRESS)
    @given(data=st.data())
    def test_property_verify_detects_any_single_edit(self, data: st.DataObject) -> None:
        with self.fresh() as ledger:
            fill(ledger, "r", 12, group=5)
            rows = self.stored_rows(ledger, "r")
            k = data.draw(st.integers(1, len(rows)), label="seq")
            field = data.draw(
                st.sampled_from(["payload", "hash", "agent", "kind", "tick", "ts", "causes"]),
                label="field",
            )
            row = rows[k - 1]
            if field in ("payload", "hash"):
                raw = bytearray(getattr(row, field))
                i = data.draw(st.integers(0, len(raw) - 1), label="byte")
                raw[i] ^= data.draw(st.integers(1, 255), label="xor")
                rows[k - 1] = row._replace(**{field: bytes(raw)})
            elif field in ("agent", "kind"):
                text: str = getattr(row, field) or ""
                changed = data.draw(
                    st.text(_TEXT, min_size=1, max_size=12).filter(lambda s: s != text),
                    label=field,
                )
                rows[k - 1] = row._replace(**{field: changed})
            elif field == "causes":
                rows[k - 1] = row._replace(causes=(*row.causes, k))
            else:
                delta = data.draw(st.integers(1, 1000), label="delta")
                rows[k - 1] = row._replace(**{field: getattr(row, field) + delta})
            self.store_rows(ledger, "r", rows)
            report = ledger.verify("r")
            assert (report.ok, report.first_bad) == (False, k)

    # -- run ownership: leases, epochs, fencing --------------------------------------------

    def test_acquire_renew_release(self, ledger: BaseLedger) -> None:
        before = ledger.leases.now_us()
        lease = ledger.leases.acquire("r", "A", ttl_s=30, node="n1")
        assert (lease.run_id, lease.holder, lease.node, lease.epoch) == ("r", "A", "n1", 1)
        assert lease.ttl_us == 30_000_000 and not lease.released
        assert lease.acquired_us == lease.renewed_us >= before - 1_000_000
        assert lease.expires_us == lease.renewed_us + lease.ttl_us
        assert lease.live(ledger.leases.now_us())
        assert ledger.leases.get("r") == lease and ledger.leases.all() == [lease]
        assert ledger.leases.get("other") is None and ledger.leases.stale() == []
        renewed = ledger.leases.renew(lease, ttl_s=60)
        assert (renewed.epoch, renewed.acquired_us) == (1, lease.acquired_us)
        assert renewed.renewed_us >= lease.renewed_us and renewed.ttl_us == 60_000_000
        assert ledger.leases.release(renewed) is True
        gone = ledger.leases.get("r")
        assert gone is not None and gone.released and gone.epoch == 1
        assert ledger.leases.stale() == [gone]
        assert ledger.leases.release(renewed) is False  # released already: nothing changes
        with pytest.raises(LeaseLost, match="released"):
            ledger.leases.renew(renewed)
        again = ledger.leases.acquire("r", "B", ttl_s=5)
        assert (again.holder, again.epoch, again.released) == ("B", 2, False)

    def test_a_live_lease_of_another_holder_is_held(self, ledger: BaseLedger) -> None:
        ledger.leases.acquire("r", "A", ttl_s=30, node="n1")
        with pytest.raises(LeaseHeld) as held:
            ledger.leases.acquire("r", "B", ttl_s=30)
        assert (held.value.holder, held.value.node, held.value.epoch) == ("A", "n1", 1)
        assert 25 < held.value.seconds_left <= 30
        assert "owned by A on n1" in str(held.value)
        lease = ledger.leases.get("r")
        assert lease is not None and (lease.holder, lease.epoch) == ("A", 1)

    def test_the_same_holder_takes_its_own_lease_over(self, ledger: BaseLedger) -> None:
        first = ledger.leases.acquire("r", "A", ttl_s=30)
        second = ledger.leases.acquire("r", "A", ttl_s=30)
        assert second.epoch == first.epoch + 1
        with pytest.raises(LeaseLost, match="took it over"):
            ledger.leases.renew(first)

    def test_takeover_after_expiry_increments_the_epoch(self, ledger: BaseLedger) -> None:
        old = ledger.leases.acquire("r", "A", ttl_s=10)
        self.age(ledger, 9)
        with pytest.raises(LeaseHeld):
            ledger.leases.acquire("r", "B", ttl_s=10)
        self.age(ledger, 2)
        (stale,) = ledger.leases.stale()
        assert stale.epoch == 1 and not stale.live(ledger.leases.now_us())
        new = ledger.leases.acquire("r", "B", ttl_s=10)
        assert (new.holder, new.epoch) == ("B", 2)
        with pytest.raises(LeaseLost) as lost:
            ledger.leases.renew(old)
        assert (lost.value.epoch, lost.value.current, lost.value.holder) == (1, 2, "B")
        assert ledger.leases.release(old) is False
        assert ledger.leases.get("r") == new

    def test_an_expired_lease_nobody_took_is_still_its_holders(self, ledger: BaseLedger) -> None:
        lease = ledger.leases.acquire("r", "A", ttl_s=10)
        ledger.fence(lease)
        fill(ledger, "r", 3)
        self.age(ledger, 20)
        assert ledger.append("r", workload(1, start=4))[0].seq == 4  # expiry alone fences nothing
        renewed = ledger.leases.renew(lease)
        assert renewed.epoch == 1 and renewed.live(ledger.leases.now_us())

    def test_expiry_on_the_lease_clock(self, ledger: BaseLedger) -> None:
        lease = ledger.leases.acquire("r", "A", ttl_s=0.2)
        with pytest.raises(LeaseHeld):
            ledger.leases.acquire("r", "B", ttl_s=1)
        deadline = lease.expires_us
        while ledger.leases.now_us() <= deadline:
            threading.Event().wait(0.02)
        assert ledger.leases.acquire("r", "B", ttl_s=1).epoch == 2

    def test_expect_epoch_takes_only_the_lease_it_saw(self, ledger: BaseLedger) -> None:
        with pytest.raises(LeaseLost, match="no lease"):
            ledger.leases.acquire("r", "A", ttl_s=5, expect_epoch=3)
        first = ledger.leases.acquire("r", "A", ttl_s=5, expect_epoch=0)
        assert first.epoch == 1
        ledger.leases.release(first)
        with pytest.raises(LeaseLost, match="epoch moved to 1"):
            ledger.leases.acquire("r", "B", ttl_s=5, expect_epoch=0)
        assert ledger.leases.acquire("r", "B", ttl_s=5, expect_epoch=1).epoch == 2
        with pytest.raises(LeaseHeld):
            ledger.leases.acquire("r", "C", ttl_s=5, expect_epoch=2)

    @pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), True, "5", 10**9])
    def test_a_bad_ttl_is_refused(self, ledger: BaseLedger, ttl: Any) -> None:
        with pytest.raises(LedgerOptionInvalid, match="ttl_s"):
            ledger.leases.acquire("r", "A", ttl_s=ttl)
        with pytest.raises(LedgerOptionInvalid, match="holder"):
            ledger.leases.acquire("r", "", ttl_s=1)
        assert ledger.leases.all() == []

    def test_a_stale_epoch_appends_nothing(self, ledger: BaseLedger) -> None:
        old = ledger.leases.acquire("r", "A", ttl_s=10)
        ledger.fence(old)
        fill(ledger, "r", 4)
        other = self.second(ledger)
        try:
            self.age(ledger, 11)
            new = other.leases.acquire("r", "B", ttl_s=10)
            other.fence(new)
            rows = self.stored_rows(ledger, "r")
            with pytest.raises(Fenced) as fenced:
                ledger.append("r", workload(3, start=5))
            assert (fenced.value.epoch, fenced.value.current, fenced.value.holder) == (1, 2, "B")
            assert "nothing was written" in str(fenced.value)
            with pytest.raises(Fenced):
                ledger.append("r", workload(1, start=5), expected=5)
            assert isinstance(fenced.value, LeaseLost)
            assert self.stored_rows(ledger, "r") == rows
            assert ledger.run("r").head == other.run("r").head == 4
            assert other.append("r", workload(2, start=5), expected=5)[0].seq == 5
            assert ledger.verify("r").ok
            assert [t.seq for t in ledger.read("r")] == [1, 2, 3, 4, 5, 6]
        finally:
            other.close()

    def test_a_leased_run_refuses_appends_without_an_epoch(self, ledger: BaseLedger) -> None:
        fill(ledger, "r", 3)
        lease = ledger.leases.acquire("r", "A", ttl_s=30)
        with pytest.raises(Fenced, match="leased to A"):
            ledger.append("r", workload(1, start=4))
        assert ledger.run("r").head == 3
        # A decision on a parked approval comes from whoever decides: no epoch needed.
        decision = draft(ApprovalGranted(proposal=2, by="alice"), ts=1, tick=0)
        assert ledger.append("r", [decision], expected=4)[0].seq == 4
        with pytest.raises(Fenced):  # but not mixed with anything else
            ledger.append("r", [decision, *workload(1, start=6)])
        ledger.fence(lease)
        assert ledger.append("r", workload(1, start=5))[0].seq == 5
        ledger.leases.release(lease)
        with pytest.raises(Fenced, match="was released"):
            ledger.append("r", workload(1, start=6))
        ledger.unfence("r")
        assert ledger.fenced("r") is None
        assert ledger.append("r", workload(1, start=6))[0].seq == 6  # released: unowned again
        assert ledger.verify("r").ok

    def test_an_epoch_for_a_run_without_a_lease_is_refused(self, ledger: BaseLedger) -> None:
        fill(ledger, "r", 2)
        lease = ledger.leases.acquire("s", "A", ttl_s=30)
        ledger.fence(Lease("r", "A", "", lease.epoch, 1, 0, 0, 1, False))
        with pytest.raises(Fenced, match="no lease"):
            ledger.append("r", workload(1, start=3))
        ledger.unfence("r")
        assert ledger.append("r", workload(1, start=3))[0].seq == 3

    def test_a_run_created_under_its_lease(self, ledger: BaseLedger) -> None:
        lease = ledger.leases.acquire("r", "A", ttl_s=30)
        with pytest.raises(Fenced):
            ledger.append("r", workload(2), create=True)
        with pytest.raises(RunNotFound):
            ledger.run("r")
        ledger.fence(lease)
        assert [t.seq for t in ledger.append("r", workload(2), create=True)] == [1, 2]
        assert ledger.fenced("r") == 1

    def test_concurrent_acquires_have_exactly_one_winner(self, ledger: BaseLedger) -> None:
        others = [self.second(ledger) for _ in range(2)]
        ledgers = [ledger, *others]
        try:
            for round_ in range(8):
                run = f"r{round_}"
                if round_ % 2:  # a lease to take over: expired
                    ledger.leases.acquire(run, "old", ttl_s=5)
                    self.age(ledger, 6)
                gate = threading.Barrier(len(ledgers))
                got: list[Lease | LeaseError | BaseException] = []

                def take(
                    i: int,
                    run: str = run,
                    gate: threading.Barrier = gate,
                    got: list[Lease | LeaseError | BaseException] = got,
                ) -> None:
                    gate.wait()
                    try:
                        got.append(ledgers[i].leases.acquire(run, f"h{i}", ttl_s=30))
                    except BaseException as exc:  # counted below
                        got.append(exc)

                threads = [threading.Thread(target=take, args=(i,)) for i in range(len(ledgers))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                won = [g for g in got if isinstance(g, Lease)]
                assert len(won) == 1, got
                assert all(isinstance(g, LeaseHeld) for g in got if g not in won), got
                assert won[0].epoch == 1 + round_ % 2
                assert ledger.leases.get(run) == won[0]
        finally:
            for o in others:
                o.close()

    def test_a_takeover_orders_after_every_append_of_the_old_epoch(
        self, ledger: BaseLedger
    ) -> None:
        """An old owner appending in a loop while another instance takes over: once the
        takeover has committed, the new owner's first append (at the head it reads) never
        meets a write of the old owner (that would be a conflict or worse), and the old owner
        is fenced."""
        old = ledger.leases.acquire("r", "A", ttl_s=10)
        ledger.fence(old)
        fill(ledger, "r", 2)
        other = self.second(ledger)
        stop = threading.Event()
        outcome: list[BaseException] = []
        written: list[int] = []

        def keep_writing() -> None:
            try:
                while not stop.is_set():
                    written.extend(t.seq for t in ledger.append("r", workload(2, start=1)))
                    # A writer in a tight loop can hold SQLite's write lock past another
                    # connection's busy timeout on a loaded machine (no fair queue there):
                    # a tick's pause between appends, as a real owner has.
                    stop.wait(0.001)
            except BaseException as exc:  # the expected end is Fenced
                outcome.append(exc)

        worker = threading.Thread(target=keep_writing)
        worker.start()
        try:
            while len(written) < 6:
                threading.Event().wait(0.001)
            self.age(other, 11)
            new = other.leases.acquire("r", "B", ttl_s=10)
            other.fence(new)
            head = other.run("r").head
            mine = other.append("r", workload(1, start=head + 1), expected=head + 1)
            assert mine[0].seq == head + 1
            worker.join(10)
        finally:
            stop.set()
            worker.join()
            other.close()
        assert len(outcome) == 1 and isinstance(outcome[0], Fenced), outcome
        assert max(written) < head + 1
        assert ledger.verify("r").ok
        assert [t.seq for t in ledger.read("r")] == list(range(1, head + 2))

    @settings(max_examples=25, deadline=None, suppress_health_check=_SUPPRESS)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["acquire", "renew", "release", "age", "append"]),
                st.integers(0, 2),
                st.integers(1, 30),
            ),
            max_size=25,
        )
    )
    def test_property_leases_follow_the_model(self, steps: list[tuple[str, int, int]]) -> None:
        """Random interleavings of three holders acquiring, renewing, releasing and appending
        while time passes, against a model: one epoch at a time, +1 per takeover, and an
        append lands exactly when its holder's epoch is the lease's and it is not released."""
        with self.fresh() as ledger:
            fill(ledger, "r", 1)
            held: dict[int, Lease] = {}
            epoch, holder, released, expires = 0, -1, True, 0.0
            now = 0.0
            head = 1
            for op, who, n in steps:
                if op == "age":
                    self.age(ledger, n)
                    now += n
                elif op == "acquire":
                    free = released or expires <= now or holder == who
                    try:
                        got = ledger.leases.acquire("r", f"h{who}", ttl_s=10)
                    except LeaseHeld:
                        assert not free
                        continue
                    assert free
                    epoch, holder, released, expires = epoch + 1, who, False, now + 10
                    assert got.epoch == epoch
                    held[who] = got
                elif op == "renew" and who in held:
                    mine = held[who].epoch == epoch and holder == who and not released
                    try:
                        held[who] = ledger.leases.renew(held[who])
                    except LeaseLost:
                        assert not mine
                        continue
                    assert mine
                    expires = now + 10
                elif op == "release" and who in held:
                    mine = held[who].epoch == epoch and holder == who and not released
                    assert ledger.leases.release(held[who]) is mine
                    released = released or mine
                elif op == "append":
                    lease = held.get(who)
                    if lease is None:
                        ledger.unfence("r")
                    else:
                        ledger.fence(lease)
                    if lease is None:
                        ok = epoch == 0 or released
                    else:
                        ok = lease.epoch == epoch and not released
                    try:
                        ledger.append("r", workload(1, start=head + 1))
                    except Fenced:
                        assert not ok
                        continue
                    assert ok
                    head += 1
            assert ledger.run("r").head == head
            assert ledger.verify("r").ok


def _count_folds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The seqs of the records every :class:`Fold` applies from now on (one by one or in
    bulk: :meth:`Fold.apply_all` applies each through :meth:`Fold.apply`), in order."""
    applied: list[int] = []
    one = Fold.apply

    def counted(self: Fold, t: Transition, handler: Any = None) -> None:
        applied.append(t.seq)
        one(self, t, handler)

    monkeypatch.setattr(Fold, "apply", counted)
    return applied
