"""Minds and tools of the cluster tests' swarm, named by the specs they boot (``swarm:...``).

Tools wait for real (so a node can die mid-run), ``effect`` is a non-idempotent call that
writes one line per execution to the file named by ``TELIC_CLUSTER_EFFECTS`` before it waits
(so a second execution of one call would show as a repeated line), and ``where`` needs the
custom resource ``special`` and says which node ran it.
"""

from __future__ import annotations

import asyncio
import os

from telic.minds import FunctionMind, View
from telic.proposal import Proposal
from telic.tools import tool

TICKS = 14
"""Ticks of a worker before it finishes."""


@tool(idempotent=True, timeout=10)
async def pause(ms: int) -> dict[str, int]:
    """Waits ``ms`` milliseconds."""
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


def _record(key: str) -> None:
    with open(os.environ["TELIC_CLUSTER_EFFECTS"], "a", encoding="utf-8") as f:
        f.write(key + "\n")
        f.flush()
        os.fsync(f.fileno())


@tool(timeout=10)
async def effect(key: str) -> dict[str, str]:
    """A non-idempotent effect: one line per execution, then a wait."""
    _record(key)
    await asyncio.sleep(0.25)
    return {"key": key}


@tool(idempotent=True, timeout=20, resources={"special": 1})
async def where() -> dict[str, str]:
    """Which Ray node runs this call (it needs the custom resource ``special``)."""
    import ray

    return {"node": ray.get_runtime_context().get_node_id(), "pid": str(os.getpid())}


def _mark(what: str) -> None:
    with open(os.environ["TELIC_CLUSTER_EFFECTS"] + ".slow", "a", encoding="utf-8") as f:
        f.write(what + "\n")


@tool(idempotent=True, timeout=1, resources={"special": 1})
async def slow() -> dict[str, bool]:
    """Outlives its 1 s timeout: the kernel cancels the Ray task, so it never writes `end`."""
    _mark("start")
    await asyncio.sleep(4)
    _mark("end")
    return {"done": True}


@tool(resources={"special": 1})
async def broken() -> dict[str, bool]:
    """Raises in its Ray task: recorded as the tool's own error."""
    raise ValueError("broken on purpose")


@tool(timeout=5)
async def launch(x: int) -> dict[str, int]:
    """A high-impact call (the spec marks it so)."""
    return {"launched": x}


def worker() -> FunctionMind:
    """Pauses and makes effects in turn for ``TICKS`` ticks, then finishes."""

    def propose(view: View) -> Proposal:
        if view.tick > TICKS:
            return Proposal(action="finish", args={"result": view.tick})
        if view.tick % 3 == 0:
            key = f"{view.goal}|{view.agent}|{view.tick}"
            return Proposal(action="tool", args={"tool": "effect", "args": {"key": key}})
        return Proposal(action="tool", args={"tool": "pause", "args": {"ms": 200}})

    return FunctionMind(propose, name="worker")


def locator() -> FunctionMind:
    """Asks where ``where`` runs, then calls ``slow`` and ``broken``, then finishes."""

    def propose(view: View) -> Proposal:
        calls = ("where", "slow", "broken")
        done = len(view.observations)
        if done < len(calls):
            return Proposal(action="tool", args={"tool": calls[done], "args": {}})
        return Proposal(action="finish", args={"result": done})

    return FunctionMind(propose, name="locator")


def launcher() -> FunctionMind:
    """Asks to launch once (a human must approve), then finishes."""

    def propose(view: View) -> Proposal:
        if not view.observations:
            return Proposal(action="tool", args={"tool": "launch", "args": {"x": 7}})
        return Proposal(action="finish", args={"result": view.observations[-1].content})

    return FunctionMind(propose, name="launcher")


SWARM = """
goal = "swarm"
tools = ["swarm:pause", "swarm:effect"]
[budget]
ticks = 40
[policy]
loop_repeats = 100
stall_ticks = 100
[[agents]]
name = "a"
role = "worker"
mind = "swarm:worker"
tools = ["pause", "effect"]
[[agents]]
name = "b"
role = "worker"
mind = "swarm:worker"
tools = ["pause", "effect"]
[[agents]]
name = "c"
role = "worker"
mind = "swarm:worker"
tools = ["pause", "effect"]
"""

LOCATE = """
goal = "where does the special tool run"
tools = ["swarm:where", "swarm:slow", "swarm:broken"]
[budget]
ticks = 8
[policy]
fail_agent_on_tool_error = false
[[agents]]
name = "finder"
role = "locator"
mind = "swarm:locator"
tools = ["where", "slow", "broken"]
"""

LAUNCH = """
goal = "launch once, with a human's approval"
tools = ["swarm:launch"]
high_impact = ["launch"]
[budget]
ticks = 10
[[agents]]
name = "pilot"
role = "pilot"
mind = "swarm:launcher"
tools = ["launch"]
"""

PLACED = """
goal = "ask a model that only one node can reach"
model = "vllm:served"
tools = ["swarm:pause"]
[budget]
ticks = 8
[[agents]]
name = "asker"
role = "researcher"
tools = ["pause"]
resources = { special = 1 }
"""

GATEWAY = """
goal = "two agents whose model calls go through a gateway node"
model = "vllm:served"
tools = ["swarm:pause"]
[budget]
ticks = 10
[scheduler]
timeout_s = 20
max_retries = 3
backoff_s = 0.2
[[agents]]
name = "x"
role = "researcher"
tools = ["pause"]
resources = { gateway = 1 }
[[agents]]
name = "y"
role = "researcher"
tools = ["pause"]
resources = { gateway = 1 }
"""
