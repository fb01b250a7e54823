"""Many runs of one kernel, each committing every tick durably, sharing fsyncs through a
:class:`~telic.ledger.GroupCommitter` (real time, a real SQLite file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from telic.clock import SystemClock
from telic.errors import ConfigError
from telic.kernel import Budget, Kernel, RunConfig, RunResult
from telic.ledger import GroupCommitter, MemoryLedger, SQLiteLedger
from telic.policy import Policy

from .kit import OPENED, agent, config, finish, remember


def test_runs_of_one_kernel_share_their_commits_and_each_ends_whole(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "many.db")
    OPENED.append(ledger)  # verified and replayed after the test (conftest)
    runs, ticks = 12, 6

    def cfg(i: int) -> RunConfig:
        steps = [remember(f"k{t}", [i, t]) for t in range(ticks)]
        return config(
            agent(f"a{i}", *steps, finish(i)),
            budget=Budget(ticks=ticks + 5),
            policy=Policy(stall_ticks=0),
        )

    async def main() -> tuple[list[RunResult], GroupCommitter]:
        async with GroupCommitter(ledger) as committer:
            kernel = Kernel(ledger, clock=SystemClock(), committer=committer)
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(kernel.run(cfg(i), run_id=f"r{i}")) for i in range(runs)]
        return [t.result() for t in tasks], committer

    results, committer = asyncio.run(main())
    assert [r.status for r in results] == ["completed"] * runs
    for i, r in enumerate(results):
        state = ledger.state_at(r.run_id)
        assert state["memory"][f"a{i}"] == {f"k{t}": [i, t] for t in range(ticks)}
        assert ledger.run(r.run_id).head == r.transitions
    # every run committed each of its ticks (and its end) through the committer; the runs
    # waited for shared commits, far fewer than their ticks
    assert committer.groups >= runs * (ticks + 1)
    assert committer.commits <= committer.groups // 3


def test_a_committer_on_another_ledger_is_refused() -> None:
    async def main() -> None:
        async with GroupCommitter(MemoryLedger()) as committer:
            Kernel(MemoryLedger(), committer=committer)

    with pytest.raises(ConfigError, match="another ledger"):
        asyncio.run(main())
