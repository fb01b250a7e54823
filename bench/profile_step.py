"""Where each µs of a durable telic step goes: ``python bench/profile_step.py [--steps N]``.

Runs the durable-step workload of ``bench/peers`` (one agent, a ``FunctionMind`` that
remembers one value a tick, SQLite WAL) twice in one process, ``synchronous=FULL`` and
``synchronous=NORMAL``, with the stages of the tick and the parts of a commit wrapped in an
exclusive-time timer (a part's own time, not that of the parts it calls). The wrapper's own
cost is measured and subtracted per call. The fsync is the SQLite write's time under FULL less
its time under NORMAL; beside it the bare floors measured in the same process: one plain
SQLite durable commit (one 300-byte row, WAL, FULL) and one write + fdatasync.

Prints a table of µs per step by part; ``--json`` prints it as JSON. A profile, not a figure
with a target: the timer adds ~0.1 µs a call that is not fully subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import telic.canonical
import telic.kernel.batch
import telic.kernel.run
import telic.kernel.stages.record
import telic.kernel.tick
import telic.ledger.base
import telic.ledger.sqlite
from harness import fdatasync_latency_us, sqlite_commit_us
from telic.kernel import AgentSpec, Kernel, RunConfig
from telic.ledger import open_ledger
from telic.minds.base import FunctionMind, View
from telic.policy import Policy
from telic.proposal import Proposal
from telic.reducer import Fold

PARTS: list[tuple[str, Any, str, str]] = [
    # (category, owner, attribute, what it is)
    ("minds", telic.kernel.tick, "ask", "ask: tick.started, the mind asked in its process, intake"),
    ("records", telic.kernel.tick, "record", "record: proposal.made, model calls, crashes"),
    ("checks", telic.kernel.tick, "check", "check: schema, allowlist, arguments, budget, loop"),
    ("checks", telic.kernel.tick, "explore", "explore"),
    ("checks", telic.kernel.tick, "resolve_conflicts", "resolve conflicts"),
    ("checks", telic.kernel.tick, "ground", "ground"),
    ("checks", telic.kernel.tick, "approve", "approve"),
    ("records", telic.kernel.tick, "commit_effects", "commit effects: proposal.accepted, memory"),
    ("records", telic.kernel.tick, "execute", "execute (no tools here)"),
    ("records", telic.kernel.tick, "settle", "settle: progress, tick.completed"),
    ("checks", telic.kernel.run.Run, "_end_of_tick", "end of tick: budgets, return condition"),
    ("records", telic.kernel.batch.Batch, "add", "Batch.add: payload model to JSON"),
    ("records", telic.kernel.batch.Batch, "add_encoded", "Batch.add_encoded: number, decode"),
    ("records", Fold, "apply", "Fold.apply: the reducer (kernel's fold and ledger's head fold)"),
    ("hashing", Fold, "hash", "Fold.hash: the state hash in tick.completed"),
    ("encode", telic.kernel.batch, "encode_validated", "canonical encode of payloads"),
    ("hashing", telic.ledger.base, "record_body", "record_body: the hashed body"),
    ("records", telic.ledger.base.BaseLedger, "_append", "ledger append: chain, rows, head fold"),
    ("sqlite", telic.ledger.sqlite.SQLiteLedger, "_write", "SQLite: BEGIN, UPDATE, INSERT, COMMIT"),
]


class Timer:
    """Exclusive time per part: a stack of (part, start, time of the children)."""

    def __init__(self) -> None:
        self.own: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[Any]] = []
        self.clock = time.thread_time
        """CPU time of this thread: what other processes on a loaded machine take is not
        charged, nor is waiting (the fsync shows as wall time less CPU time)."""

    def reset(self) -> None:
        """Forget what was timed so far (between calls: the stack is empty)."""
        self.own.clear()
        self.calls.clear()

    def enter(self, name: str) -> None:
        self._stack.append([name, self.clock(), 0.0])

    def leave(self) -> None:
        name, start, children = self._stack.pop()
        spent = self.clock() - start
        self.own[name] = self.own.get(name, 0.0) + spent - children
        self.calls[name] = self.calls.get(name, 0) + 1
        if self._stack:
            self._stack[-1][2] += spent

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(fn):

            async def awrapped(*args: Any, **kw: Any) -> Any:
                # an await inside suspends the stack: the loop runs other tasks (the
                # agent's process) meanwhile, which are charged to this part
                self.enter(name)
                try:
                    return await fn(*args, **kw)
                finally:
                    self.leave()

            return awrapped

        def wrapped(*args: Any, **kw: Any) -> Any:
            self.enter(name)
            try:
                return fn(*args, **kw)
            finally:
                self.leave()

        return wrapped


def _overhead_us() -> float:
    """What one wrapped call adds, measured (subtracted per call)."""
    timer = Timer()

    def f() -> None:
        return None

    g = timer.wrap("x", f)
    n = 200_000
    t0 = time.thread_time()
    for _ in range(n):
        f()
    bare = time.thread_time() - t0
    t0 = time.thread_time()
    for _ in range(n):
        g()
    return (time.thread_time() - t0 - bare) / n * 1e6


def _noop(view: View) -> Proposal:
    return Proposal(action="remember", args={"key": "step", "value": view.tick})


async def _run(path: str, steps: int, timer: Timer) -> tuple[float, float]:
    """Seconds of wall time and of this thread's CPU time the ``steps`` took."""
    ledger = open_ledger(path)
    cfg = RunConfig(
        goal="benchmark",
        agents=[AgentSpec("agent", "worker", FunctionMind(_noop))],
        policy=Policy(stall_ticks=0),
    )
    run = await Kernel(ledger).boot(cfg, run_id="bench")
    try:
        for _ in range(20):
            await run.step()
        timer.reset()  # boot and warm-up are not the steps measured
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(steps):
            await run.step()
        return time.perf_counter() - t0, time.thread_time() - c0
    finally:
        await run.close()
        ledger.close()


