"""The process the lease tests pause (SIGSTOP) or kill (``kill -9``).

``python -m tests.kernel._leased_child ticks URL RUN TTL``: take run RUN's lease and append an
observation every 0.3 s under it, printing ``TRY i`` before and ``TICK i SEQ`` after each
append (flushed). It renews the lease every third of TTL but goes on appending whatever the
renewal says (as a process that does not know it lost its lease would), until the store
refuses an append: then it prints ``FENCED epoch current holder`` and exits 3.

``python -m tests.kernel._leased_child kernel URL RUN TTL SIDE``: boot run RUN under a lease
with :func:`config` ``("boot", SIDE)``: its agent calls ``effect``, a non-idempotent tool that
appends a line to the file SIDE and then waits for an hour. Prints ``BOOTED RUN``.
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
    if phase == "boot":
        steps = [Proposal(action="tool", args={"tool": "effect", "args": {"x": 1}})]
    else:
        steps = [
            Proposal(action="remember", args={"key": "after", "value": phase}),
            Proposal(action="finish", args={"result": phase}),
        ]
    mind = ScriptedMind(steps, name="a")
    return RunConfig(
        goal="survive a lost owner",
        agents=(AgentSpec(name="a", role="worker", mind=mind, tools=("effect",)),),
        tools=[effect_tool(side, wait_s=3600 if phase == "boot" else 0)],
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
        time.sleep(0.3)


def kernel(url: str, run_id: str, ttl: float, side: Path) -> int:
    ledger = open_ledger(url)

    async def main() -> None:
        k = Kernel(ledger, holder=f"old-{os.getpid()}", lease_ttl_s=ttl)
        run = await k.boot(config("boot", side), run_id=run_id)
        print(f"BOOTED {run.id}", flush=True)
        await run.until_done()

    asyncio.run(main())
    return 0


if __name__ == "__main__":
    mode, url, run, ttl_s = sys.argv[1:5]
    if mode == "ticks":
        sys.exit(ticks(url, run, float(ttl_s)))
    sys.exit(kernel(url, run, float(ttl_s), Path(sys.argv[5])))
