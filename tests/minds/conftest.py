"""Fixtures for the minds tests: a local model server and views to ask about."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from minds_helpers import SkippingClock

from telic.minds import ToolInfo, View
from telic.minds.testing import ModelServer
from telic.reducer import initial_state
from telic.state import RunState


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as s:
        yield s


@pytest.fixture
def clock() -> SkippingClock:
    return SkippingClock()


def _view(
    *,
    agent: str = "planner-1",
    role: str = "planner",
    recorded: dict[str, Any] | None = None,
    observations: list[dict[str, Any]] | None = None,
    tools: tuple[ToolInfo, ...] | None = None,
) -> View:
    state = initial_state()
    state["goal"] = "Plan 3-day Basel to Ticino trip under CHF 600"
    state["currency"] = "CHF"
    state["budget"] = {"cost": 600.0, "tokens": 100_000}
    state["roster"] = [
        {"name": agent, "role": role, "tools": ["search_trains"], "priority": 2},
        {"name": "skeptic-1", "role": "skeptic", "tools": [], "priority": 0},
    ]
    state["agents"][agent] = {"observations": observations or []}
    state["memory"][agent] = {"note": "prefer trains"}
    state["plan"] = {"day1": {"value": "Basel to Lugano", "seq": 3}}
    state["beliefs"] = {"train_price": {"value": 79, "seq": 4}}
    default_tools = (
        ToolInfo(
            "search_trains",
            "Find trains between two cities.",
            {"type": "object", "properties": {"origin": {"type": "string"}}},
        ),
    )
    return View(
        agent=agent,
        role=role,
        tick=3,
        goal=state["goal"],
        state=RunState(state),
        tools=default_tools if tools is None else tools,
        recorded=recorded or {},
    )


@pytest.fixture
def make_view() -> Callable[..., View]:
    return _view
