"""Run ownership with real processes, on a SQLite file and on PostgreSQL (``TELIC_PG_DSN``).

- Fencing: a child holds a run's lease and appends; it is paused (SIGSTOP) past its TTL;
  this process takes the run over through the sweeper and commits; the child is continued
  (SIGCONT) and its next append is refused: it exits, the chain has no fork, and nothing it
  tried after losing the lease is in the ledger.
- ``kill -9`` of a child driving a leased run in a non-idempotent call: the sweeper resumes
  the run once the lease expires; nothing committed is lost and the call is ``tool.unknown``,
  never run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from telic.kernel import Kernel, Sweeper
from telic.ledger import BaseLedger, open_ledger

from ._leased_child import config

ROOT = Path(__file__).resolve().parents[2]
TTL = 1.5
DSN = os.environ.get("TELIC_PG_DSN", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    if not DSN:
        pytest.skip("set TELIC_PG_DSN to run the lease process tests on PostgreSQL")
    import psycopg
    from psycopg import sql

    schema = f"telic_lease_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{DSN}?schema={schema}"
    finally:
        with psycopg.connect(DSN, autocommit=True) as db:
            db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.kernel._leased_child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _line(proc: subprocess.Popen[str], prefix: str, seen: list[str] | None = None) -> str:
    """The next line of the child's output that starts with ``prefix`` (every line read is
    added to ``seen``)."""
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if seen is not None and line:
            seen.append(line.strip())
        if not line:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"the child ended before {prefix!r}: {err}")
        if line.startswith(prefix):
            return line.strip()


def _wait_expired(ledger: BaseLedger, run_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lease = ledger.leases.get(run_id)
        assert lease is not None
        if not lease.live(ledger.leases.now_us()):
            return
        time.sleep(0.05)
    raise AssertionError("the lease never expired")


def test_a_paused_owner_is_fenced_after_a_takeover(url: str, tmp_path: Path) -> None:
    side = tmp_path / "side"
    ledger = open_ledger(url)
    try:

        async def boot() -> None:  # booted unleased; the child takes the lease
            run = await Kernel(ledger).boot(config("resume", side), run_id="r")
            await run.close()

        asyncio.run(boot())
        child = _child("ticks", url, "r", str(TTL))
        try:
            seen: list[str] = []
            assert _line(child, "READY", seen) == "READY 1"
            for _ in range(3):
                _line(child, "TICK", seen)
            child.send_signal(signal.SIGSTOP)  # just after a TICK: it sleeps 0.6 s now
            committed = [(t.seq, t.hash) for t in ledger.read("r")]
            _wait_expired(ledger, "r")
            time.sleep(0.2)  # well past it

            async def take_over() -> str:
                kernel = Kernel(ledger, holder="new", lease_ttl_s=TTL)
                (run,) = await Sweeper(kernel, lambda _: config("resume", side)).sweep()
                assert run.lease is not None and run.lease.epoch == 2
                assert await run.step()  # commits under epoch 2 (remember)
                child.send_signal(signal.SIGCONT)
                loop = asyncio.get_running_loop()
                fenced = await loop.run_in_executor(None, _line, child, "FENCED", seen)
                result = await run.until_done()  # it finishes here
                assert result.status == "completed"
                return fenced

            fenced = asyncio.run(take_over())
            out, err = child.communicate(timeout=60)
            seen += out.splitlines()
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGCONT)
                child.kill()
                child.communicate()
        assert child.returncode == 3, err
        assert fenced == "FENCED 1 2 new"
        tried = {int(x.split()[1]) for x in seen if x.startswith("TRY")}
        landed = {int(x.split()[1]) for x in seen if x.startswith("TICK")}
        assert tried - landed, "the child never tried to append after the takeover"
        assert ledger.verify("r").ok
        trail = list(ledger.read("r"))
        assert [t.seq for t in trail] == list(range(1, len(trail) + 1))  # one chain, no fork
        assert [(t.seq, t.hash) for t in trail[: len(committed)]] == committed
        old = [t for t in trail if t.kind == "observation.recorded" and t.data["source"] == "old"]
        assert {t.data["content"] for t in old} == landed  # nothing refused is there
        resumed = next(t for t in trail if t.kind == "run.resumed")
        assert all(t.seq < resumed.seq for t in old)
        assert trail[-1].kind == "run.completed"
        lease = ledger.leases.get("r")
        assert lease is not None and (lease.holder, lease.epoch, lease.released) == ("new", 2, True)
    finally:
        ledger.close()


def test_a_killed_owner_is_taken_over_and_its_call_is_unknown(url: str, tmp_path: Path) -> None:
    side = tmp_path / "side"
    child = _child("kernel", url, "r", str(TTL), str(side))
    try:
        assert _line(child, "BOOTED") == "BOOTED r"
        deadline = time.monotonic() + 60
        while not (side.exists() and side.read_text()):
            assert time.monotonic() < deadline, "the tool never started"
            time.sleep(0.05)
        child.kill()  # kill -9, in the middle of the call
        child.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
    ledger = open_ledger(url)
    try:
        committed = [(t.seq, t.hash) for t in ledger.read("r")]
        assert [t.kind for t in ledger.read("r")][-1] == "tool.started"
        lease = ledger.leases.get("r")
        assert lease is not None and lease.epoch == 1 and not lease.released

        async def sweep() -> str:
            kernel = Kernel(ledger, holder="new", lease_ttl_s=TTL)
            sweeper = Sweeper(kernel, lambda _: config("resume", side))
            deadline = time.monotonic() + 60
            while True:
                adopted = await sweeper.sweep()
                if adopted:
                    break
                assert time.monotonic() < deadline, "the sweeper never took the run over"
                await asyncio.sleep(0.1)
            (run,) = adopted
            return (await run.until_done()).status

        assert asyncio.run(sweep()) == "completed"
        trail = list(ledger.read("r"))
        assert ledger.verify("r").ok
        assert [(t.seq, t.hash) for t in trail[: len(committed)]] == committed
        kinds = [t.kind for t in trail[len(committed) :]]
        assert kinds[:2] == ["run.resumed", "tool.unknown"]
        assert "expired" in trail[len(committed)].data["reason"]
        assert len(side.read_text().splitlines()) == 1  # the effect ran once
        assert trail[-1].kind == "run.completed"
    finally:
        ledger.close()


def test_a_paused_kernel_loses_its_run_and_writes_nothing_after(url: str, tmp_path: Path) -> None:
    """The same with the kernel as the old owner: paused past its TTL while ticking (a
    non-idempotent call per tick), taken over, continued: its run ends there as lost, and
    every effect it caused has its write-ahead ``tool.started`` in the ledger, none after the
    takeover."""
    side = tmp_path / "side"
    child = _child("steady", url, "r", str(TTL), str(side))
    seen: list[str] = []
    try:
        assert _line(child, "BOOTED", seen) == "BOOTED r"
        for _ in range(3):
            _line(child, "TICK", seen)
        # Paused inside a call (the effect just written; it then waits 1 s), not inside a
        # write transaction: a process paused there would hold the SQLite file's write lock
        # (or, on PostgreSQL, its row locks) and stall the takeover; see docs/ledger.md.
        calls = len(side.read_text().splitlines())
        while len(side.read_text().splitlines()) == calls:
            time.sleep(0.005)
        child.send_signal(signal.SIGSTOP)
        pid = child.pid
        ledger = open_ledger(url)
        try:
            _wait_expired(ledger, "r")
            time.sleep(0.2)

            async def take_over() -> str:
                kernel = Kernel(ledger, holder="new", lease_ttl_s=TTL)
                (run,) = await Sweeper(kernel, lambda _: config("resume", side)).sweep()
                assert await run.step()
                child.send_signal(signal.SIGCONT)
                loop = asyncio.get_running_loop()
                end = await loop.run_in_executor(None, _line, child, "END", seen)
                assert (await run.until_done()).status == "completed"
                return end

            end = asyncio.run(take_over())
            child.communicate(timeout=60)
            assert child.returncode == 4
            assert end in ("END lost Fenced", "END lost LeaseLost")
            assert ledger.verify("r").ok
            trail = list(ledger.read("r"))
            assert [t.seq for t in trail] == list(range(1, len(trail) + 1))
            resumed = next(t for t in trail if t.kind == "run.resumed")
            mine = [t for t in trail if t.kind == "tool.started" and t.data["args"]["x"] == pid]
            assert mine and all(t.seq < resumed.seq for t in mine)
            effects = [ln for ln in side.read_text().splitlines() if ln.startswith(f"{pid} ")]
            assert len(effects) == len(mine)  # no effect without its record, none after
            assert trail[-1].kind == "run.completed"
        finally:
            ledger.close()
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
            child.communicate()
