"""telic's side of the workloads (run with telic's interpreter; see ``run.py``).

One agent, a :class:`FunctionMind`, the SQLite ledger at its default durability
(``synchronous=FULL``, WAL): each ``Run.step`` is one tick committed as one durable group
commit before the next tick starts (two commits when the tick calls a tool: the call is
recorded as started before it runs, then its result).
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
from pathlib import Path
from typing import Any

import orjson
from common import EFFECT_LATENCY_S, Args, Marks, chunk, db_bytes, emit, now, parse

from telic.kernel import AgentSpec, Kernel, Run, RunConfig
from telic.ledger import open_ledger
from telic.minds.base import FunctionMind, View
from telic.policy import Policy
from telic.proposal import Proposal
from telic.tools import Tool, tool

RUN_ID = "bench"
READS = 5
"""Reads per timed read (median), each on a freshly opened ledger."""


def _config(mind: FunctionMind, tools: tuple[Tool, ...] = ()) -> RunConfig:
    # The benchmark agent never finishes and measures no progress: no stall guard.
    return RunConfig(
        goal="benchmark",
        agents=[AgentSpec("agent", "worker", mind, tools=tuple(t.name for t in tools))],
        tools=tools,
        policy=Policy(stall_ticks=0),
    )


def _noop(view: View) -> Proposal:
    return Proposal(action="remember", args={"key": "step", "value": view.tick})


def _grow(view: View) -> Proposal:
    return Proposal(action="remember", args={"key": f"k{view.tick}", "value": chunk(view.tick)})


def _call_effect(view: View) -> Proposal:
    return Proposal(action="tool", args={"tool": "effect", "args": {"step": view.tick}})


def _effect_tool(effects: Marks) -> Tool:
    @tool(name="effect", idempotent=False)
    async def effect(step: int) -> int:
        """Write this step's side effect; the result comes back later."""
        effects.mark(step)
        await asyncio.sleep(EFFECT_LATENCY_S)
        return step

    return effect


async def _steps(run: Run, n: int) -> None:
    for _ in range(n):
        if not await run.step():
            raise RuntimeError(f"the run ended early: {run.state.status} {run.state.reason}")


def _timed_reads(path: Path, seq: int | None) -> float:
    """Median seconds of ``state_at`` on a freshly opened ledger (no in-process cache)."""
    times: list[float] = []
    for _ in range(READS):
        ledger = open_ledger(path)
        try:
            t0 = now()
            state = ledger.state_at(RUN_ID, seq)
            times.append(now() - t0)
            assert state["memory"]["agent"]
        finally:
            ledger.close()
    return statistics.median(times)


def _timed_decode(path: Path, seq: int) -> float:
    """Median seconds to decode the state at ``seq`` from its JSON: what any full read of
    that state costs, however it is stored (a floor for ``state_at``)."""
    ledger = open_ledger(path)
    try:
        raw = orjson.dumps(ledger.state_at(RUN_ID, seq))
    finally:
        ledger.close()
    times: list[float] = []
    for _ in range(READS):
        t0 = now()
        orjson.loads(raw)
        times.append(now() - t0)
    return statistics.median(times)


def _timed_fetch(path: Path, seq: int) -> float:
    """Median seconds to fetch the bytes of the snapshot nearest at or before ``seq`` with
    plain ``sqlite3`` on a freshly opened connection (its schema already read, as an opened
    ledger's is), and decode them: the least a read of a state stored in SQLite costs on a
    fresh connection before anything is folded onto it (a floor for ``state_at`` beside its
    decode)."""
    times: list[float] = []
    for _ in range(READS):
        db = sqlite3.connect(path)
        try:
            db.execute("SELECT rid FROM runs LIMIT 1").fetchall()  # the schema, read once
            t0 = now()
            (state,) = db.execute(
                "SELECT s.state FROM snapshots s JOIN runs r ON r.rid = s.rid "
                "WHERE r.id = ? AND s.seq <= ? ORDER BY s.seq DESC LIMIT 1",
                (RUN_ID, seq),
            ).fetchone()
            orjson.loads(state)
            times.append(now() - t0)
        finally:
            db.close()
    return statistics.median(times)


ANYWHERE = 16
"""State reads at this many evenly spaced seqs, besides the one before each snapshot."""


