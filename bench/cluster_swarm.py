"""The distributed benchmark's swarm: 6 agents whose every tick is one 20 ms tool call
(simulated latency), named by its spec (``cluster_swarm:...``)."""

from __future__ import annotations

import asyncio

from telic.minds import FunctionMind, View
from telic.proposal import Proposal
from telic.tools import tool

TICKS = 20
LATENCY_MS = 20


@tool(idempotent=True, timeout=10)
async def work(ms: int) -> dict[str, int]:
    """Waits ``ms`` milliseconds: a tool's latency, without its CPU."""
    await asyncio.sleep(ms / 1000)
    return {"ms": ms}


def worker() -> FunctionMind:
    def propose(view: View) -> Proposal:
        if view.tick > TICKS:
            return Proposal(action="finish", args={"result": view.tick})
        return Proposal(action="tool", args={"tool": "work", "args": {"ms": LATENCY_MS}})

    return FunctionMind(propose, name="worker")


SPEC = """
goal = "bench"
tools = ["cluster_swarm:work"]
[budget]
ticks = 60
[policy]
loop_repeats = 1000
stall_ticks = 1000
""" + "".join(
    f"""
[[agents]]
name = "a{i}"
role = "worker"
mind = "cluster_swarm:worker"
tools = ["work"]
"""
    for i in range(6)
)
