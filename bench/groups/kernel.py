"""Kernel figures (issue 3): step overhead, swarm throughput, idle agents, restart time."""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
import tracemalloc
from typing import Any

from harness import Figure, fdatasync_latency_us, median, sqlite_commit_us
from telic.clock import SystemClock
from telic.kernel import AgentSpec, Budget, Kernel, Run, RunConfig
from telic.kernel.process import AgentProcess
from telic.ledger import GroupCommitter, open_ledger
from telic.minds.base import FunctionMind, View
from telic.policy import Policy
from telic.proposal import Proposal
from telic.supervision import ChildSpec, Supervisor

GROUP = "kernel"

STEP_OVER_COMMIT = 1.5
"""Issue 15: a durable step costs at most this many bare SQLite durable commits."""
SPAWN_OVER_TASK = 1 / 5
"""A supervised agent spawns at least this fraction as fast as a bare ``create_task``."""


def _noop(view: View) -> Proposal:
    return Proposal(action="remember", args={"key": "step", "value": view.tick})


def _config(n_agents: int, ticks: int) -> RunConfig:
    return RunConfig(
        goal="bench",
        agents=[AgentSpec(f"a{i}", "worker", FunctionMind(_noop)) for i in range(n_agents)],
        budget=Budget(ticks=ticks + 1),
        policy=Policy(stall_ticks=0, verifier=None),
        return_condition=lambda s: False,
        progress=lambda s: 0.0,
        intensity=1_000_000,  # the restart figure kills agents back to back
    )


async def _steps(url: str, n_agents: int, ticks: int) -> tuple[list[float], int]:
    ledger = open_ledger(url)
    run = await Kernel(ledger, clock=SystemClock()).boot(_config(n_agents, ticks))
    lat: list[float] = []
    head0 = ledger.run(run.id).head
    try:
        for _ in range(ticks):
            t0 = time.perf_counter()
            await run.step()
            lat.append(time.perf_counter() - t0)
    finally:
        await run.close()
    committed = ledger.run(run.id).head - head0
    ledger.close()
    return lat, committed


def _step_overhead(repeats: int) -> list[Figure]:
    """The durable step beside its floor: one bare SQLite durable commit, measured on the
    same disk just before each repetition (issue 15: a step <= 1.5x that commit)."""
    meds: list[float] = []
    floors: list[float] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            floors.append(sqlite_commit_us(100, directory=d))
            lat, _ = asyncio.run(_steps(os.path.join(d, "k.db"), 1, 300))
            meds.append(median(lat[20:]) * 1e6)
    floor, step = median(floors), median(meds)
    return [
        Figure(GROUP, "disk: one bare SQLite durable commit (WAL, FULL, 1 row)", floor, "µs", None),
        Figure(
            GROUP,
            "no-op agent step (propose, validate, FULL commit, apply)",
            step,
            "µs",
            STEP_OVER_COMMIT * floor,
            note=f"{STEP_OVER_COMMIT}x the bare commit beside it; {step / floor:.2f}x",
        ),
    ]


async def _many(path: str, runs: int, ticks: int, shared: bool) -> tuple[float, int]:
    """``runs`` no-op runs of one kernel in one process, each committing every tick durably
    on one SQLite file, with their commits shared (a GroupCommitter) or not: ticks/s in
    all, and the durable commits made."""
    ledger = open_ledger(path)
    try:
        async with GroupCommitter(ledger) as committer:
            kernel = Kernel(ledger, clock=SystemClock(), committer=committer if shared else None)
            booted = [await kernel.boot(_config(1, ticks)) for _ in range(runs)]

            async def drive(run: Run) -> None:
                for _ in range(ticks):
                    await run.step()

            t0 = time.perf_counter()
            try:
                async with asyncio.TaskGroup() as tg:
                    for run in booted:
                        tg.create_task(drive(run))
            finally:
                for run in booted:
                    await run.close()
            elapsed = time.perf_counter() - t0
        return runs * ticks / elapsed, committer.commits if shared else runs * ticks
    finally:
        ledger.close()


