"""SIGKILL a process that boots runs: every run in the file is booted and resumable.

Before run creation and ``run.booted`` were one commit, a kill between the two durable commits
left an empty run that ``resume`` refused ("it has no run.booted transition").
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from telic.clock import VirtualClock
from telic.kernel import Kernel
from telic.ledger import SQLiteLedger

from ._boot_writer import config
from .kit import on_virtual_time

ROOT = Path(__file__).resolve().parents[2]
KILLS = 6


def _boot_and_kill(path: Path, rng: random.Random) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kernel._boot_writer", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY", proc.stderr and proc.stderr.read()
    time.sleep(rng.uniform(0.02, 0.3))
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    return [line.split()[1] for line in out.splitlines() if line.startswith("BOOTED")]


def test_a_killed_boot_leaves_no_run_or_a_booted_one(tmp_path: Path) -> None:
    path = tmp_path / "boots.db"
    rng = random.Random(7)
    acknowledged: list[str] = []
    for _ in range(KILLS):
        acknowledged += _boot_and_kill(path, rng)
    with SQLiteLedger(path) as ledger:
        runs = ledger.runs()
        assert {r.id for r in runs} >= set(acknowledged)  # nothing acknowledged is lost
        for info in runs:
            first = [t.kind for t in ledger.read(info.id)]
            assert first == ["run.booted", "agent.spawned", "agent.spawned"], info
            assert ledger.verify(info.id).ok

        async def resume_last(clock: VirtualClock) -> str:
            run = await Kernel(ledger, clock=clock).resume(runs[-1].id, config())
            result = await run.until_done()
            await run.close()
            return result.status

        assert on_virtual_time(resume_last) == "completed"
