"""Supervision's figures (issue 3): 100,000 idle supervised agents in one process.

- **memory per idle agent**: every byte that spawning adds (child spec, the supervisor's record,
  the asyncio task, the coroutine and its frame, the future it idles on), by ``tracemalloc``,
  divided by the number of agents. Target 3 KB; an Erlang process measured on the reference
  machine is 2.7 KB. Each agent idles on an ``asyncio.Event`` of its own (its wake-up call);
  an Event is about 1 KB of that (its waiter deque), a bare future would be 0.1 KB.
- **spawn rate**: ``start_child`` into a ``simple_one_for_one`` pool, specs built inside the
  timed region, until every task has run to its idle await. Timed in CPU seconds of this
  process (``time.process_time``), because the benchmark machine is shared; the wall-clock
  rate of the same run is in the note.
- **restart latency**: from the moment a child raises (or is killed) to the moment its
  restarted body runs, with 10,000 idle siblings under the same supervisor; median. The kernel's
  target for a restart *with state rebuilt from the ledger* is 5 ms; this is the supervisor's
  share of it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc
from collections.abc import Coroutine
from typing import Any

from harness import Figure, median
from telic.supervision import ChildSpec, Supervisor

GROUP = "supervision"

AGENTS = 100_000
SIBLINGS = 10_000
CRASHES = 1_000
"""Crashes (and kills) timed per repeat for the restart latency."""


async def _idle() -> None:
    await asyncio.Event().wait()


async def _spawn(pool: Supervisor, n: int) -> None:
    for i in range(n):  # one body for the whole pool, like OTP's template
        await pool.start_child(ChildSpec(f"agent-{i}", _idle))
    await asyncio.sleep(0)  # every new task runs to its idle await


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _spawn_run() -> tuple[float, float, float]:
    """CPU and wall seconds to spawn AGENTS idle agents, and the RSS added per agent."""

    async def main() -> tuple[float, float, float]:
        pool = Supervisor("pool", strategy="simple_one_for_one")
        await pool.start()
        gc.collect()
        rss0 = _rss_bytes()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await _spawn(pool, AGENTS)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        per_agent = (_rss_bytes() - rss0) / AGENTS
        assert pool.count_children().active == AGENTS
        await pool.stop()
        return cpu, wall, per_agent

    return asyncio.run(main())


def _bare_spawn_cpu() -> float:
    """CPU seconds to start the same AGENTS tasks with plain ``create_task``, no supervisor:
    the ceiling this machine and CPython's task and GC costs allow."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        gc.collect()
        cpu0 = time.process_time()
        tasks = [loop.create_task(_idle(), name=f"agent-{i}") for i in range(AGENTS)]
        await asyncio.sleep(0)
        cpu = time.process_time() - cpu0
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks)
        return cpu

    return asyncio.run(main())


def _traced_bytes_per_agent() -> float:
    async def main() -> float:
        pool = Supervisor("pool", strategy="simple_one_for_one")
        await pool.start()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        await _spawn(pool, AGENTS)
        gc.collect()
        per_agent = (tracemalloc.get_traced_memory()[0] - before) / AGENTS
        await pool.stop()
        return per_agent

    tracemalloc.start()
    try:
        return asyncio.run(main())
    finally:
        tracemalloc.stop()


class _Victim:
    """A child that records when its body starts and when it crashes."""

    def __init__(self) -> None:
        self.started = 0.0
        self.ended = 0.0
        self.running = asyncio.Event()
        self.crash = asyncio.Event()

    def start(self) -> Coroutine[Any, Any, None]:
        return self._body()

    async def _body(self) -> None:
        self.started = time.perf_counter()
        self.running.set()
        await self.crash.wait()
        self.crash.clear()
        self.ended = time.perf_counter()
        raise RuntimeError("crash")


def _restart_latencies(by_kill: bool) -> list[float]:
    """Seconds from a crash (or a kill) to the restarted body running, CRASHES times."""

    async def main() -> list[float]:
        victim = _Victim()
        children = [ChildSpec(f"sibling-{i}", _idle) for i in range(SIBLINGS)]
        children.append(ChildSpec("victim", victim.start))
        sup = Supervisor("root", children, intensity=CRASHES * 2, period=1e9)
        await sup.start()
        await victim.running.wait()
        out: list[float] = []
        t0 = 0.0
        for _ in range(CRASHES):
            victim.running.clear()
            if by_kill:
                t0 = time.perf_counter()
                sup.kill("victim")
            else:
                victim.crash.set()
            await victim.running.wait()
            out.append(victim.started - (t0 if by_kill else victim.ended))
        await sup.stop()
        return out

    return asyncio.run(main())


def collect(repeats: int) -> list[Figure]:
    runs = [_spawn_run() for _ in range(max(1, repeats))]
    spawn_cpu = median([cpu for cpu, _, _ in runs])
    spawn_wall = median([wall for _, wall, _ in runs])
    rss_per_agent = median([rss for _, _, rss in runs])
    bare_cpu = median([_bare_spawn_cpu() for _ in range(max(1, repeats))])
    traced = median([_traced_bytes_per_agent() for _ in range(max(1, min(repeats, 3)))])
    crash = median([x for _ in range(max(1, repeats)) for x in _restart_latencies(False)])
    kill = median([x for _ in range(max(1, repeats)) for x in _restart_latencies(True)])
    return [
        Figure(
            GROUP,
            f"memory per idle supervised agent ({AGENTS:,} agents, tracemalloc)",
            traced / 1024,
            "KB",
            3.0,
            "<=",
            f"RSS delta {rss_per_agent / 1024:.2f} KB/agent; Erlang process: 2.7 KB",
        ),
        Figure(
            GROUP,
            f"spawn rate ({AGENTS:,} agents into a pool)",
            AGENTS / spawn_cpu,
            "agents/s",
            50_000,
            ">=",
            f"per CPU second; wall clock {AGENTS / spawn_wall:,.0f}/s on this shared machine",
        ),
        Figure(
            GROUP,
            f"reference: bare create_task rate, no supervisor ({AGENTS:,} tasks)",
            AGENTS / bare_cpu,
            "tasks/s",
            None,
            note="per CPU second; the ceiling for the spawn rate above",
        ),
        Figure(
            GROUP,
            f"crash -> restarted and running, median ({SIBLINGS:,} siblings)",
            crash * 1e6,
            "µs",
            5_000,
            "<=",
            "the kernel's 5 ms also covers rebuilding state from the ledger",
        ),
        Figure(
            GROUP,
            f"kill -> restarted and running, median ({SIBLINGS:,} siblings)",
            kill * 1e6,
            "µs",
            5_000,
            "<=",
        ),
    ]