def _many_runs(repeats: int) -> list[Figure]:
    runs, ticks = 100, 20
    alone: list[float] = []
    shared: list[tuple[float, int]] = []
    for _ in range(max(1, repeats // 2)):
        with tempfile.TemporaryDirectory() as d:
            alone.append(asyncio.run(_many(os.path.join(d, "a.db"), runs, ticks, False))[0])
            shared.append(asyncio.run(_many(os.path.join(d, "s.db"), runs, ticks, True)))
    rate_alone = median(alone)
    rate = median([r for r, _ in shared])
    per_commit = median([runs * ticks / c for _, c in shared])
    return [
        Figure(
            GROUP,
            f"{runs} runs of one kernel at once, each tick its own FULL commit",
            rate_alone,
            "ticks/s",
            None,
            note="reference: no sharing",
        ),
        Figure(
            GROUP,
            f"{runs} runs of one kernel at once, commits shared (Kernel(committer=...))",
            rate,
            "ticks/s",
            None,
            note=f"{rate / rate_alone:.1f}x unshared; {per_commit:.0f} ticks a commit",
        ),
    ]


def _step_cpu(repeats: int) -> Figure:
    meds: list[float] = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            lat, _ = asyncio.run(
                _steps("sqlite://" + os.path.join(d, "k.db") + "?synchronous=normal", 1, 300)
            )
            meds.append(median(lat[20:]) * 1e6)
    return Figure(
        GROUP,
        "no-op agent step, synchronous=normal (the kernel's own cost)",
        median(meds),
        "µs",
        None,
    )


def _swarm(repeats: int) -> Figure:
    rates: list[float] = []
    for _ in range(max(1, repeats // 2)):
        with tempfile.TemporaryDirectory() as d:
            lat, committed = asyncio.run(_steps(os.path.join(d, "k.db"), 1000, 10))
            rates.append(committed / sum(lat))
    return Figure(
        GROUP,
        "1,000 no-op agents x 10 ticks, group commit per tick",
        median(rates),
        "trans/s",
        20_000.0,
        ">=",
    )


async def _bare_tasks(n: int) -> float:
    """Tasks/s of bare ``create_task`` of idle coroutines: the floor of spawning an agent."""

    async def idle(ready: asyncio.Event) -> None:
        await ready.wait()

    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    tasks = [loop.create_task(idle(ready)) for _ in range(n)]
    elapsed = time.perf_counter() - t0
    ready.set()
    await asyncio.gather(*tasks)
    return n / elapsed


async def _idle_agents(n: int, *, measure_memory: bool) -> float:
    """Memory per idle agent (bytes, by tracemalloc) or spawn rate (agents/s, untraced)."""

    sup = Supervisor("bench", strategy="simple_one_for_one", intensity=10, period=1.0)
    await sup.start()
    gc.collect()
    if measure_memory:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if measure_memory else 0
    t0 = time.perf_counter()
    for i in range(n):
        proc = AgentProcess(f"a{i}", FunctionMind(_noop), mind_timeout_s=60.0)
        await sup.start_child(
            ChildSpec(id=proc.name, start=proc.body, restart="permanent", shutdown="brutal_kill")
        )
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0)  # let every agent reach its idle wait
    result = n / elapsed
    if measure_memory:
        result = (tracemalloc.get_traced_memory()[0] - before) / n
        tracemalloc.stop()
    await sup.stop()
    return result


def _restarted(run: Any, name: str) -> bool:
    return any(
        c.id == name and c.running and c.restarts == 1 for c in run.supervisor.which_children()
    )


async def _restart(transitions: int) -> float:
    ledger = open_ledger("memory://")
    kernel = Kernel(ledger, clock=SystemClock())
    run = await kernel.boot(_config(50, transitions))
    while ledger.run(run.id).head < transitions:
        if not await run.step():
            raise RuntimeError(f"the run ended early: {run.state.reason}")
    samples: list[float] = []
    try:
        for i in range(20):
            name = f"a{i}"
            t0 = time.perf_counter()
            assert run.supervisor.kill(name, reason="bench")
            # Busy-poll on purpose: the figure is the restart latency, with nothing added.
            while not _restarted(run, name):  # noqa: ASYNC110
                await asyncio.sleep(0)
            ledger.state_at(run.id)  # the restarted agent's state, rebuilt from the ledger
            samples.append(time.perf_counter() - t0)
    finally:
        await run.close()
    return median(samples) * 1e3


def collect(repeats: int) -> list[Figure]:
    out = [Figure(GROUP, "disk: write + fdatasync (reference)", fdatasync_latency_us(), "µs", None)]
    out.extend(_step_overhead(repeats))
    out.append(_step_cpu(repeats))
    out.append(_swarm(repeats))
    out.extend(_many_runs(repeats))
    per_agent = asyncio.run(_idle_agents(100_000, measure_memory=True))
    rate = median(
        [
            asyncio.run(_idle_agents(100_000, measure_memory=False))
            for _ in range(max(1, repeats // 2))
        ]
    )
    out.append(
        Figure(
            GROUP,
            "100,000 idle supervised agents: memory each",
            per_agent / 1024,
            "KB",
            3.0,
            note="tracemalloc; Erlang process 2.7 KB",
        )
    )
    bare = median([asyncio.run(_bare_tasks(100_000)) for _ in range(max(1, repeats // 2))])
    out.append(Figure(GROUP, "bare create_task of an idle coroutine", bare, "tasks/s", None))
    out.append(
        Figure(
            GROUP,
            "spawning supervised agents",
            rate,
            "agents/s",
            SPAWN_OVER_TASK * bare,
            ">=",
            note=f"{SPAWN_OVER_TASK:.2g}x bare create_task beside it; {rate / bare:.2f}x",
        )
    )
    out.append(
        Figure(
            GROUP,
            "crashed agent restarted + state rebuilt (10k-transition run)",
            asyncio.run(_restart(10_000)),
            "ms",
            5.0,
        )
    )
    return out
