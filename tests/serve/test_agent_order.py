"""A run's agents are listed in one order, whether its state was folded or read from a
snapshot (whose JSON keeps its keys sorted)."""

from __future__ import annotations

from typing import Any

import orjson

from telic.state import RunState


def _agent(temporary: bool = False) -> dict[str, Any]:
    return {"temporary": temporary, "supervisor": "root"}


def test_agents_come_in_roster_order_then_by_name_however_the_state_was_read() -> None:
    folded: dict[str, Any] = {
        "roster": [{"name": "researcher"}, {"name": "planner"}, {"name": "budgeter"}],
        "agents": {
            "researcher": _agent(),
            "planner": _agent(),
            "budgeter": _agent(),
            "researcher.x2": _agent(True),
            "planner.x1": _agent(True),
        },
    }
    snapshot = orjson.loads(orjson.dumps(folded, option=orjson.OPT_SORT_KEYS))
    assert list(snapshot["agents"]) != list(folded["agents"])  # the dict orders differ
    names = [n for n, _ in RunState(folded).agents_in_order()]
    assert names == ["researcher", "planner", "budgeter", "planner.x1", "researcher.x2"]
    assert [n for n, _ in RunState(snapshot).agents_in_order()] == names