def _state_anywhere(path: Path, start: int) -> list[tuple[int, float, float, float]]:
    """``(seq, state_at s, decode s, fetch s)`` at seqs from ``start`` to the head: evenly
    spaced, and the seq before each snapshot (where ``state_at`` folds the most); ``fetch``
    is :func:`_timed_fetch`."""
    ledger = open_ledger(path)
    try:
        head = ledger.run(RUN_ID).head
        taken = {ledger.last_snapshot(RUN_ID, s) for s in range(start, head + 1)}
    finally:
        ledger.close()
    step = max(1, (head - start) // ANYWHERE)
    points = sorted({s - 1 for s in taken if s > start} | set(range(start, head + 1, step)))
    return [
        (s, _timed_reads(path, s), _timed_decode(path, s), _timed_fetch(path, s)) for s in points
    ]


async def durable(a: Args) -> dict[str, Any]:
    path = a.dir / "telic.db"
    ledger = open_ledger(path if a.sync == "full" else f"sqlite://{path}?synchronous={a.sync}")
    try:
        run = await Kernel(ledger).boot(_config(FunctionMind(_noop)), run_id=RUN_ID)
        t0 = now()
        await _steps(run, a.steps)
        elapsed = now() - t0
        await run.close()
    finally:
        ledger.close()
    return {"us_per_step": elapsed / a.steps * 1e6}


async def growing(a: Args) -> dict[str, Any]:
    path = a.dir / "telic.db"
    ledger = open_ledger(path)
    config = _config(FunctionMind(_grow))
    kernel = Kernel(ledger)
    try:
        run = await kernel.boot(config, run_id=RUN_ID)
        bytes_0 = db_bytes(path)
        await _steps(run, a.half)
        seq_half = ledger.run(RUN_ID).head
        bytes_half = db_bytes(path)
        await _steps(run, a.steps - a.half)
        await run.close()
        bytes_full = db_bytes(path)
    finally:
        ledger.close()
    read_now = _timed_reads(path, None)
    read_half = _timed_reads(path, seq_half)
    decode_half = _timed_decode(path, seq_half)
    anywhere = _state_anywhere(path, seq_half)
    worst = max(anywhere, key=lambda p: p[1] / p[2])

    ledger = open_ledger(path)
    try:
        kernel = Kernel(ledger)
        t0 = now()
        fork_id = kernel.fork(RUN_ID, seq_half)
        t1 = now()
        forked = await kernel.resume(fork_id, config, reason="forked")
        t2 = now()
        await _steps(forked, a.fork_steps)
        t3 = now()
        await forked.close()
        memory = forked.state.memory["agent"]
        assert len(memory) == a.half + a.fork_steps, len(memory)
    finally:
        ledger.close()
    return {
        "bytes_0": bytes_0,
        "bytes_half": bytes_half,
        "bytes_full": bytes_full,
        "state_now_s": read_now,
        "state_half_s": read_half,
        "decode_half_s": decode_half,
        "state_any_worst_over_decode": worst[1] / worst[2],
        "state_any_worst": {
            "seq": worst[0],
            "state_s": worst[1],
            "decode_s": worst[2],
            "fetch_s": worst[3],
        },
        "state_any_worst_fetch_over_decode": worst[3] / worst[2],
        "state_any_worst_over_fetch": max(p[1] / p[3] for p in anywhere),
        "state_any": anywhere,
        "fork_s": t3 - t0,
        "fork_parts_s": {"fork": t1 - t0, "resume": t2 - t1, "steps": t3 - t2},
    }


async def crash_run(a: Args) -> dict[str, Any]:
    """Run until killed: acknowledge each step once ``Run.step`` has returned (committed)."""
    ledger = open_ledger(a.dir / "telic.db")
    acks = Marks(a.acks)
    config = _config(FunctionMind(_call_effect), (_effect_tool(Marks(a.effects)),))
    run = await Kernel(ledger).boot(config, run_id=RUN_ID)
    while run.state.tick < a.steps:
        await _steps(run, 1)
        acks.mark(run.state.tick)
    await run.close()
    ledger.close()
    return {"finished": True}


async def crash_resume(a: Args) -> dict[str, Any]:
    ledger = open_ledger(a.dir / "telic.db")
    try:
        before = ledger.state_at(RUN_ID)
        recovered = int(before["tick"]) - (1 if before["tick_open"] else 0)
        config = _config(FunctionMind(_call_effect), (_effect_tool(Marks(a.effects)),))
        run = await Kernel(ledger).resume(RUN_ID, config)
        while run.state.tick < a.steps:
            await _steps(run, 1)
        await run.close()
        counts = dict(run.state.counts)
        done = int(run.state.tick)
    finally:
        ledger.close()
    return {"recovered": recovered, "done": done, "unknown": counts.get("tool.unknown", 0)}


WORKLOADS = {
    "durable": durable,
    "growing": growing,
    "crash-run": crash_run,
    "crash-resume": crash_resume,
}


if __name__ == "__main__":
    args = parse()
    emit(asyncio.run(WORKLOADS[args.workload](args)))