def profile(steps: int, directory: str) -> dict[str, Any]:
    overhead = _overhead_us()
    originals = [(owner, attr, getattr(owner, attr)) for _, owner, attr, _ in PARTS]
    result: dict[str, Any] = {"steps": steps, "timer_overhead_us_per_call": overhead}
    try:
        for sync in ("full", "normal"):
            timer = Timer()
            for (_, owner, attr, _), (_, _, fn) in zip(PARTS, originals, strict=True):
                setattr(owner, attr, timer.wrap(attr, fn))
            with tempfile.TemporaryDirectory(dir=directory) as d:
                url = "sqlite://" + os.path.join(d, "p.db") + f"?synchronous={sync}"
                total, cpu = asyncio.run(_run(url, steps, timer))
            for owner, attr, fn in originals:
                setattr(owner, attr, fn)
            parts = {
                attr: max(
                    0.0,
                    timer.own.get(attr, 0.0) * 1e6 / steps
                    - overhead * timer.calls.get(attr, 0) / steps,
                )
                for _, _, attr, _ in PARTS
            }
            result[sync] = {
                "step_us": total * 1e6 / steps,
                "cpu_us": cpu * 1e6 / steps,
                "parts_us": parts,
            }
    finally:
        for owner, attr, fn in originals:
            setattr(owner, attr, fn)
    result["sqlite_commit_us"] = sqlite_commit_us(300, directory=directory)
    result["fdatasync_us"] = fdatasync_latency_us(300, directory=directory)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dir", default=None, help="directory on the disk to measure")
    args = ap.parse_args(argv)
    r = profile(args.steps, args.dir or tempfile.gettempdir())
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    full, normal = r["full"], r["normal"]
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.steps} steps; timer {r['timer_overhead_us_per_call']:.2f} us/call subtracted"
    )
    print(f"{'part':<66} {'FULL':>8} {'NORMAL':>8}")
    for cat, _, attr, what in PARTS:
        print(
            f"{cat + ': ' + what:<66} {full['parts_us'][attr]:>8.1f} {normal['parts_us'][attr]:>8.1f}"
        )
    for row in (full, normal):
        row["rest_us"] = row["cpu_us"] - sum(row["parts_us"].values())
    print(
        f"{'rest: asyncio loop, Run.step, commit bookkeeping':<66} {full['rest_us']:>8.1f} {normal['rest_us']:>8.1f}"
    )
    print(
        f"{'step: CPU time (wrappers on, their cost subtracted above only)':<66} {full['cpu_us']:>8.1f} {normal['cpu_us']:>8.1f}"
    )
    print(f"{'step: wall time':<66} {full['step_us']:>8.1f} {normal['step_us']:>8.1f}")
    print(
        f"waiting (wall - CPU: the fsync, and the CPU other processes took): FULL "
        f"{full['step_us'] - full['cpu_us']:.1f} us, NORMAL {normal['step_us'] - normal['cpu_us']:.1f} us; "
        f"bare SQLite durable commit {r['sqlite_commit_us']:.1f} us; write+fdatasync {r['fdatasync_us']:.1f} us"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
