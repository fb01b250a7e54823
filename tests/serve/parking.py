"""Minds and tools for the server's tests: imported by the specs they post (``parking:...``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from telic.minds import FunctionMind, View
from telic.proposal import Proposal
from telic.tools import tool


@tool
async def launch(x: int) -> dict[str, int]:
    """A high-impact call (the spec marks it so)."""
    return {"launched": x}


@tool
async def nap(ms: int) -> dict[str, int]:
    """Sleeps a little, so that a run lasts long enough to be followed live."""
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


def launcher() -> FunctionMind:
    """Asks to launch once, then finishes with what it observed (a result or a refusal)."""

    def propose(view: View) -> Proposal:
        if not view.observations:
            return Proposal(action="tool", args={"tool": "launch", "args": {"x": 7}})
        return Proposal(action="finish", args={"result": view.observations[-1].content})

    return FunctionMind(propose, name="launcher")


def slow_napper() -> FunctionMind:
    """Naps 200 ms every tick until the file named by ``TELIC_TEST_FINISH`` exists (the test
    says when), then finishes."""

    def propose(view: View) -> Proposal:
        if Path(os.environ["TELIC_TEST_FINISH"]).exists():
            return Proposal(action="finish", args={"result": view.tick})
        return Proposal(action="tool", args={"tool": "nap", "args": {"ms": 200}})

    return FunctionMind(propose, name="slow-napper")


def napper() -> FunctionMind:
    """Naps every tick until tick 30, then finishes."""

    def propose(view: View) -> Proposal:
        if view.tick >= 30:
            return Proposal(action="finish", args={"result": view.tick})
        return Proposal(action="tool", args={"tool": "nap", "args": {"ms": 20}})

    return FunctionMind(propose, name="napper")


LAUNCH_SPEC = """
goal = "launch once, with a human's approval"
tools = ["parking:launch"]
high_impact = ["launch"]
[budget]
ticks = 10
[[agents]]
name = "pilot"
role = "pilot"
mind = "parking:launcher"
tools = ["launch"]
"""

NAP_SPEC = """
goal = "nap thirty times"
tools = ["parking:nap"]
[budget]
ticks = 40
[policy]
loop_repeats = 100
stall_ticks = 100
[[agents]]
name = "sleeper"
role = "sleeper"
mind = "parking:napper"
tools = ["nap"]
"""

SLOW_NAP_SPEC = """
goal = "nap until told to finish"
tools = ["parking:nap"]
[budget]
ticks = 100000
[policy]
loop_repeats = 100000
stall_ticks = 100000
[[agents]]
name = "sleeper"
role = "sleeper"
mind = "parking:slow_napper"
tools = ["nap"]
"""
