"""The process the lease tests pause (SIGSTOP) or kill (``kill -9``).

``python -m tests.kernel._leased_child ticks URL RUN TTL``: take run RUN's lease and append an
observation every 0.6 s under it, printing ``TRY i`` before and ``TICK i SEQ`` after each
append (flushed). It renews the lease every third of TTL but goes on appending whatever the
renewal says (as a process that does not know it lost its lease would), until the store
refuses an append: then it prints ``FENCED epoch current holder`` and exits 3.

``python -m tests.kernel._leased_child kernel URL RUN TTL SIDE``: boot run RUN under a lease
with :func:`config` ``("boot", SIDE)``: its agent calls ``effect``, a non-idempotent tool that
appends a line to the file SIDE and then waits for an hour. Prints ``BOOTED RUN``.

``python -m tests.kernel._leased_child steady URL RUN TTL SIDE``: boot run RUN under a lease
with :func:`config` ``("steady", SIDE)`` (``effect`` every tick, 1 s each, forever) and drive
it, printing ``TICK n`` after each tick; when the run ends here it prints ``END status
error-type`` and exits 4 if it lost its lease.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from telic.errors import Fenced, LeaseLost
from telic.kernel import AgentSpec, Kernel, RunConfig
from telic.kinds import ObservationRecorded
from telic.ledger import open_ledger
from telic.minds.base import ScriptedMind
from telic.policy import Policy
from telic.proposal import Proposal
from telic.tools import Tool, tool
from telic.transition import draft


def effect_tool(side: Path, *, wait_s: float) -> Tool:
    @tool(name="effect", idempotent=False, timeout=7200)
    async def effect(x: int) -> dict[str, int]:
        with side.open("a") as f:
            f.write(f"{os.getpid()} {x}\n")
        await asyncio.sleep(wait_s)
        return {"x": x}

    return effect


def config(phase: str, side: Path) -> RunConfig:
    """``boot``: one agent that calls ``effect`` (which hangs); ``resume``: it finishes."""
    repeat = False
    if phase == "boot":
        steps = [Proposal(action="tool", args={"tool": "effect", "args": {"x": 1}})]
    elif phase == "steady":
        steps = [Proposal(action="tool", args={"tool": "effect", "args": {"x": os.getpid()}})]
        repeat = True
    else:
        steps = [
            Proposal(action="remember", args={"key": "after", "value": phase}),
            Proposal(action="finish", args={"result": phase}),
        ]
    mind = ScriptedMind(steps, name="a", repeat_last=repeat)
    return RunConfig(
        goal="survive a lost owner",
        agents=(AgentSpec(name="a", role="worker", mind=mind, tools=("effect",)),),
        tools=[effect_tool(side, wait_s={"boot": 3600.0, "steady": 1.0}.get(phase, 0.0))],
        policy=Policy(loop_repeats=10**6, stall_ticks=10**6),
    )


def ticks(url: str, run_id: str, ttl: float) -> int:
    ledger = open_ledger(url)
    lease = ledger.leases.acquire(run_id, f"old-{os.getpid()}", ttl_s=ttl)
    ledger.fence(lease)
    print(f"READY {lease.epoch}", flush=True)
    renewed = time.monotonic()
    i = 0
    while True:
        if time.monotonic() - renewed >= ttl / 3:
            try:
                lease = ledger.leases.renew(lease)
            except LeaseLost:
                print("RENEW-LOST", flush=True)
            renewed = time.monotonic()
        i += 1
        tick = ledger.state_at(run_id)["tick"]
        record = ObservationRecorded(agent="a", source="old", content=i)
        print(f"TRY {i}", flush=True)
        try:
            (t,) = ledger.append(run_id, [draft(record, ts=time.time_ns() // 1000, tick=tick)])
        except Fenced as exc:
            print(f"FENCED {exc.epoch} {exc.current} {exc.holder}", flush=True)
            ledger.close()
            return 3
        print(f"TICK {i} {t.seq}", flush=True)
        time.sleep(0.6)  # (the test pauses it here, outside any transaction)


def kernel(url: str, run_id: str, ttl: float, side: Path) -> int:
    ledger = open_ledger(url)

    async def main() -> None:
        k = Kernel(ledger, holder=f"old-{os.getpid()}", lease_ttl_s=ttl)
        run = await k.boot(config("boot", side), run_id=run_id)
        print(f"BOOTED {run.id}", flush=True)
        await run.until_done()

    asyncio.run(main())
    return 0


def steady(url: str, run_id: str, ttl: float, side: Path) -> int:
    ledger = open_ledger(url)

    async def main() -> int:
        k = Kernel(ledger, holder=f"old-{os.getpid()}", lease_ttl_s=ttl)
        run = await k.boot(config("steady", side), run_id=run_id)
        print(f"BOOTED {run.id}", flush=True)
        try:
            while await run.step():
                print(f"TICK {run.state.tick}", flush=True)
        finally:
            await run.close()
        result = run.result()
        print(f"END {result.status} {type(result.lost).__name__}", flush=True)
        return 4 if result.lost is not None else 0

    return asyncio.run(main())


if __name__ == "__main__":
    mode, url, run, ttl_s = sys.argv[1:5]
    if mode == "ticks":
        sys.exit(ticks(url, run, float(ttl_s)))
    if mode == "steady":
        sys.exit(steady(url, run, float(ttl_s), Path(sys.argv[5])))
    sys.exit(kernel(url, run, float(ttl_s), Path(sys.argv[5])))
