"""Group commit across runs: several runs' groups in one SQLite transaction (one fsync),
each group all or nothing, each error to its own run; and the asyncio committer over it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telic.canonical import encode
from telic.errors import (
    Fenced,
    LedgerUnavailable,
    RunExists,
    RunNotFound,
    SequenceConflict,
    UnknownKind,
)
from telic.ledger import AppendGroup, BaseLedger, GroupCommitter, MemoryLedger, SQLiteLedger
from telic.ledger.sqlite import row_key
from telic.transition import Draft


def _tick(run: int, tick: int, n: int = 3) -> list[Draft]:
    """A tick's worth of drafts for run number ``run``."""
    drafts = [Draft("tick.started", encode({"tick": tick}), 1_700_000_000_000_000 + tick, tick)]
    for i in range(n - 1):
        payload = {"agent": f"a{run}", "key": f"k{i}", "value": [run, tick, i]}
        drafts.append(
            Draft("memory.updated", encode(payload), 1_700_000_000_000_001 + tick, tick, f"a{run}")
        )
    return drafts


def _commits(ledger: BaseLedger) -> list[str]:
    """The COMMIT statements the ledger's connection executes from now on."""
    assert isinstance(ledger, SQLiteLedger)
    seen: list[str] = []
    ledger._db.set_trace_callback(  # pyright: ignore[reportPrivateUsage]
        lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    return seen


def test_append_groups_writes_every_run_in_one_commit(tmp_path: Path) -> None:
    with SQLiteLedger(tmp_path / "g.db") as ledger:
        for r in range(3):
            ledger.create_run(f"r{r}")
        commits = _commits(ledger)
        answers = ledger.append_groups(
            [AppendGroup(f"r{r}", _tick(r, 1), expected=1) for r in range(3)]
        )
        assert len(commits) == 1
        for r, got in enumerate(answers):
            assert isinstance(got, list)
            assert [t.seq for t in got] == [1, 2, 3]
            assert got[0].run == f"r{r}"
            assert ledger.run(f"r{r}").head == 3
            assert ledger.verify(f"r{r}").ok
        # and the next groups chain on from the heads the first left
        again = ledger.append_groups(
            [AppendGroup(f"r{r}", _tick(r, 2), expected=4) for r in range(3)]
        )
        assert all(isinstance(a, list) and a[0].seq == 4 for a in again)
        assert all(ledger.verify(f"r{r}").ok for r in range(3))


def test_a_refused_group_is_not_written_and_the_others_are(tmp_path: Path) -> None:
    with SQLiteLedger(tmp_path / "g.db") as ledger:
        ledger.create_run("ok")
        ledger.create_run("stale")
        ledger.create_run("taken")
        ledger.append("stale", _tick(0, 1))
        answers = ledger.append_groups(
            [
                AppendGroup("ok", _tick(1, 1), expected=1),
                AppendGroup("stale", _tick(2, 2), expected=1),  # its head is 3
                AppendGroup("bad", [Draft("no.such.kind", b"{}", 1, 1)], create=True),
                AppendGroup("taken", _tick(3, 1), create=True),
                AppendGroup("new", _tick(4, 1), create=True),
            ]
        )
        ok, stale, bad, taken, new = answers
        assert isinstance(ok, list) and len(ok) == 3
        assert isinstance(stale, SequenceConflict)
        assert isinstance(bad, UnknownKind)
        assert isinstance(taken, RunExists)
        assert isinstance(new, list) and new[0].run == "new"
        assert ledger.run("ok").head == 3
        assert ledger.run("stale").head == 3  # nothing of the refused group
        assert ledger.run("taken").head == 0
        assert ledger.run("new").head == 3
        assert {r.id for r in ledger.runs()} == {"ok", "stale", "taken", "new"}
        for run in ("ok", "stale", "new"):
            assert ledger.verify(run).ok
        # a refused group leaves its run appendable at its real head
        assert ledger.append("stale", _tick(2, 2), expected=4)[0].seq == 4


def test_append_groups_refuses_one_run_twice_and_an_empty_creation(tmp_path: Path) -> None:
    with SQLiteLedger(tmp_path / "g.db") as ledger:
        ledger.create_run("r")
        with pytest.raises(ValueError, match="one group per run"):
            ledger.append_groups([AppendGroup("r", _tick(0, 1)), AppendGroup("r", _tick(0, 2))])
        with pytest.raises(ValueError, match="at least one transition"):
            ledger.append_groups([AppendGroup("x", [], create=True)])
        assert ledger.run("r").head == 0


def test_backends_without_a_shared_transaction_still_answer_per_group() -> None:
    ledger = MemoryLedger()
    ledger.create_run("a")
    answers = ledger.append_groups(
        [AppendGroup("a", _tick(0, 1), expected=1), AppendGroup("b", _tick(1, 1), expected=5)]
    )
    assert isinstance(answers[0], list)
    assert isinstance(answers[1], RunNotFound)
    assert ledger.run("a").head == 3


def test_the_committer_shares_commits_between_runs_and_answers_each(tmp_path: Path) -> None:
    runs, ticks = 20, 10
    with SQLiteLedger(tmp_path / "g.db") as ledger:
        for r in range(runs):
            ledger.create_run(f"r{r}")
        commits = _commits(ledger)
        conflict: list[BaseException] = []

        async def one(committer: GroupCommitter, r: int) -> None:
            head = 0
            for tick in range(1, ticks + 1):
                got = await committer.append(f"r{r}", _tick(r, tick), expected=head + 1)
                assert [t.seq for t in got] == [head + 1, head + 2, head + 3]
                head = got[-1].seq
            if r == 0:  # a stale expected head: refused, to this run only
                try:
                    await committer.append("r0", _tick(0, 99), expected=1)
                except SequenceConflict as exc:
                    conflict.append(exc)

        async def main() -> GroupCommitter:
            async with GroupCommitter(ledger) as committer, asyncio.TaskGroup() as tg:
                for r in range(runs):
                    tg.create_task(one(committer, r))
            return committer

        committer = asyncio.run(main())
        assert len(conflict) == 1
        for r in range(runs):
            assert ledger.run(f"r{r}").head == 3 * ticks
            assert ledger.verify(f"r{r}").ok
        assert committer.groups == runs * ticks
        # every tick of every run waited for one commit shared with the others
        assert committer.commits == len(commits) <= runs * ticks // 4


def test_the_committer_refuses_appends_when_not_running(tmp_path: Path) -> None:
    with SQLiteLedger(tmp_path / "g.db") as ledger:
        committer = GroupCommitter(ledger)

        async def outside() -> None:
            await committer.append("r", _tick(0, 1), create=True)

        with pytest.raises(LedgerUnavailable, match="not running"):
            asyncio.run(outside())
        assert ledger.runs() == []


def _statements(ledger: BaseLedger) -> list[str]:
    """The statements the ledger's connection executes from now on."""
    assert isinstance(ledger, SQLiteLedger)
    seen: list[str] = []
    ledger._db.set_trace_callback(seen.append)  # pyright: ignore[reportPrivateUsage]
    return seen


def test_groups_written_together_refuse_a_stale_or_fenced_group_alone(tmp_path: Path) -> None:
    """Groups that create no run go in one transaction without a savepoint each: every check
    that can refuse a group runs before anything of it is written."""
    with SQLiteLedger(tmp_path / "g.db") as ledger:
        for r in ("ok", "stale", "leased"):
            ledger.create_run(r)
        ledger.append("stale", _tick(0, 1))
        ledger.leases.acquire("leased", "someone", ttl_s=3600)
        seen = _statements(ledger)
        ok, stale, leased = ledger.append_groups(
            [
                AppendGroup("ok", _tick(1, 1), expected=1),
                AppendGroup("stale", _tick(2, 2), expected=1),  # its head is 3
                AppendGroup("leased", _tick(3, 1), expected=1),  # leased to someone else
            ]
        )
        assert isinstance(ok, list) and [t.seq for t in ok] == [1, 2, 3]
        assert isinstance(stale, SequenceConflict)
        assert isinstance(leased, Fenced)
        assert [s for s in seen if s.split()[0].upper() in ("SAVEPOINT", "COMMIT")] == ["COMMIT"]
        assert [ledger.run(r).head for r in ("ok", "stale", "leased")] == [3, 3, 0]
        assert ledger.verify("ok").ok and ledger.verify("stale").ok


def test_rows_already_stored_send_the_groups_one_by_one(tmp_path: Path) -> None:
    """Rows stored under a group's keys (a writer that did not move the head, or damage) roll
    the groups written together back; then each goes alone and only that one is refused."""
    with SQLiteLedger(tmp_path / "g.db") as ledger:
        ledger.create_run("a")
        ledger.create_run("b")
        rid = ledger.rid("b")
        ledger.execute(
            "INSERT INTO transitions VALUES (?, ?, 1, 0, NULL, 'tick.started', NULL, 1, 1, "
            "x'7b7d', ?)",
            (row_key(rid, 1), rid, bytes(32)),
        )
        seen = _statements(ledger)
        a, b = ledger.append_groups(
            [AppendGroup("a", _tick(0, 1), expected=1), AppendGroup("b", _tick(1, 1), expected=1)]
        )
        assert isinstance(a, list) and a[-1].seq == 3
        assert isinstance(b, SequenceConflict)
        assert [s.split()[0].upper() for s in seen].count("ROLLBACK") >= 1
        assert [s for s in seen if s.strip().upper() == "COMMIT"] == ["COMMIT"]
        assert (ledger.run("a").head, ledger.run("b").head) == (3, 0)
        assert ledger.verify("a").ok
