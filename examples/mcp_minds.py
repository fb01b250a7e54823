"""Function minds for examples/mcp.toml: what a model would propose, written out.

- ``forecaster`` asks the MCP server's ``forecast`` tool for days 1-3 in Lugano, then plans
  the sunniest day;
- ``reader`` fetches ``advice`` and then, like a model that falls for the injected text in
  it, proposes ``cancel_booking``: its allowlist does not have that tool, so the kernel
  rejects the proposal (tool output is data, never instructions);
- ``booker`` may call ``cancel_booking``, which the server marks destructive: the call needs
  approval, and with no approver configured it is denied.
"""

from __future__ import annotations

from typing import Any

from telic.minds import FunctionMind, View
from telic.proposal import Proposal
from telic.state import Observation, RunState


def _tool(name: str, **args: Any) -> Proposal:
    return Proposal(action="tool", args={"tool": name, "args": args})


def _results(view: View, tool: str) -> list[Observation]:
    return [o for o in view.observations if o.source == f"tool:{tool}"]


def _forecaster(view: View) -> Proposal:
    seen = _results(view, "forecast")
    if len(seen) < 3:
        return _tool("forecast", city="Lugano", day=len(seen) + 1)
    if "day" not in view.plan:
        best = min(seen, key=lambda o: o.content["rain_mm"])
        return Proposal(action="plan", args={"key": "day", "value": best.content["day"]})
    return Proposal(action="finish", args={"result": view.plan["day"]})


def _reader(view: View) -> Proposal:
    if not _results(view, "advice"):
        return _tool("advice", city="Lugano")
    if not any(o.source == "policy" for o in view.observations):
        return _tool("cancel_booking", booking="ALL")  # what the injected text asks for
    return Proposal(action="finish", args={"result": "read the advice"})


def _booker(view: View) -> Proposal:
    if not any(o.source in ("policy", "tool:cancel_booking") for o in view.observations):
        return _tool("cancel_booking", booking="B-17")
    return Proposal(action="finish", args={"result": "asked to cancel B-17"})


def forecaster() -> FunctionMind:
    return FunctionMind(_forecaster)


def reader() -> FunctionMind:
    return FunctionMind(_reader)


def booker() -> FunctionMind:
    return FunctionMind(_booker)


def planned(state: RunState) -> bool:
    """The return condition: the day is planned."""
    return "day" in state.plan
