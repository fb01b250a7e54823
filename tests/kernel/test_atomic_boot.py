"""A run either does not exist or is booted: creating it and ``run.booted`` are one commit.

A crash between the two used to leave a run with no transitions, which nothing can resume
(``RunNotResumable: it has no run.booted transition``) and whose id stays taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telic.clock import VirtualClock
from telic.errors import LedgerError, RunExists
from telic.kernel import Kernel, RunConfig
from telic.ledger import BaseLedger, SQLiteLedger

from .kit import agent, config, finish, new_ledger, on_virtual_time, remember


def _boot(ledger: BaseLedger, cfg: RunConfig, run_id: str = "r") -> None:
    async def scenario(clock: VirtualClock) -> None:
        run = await Kernel(ledger, clock=clock).boot(cfg, run_id=run_id)
        await run.close()

    on_virtual_time(scenario)


def test_a_failure_while_booting_leaves_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = new_ledger(str(tmp_path / "telic.db"))
    assert isinstance(ledger, SQLiteLedger)
    cfg = config(agent("a", remember("k", 1), finish()), agent("b", finish()))
    real_write = ledger._write  # pyright: ignore[reportPrivateUsage]

    def failing_write(*args: Any, **kwargs: Any) -> None:
        raise LedgerError("append failed: database or disk is full (injected)")

    monkeypatch.setattr(ledger, "_write", failing_write)
    with pytest.raises(LedgerError, match="disk is full"):
        _boot(ledger, cfg)
    assert ledger.runs() == []  # not a run with no boot: no run

    monkeypatch.setattr(ledger, "_write", real_write)
    _boot(ledger, cfg)  # the id is free, and the run boots whole
    kinds = [t.kind for t in ledger.read("r")]
    assert kinds == ["run.booted", "agent.spawned", "agent.spawned"]

    async def resume(clock: VirtualClock) -> str:
        run = await Kernel(ledger, clock=clock).resume("r", cfg)
        result = await run.until_done()
        await run.close()
        return result.status

    assert on_virtual_time(resume) == "completed"


def test_booting_a_taken_id_starts_nothing() -> None:
    ledger = new_ledger()
    cfg = config(agent("a", finish()))
    _boot(ledger, cfg)
    head = ledger.run("r").head
    with pytest.raises(RunExists):
        _boot(ledger, cfg)
    assert ledger.run("r").head == head
