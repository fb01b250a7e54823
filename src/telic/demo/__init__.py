"""The reference run: "Plan 3-day Basel to Ticino trip under CHF 600", offline.

Six agents with scripted minds, simulated tools and a seeded fault plan. Every line the demo
prints is rendered from the ledger afterwards (:mod:`telic.demo.transcript`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from telic.demo.roles import BUDGET_CHF, agents, explorer
from telic.demo.world import FaultPlan, World
from telic.kernel import Artifact, Budget, RunConfig
from telic.policy import Budgeter, Policy
from telic.state import RunState
from telic.tools import Tool

__all__ = [
    "DEFAULT_SEED",
    "GOAL",
    "RETURN_DESCRIPTION",
    "FaultPlan",
    "World",
    "artifacts",
    "build",
    "lenient_artifacts",
    "lenient_progress",
    "lenient_ready",
    "lenient_trip_left",
    "progress",
    "ready",
    "reference_tools",
    "trip_left",
    "well_formed",
]

GOAL = "Plan 3-day Basel to Ticino trip under CHF 600"
DEFAULT_SEED = 7
_PLAN_WEIGHTS = {"transport": 0.2, "hotel": 0.2, "activities": 0.2, "budget": 0.3}
RETURN_DESCRIPTION = "transport, hotel, activities and a budget within CHF 600 are planned"
_RESEARCH = ("tool:train_fares", "tool:hotels", "tool:sights", "tool:weather")


def progress(state: RunState) -> float:
    """Research done (0.1) plus the plan items in place, the budget only if within CHF 600."""
    seen = {o.source for a in state.agents.values() for o in a.observations}
    research = 0.1 * sum(src in seen for src in _RESEARCH) / len(_RESEARCH)
    plan = state.plan
    score = research
    for key, weight in _PLAN_WEIGHTS.items():
        if key in plan and (key != "budget" or plan[key].value["total_chf"] <= BUDGET_CHF):
            score += weight
    return round(score, 4)


def ready(state: RunState) -> bool:
    plan = state.plan
    return all(k in plan for k in _PLAN_WEIGHTS) and plan["budget"].value["total_chf"] <= BUDGET_CHF


def trip_left(state: RunState) -> float:
    """What is left of the CHF 600 trip budget after the plan's priced items (the budgeter
    policy's ``left``)."""
    spent = 0.0
    for k, item in state.plan.items():
        value: Any = item.value
        if k != "budget" and isinstance(value, dict):
            spent += float(cast(dict[str, Any], value).get("total_chf", 0))
    return BUDGET_CHF - spent


def reference_tools(seed: int = DEFAULT_SEED) -> list[Tool]:
    """The reference run's simulated tools (train fares, hotels, sights, weather, calculator)
    in the world of ``seed``: a zero-argument factory for run specs (``examples/trip.toml``).

    The world's timed fault (a weather lookup that hangs) follows the tick the scripted minds
    report, so with other minds these tools only have their latency."""
    return World(seed).tools()


def artifacts(state: RunState) -> Sequence[Artifact]:
    plan = {k: v.value for k, v in state.plan.items()}
    b, hotel, acts, train = plan["budget"], plan["hotel"], plan["activities"], plan["transport"]
    lines = [
        f"# {GOAL}",
        "",
        f"**Total: CHF {b['total_chf']:.2f}** of CHF {BUDGET_CHF:.0f} (train {b['train_chf']:.2f}, hotel {b['hotel_chf']:.2f}, activities {b['activities_chf']:.2f})",
        "",
        f"## Day 1: Basel SBB to Lugano\n- {train['mode']}\n- Check in: {hotel['name']} ({hotel['stars']}*, {hotel['rating']}), CHF {hotel['per_night_chf']:.2f} a night",
    ]
    for day in (1, 2, 3):
        items = [a for a in acts["items"] if a["when"] == f"day {day}"]
        if items:
            if day > 1:
                lines.append(f"## Day {day}")
            lines += [f"- {a['name']} (CHF {a['price_chf']:.2f})" for a in items]
    lines.append("## Day 3: back to Basel SBB")
    result = {
        "goal": GOAL,
        "currency": "CHF",
        "budget_chf": BUDGET_CHF,
        "within_budget": b["total_chf"] <= BUDGET_CHF,
        "plan": plan,
    }
    return [
        Artifact("itinerary.md", "text/markdown", "\n".join(lines) + "\n"),
        Artifact("result.json", "application/json", result),
    ]


# -- for plans written by real models --------------------------------------------------------

_NUMBER = (int, float)
_SHAPES: dict[str, dict[str, tuple[type, ...]]] = {
    "transport": {"mode": (str,), "total_chf": _NUMBER},
    "hotel": {
        "name": (str,),
        "stars": _NUMBER,
        "rating": _NUMBER,
        "per_night_chf": _NUMBER,
        "total_chf": _NUMBER,
    },
    "activities": {"items": (list,)},
    "budget": {
        "train_chf": _NUMBER,
        "hotel_chf": _NUMBER,
        "activities_chf": _NUMBER,
        "total_chf": _NUMBER,
    },
}
_ACTIVITY: dict[str, tuple[type, ...]] = {"name": (str,), "price_chf": _NUMBER, "when": (str,)}


def _fits(value: Any, shape: Mapping[str, tuple[type, ...]]) -> bool:
    if not isinstance(value, dict):
        return False
    fields = cast(dict[str, Any], value)
    return all(
        isinstance(fields.get(k), types) and not isinstance(fields.get(k), bool)
        for k, types in shape.items()
    )


def _item_ok(key: str, value: Any) -> bool:
    if key not in _SHAPES:
        total = value.get("total_chf", 0) if isinstance(value, dict) else 0  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
        return not isinstance(total, bool) and isinstance(total, _NUMBER)
    if not _fits(value, _SHAPES[key]):
        return False
    if key == "activities":
        return all(_fits(a, _ACTIVITY) for a in value["items"])
    return True


def well_formed(state: RunState) -> RunState:
    """``state`` with only the plan items that have the reference shapes (see
    ``examples/trip.toml``): what a model wrote differently counts as not planned yet."""
    plan = state.plan.json
    kept = {k: v for k, v in plan.items() if _item_ok(k, v["value"])}
    return RunState({**state.json, "plan": kept})


def lenient_progress(state: RunState) -> float:
    """:func:`progress` for plans written by models (ill-formed items count as missing)."""
    return progress(well_formed(state))


def lenient_ready(state: RunState) -> bool:
    """:func:`ready` for plans written by models (ill-formed items count as missing)."""
    return ready(well_formed(state))


def lenient_artifacts(state: RunState) -> Sequence[Artifact]:
    """:func:`artifacts` for plans written by models."""
    return artifacts(well_formed(state))


def lenient_trip_left(state: RunState) -> float:
    """:func:`trip_left` for plans written by models."""
    return trip_left(well_formed(state))


def build(seed: int = DEFAULT_SEED) -> tuple[RunConfig, World]:
    """The reference run's configuration for ``seed``, and its world (for inspection)."""
    world = World(seed)
    policy = Policy(
        resolvers={"plan:*": Budgeter(left=trip_left, cost_fields=("total_chf",))},
        exploration_threshold=0.5,
        stall_ticks=6,
    )
    config = RunConfig(
        goal=GOAL,
        agents=agents(world),
        tools=world.tools(),
        budget=Budget(ticks=12, tool_calls=40, wall_s=600, currency="CHF"),
        policy=policy,
        return_condition=ready,
        return_description=RETURN_DESCRIPTION,
        progress=progress,
        artifacts=artifacts,
        explorer=explorer(world),
        seed=seed,
        record={"demo": {"seed": seed, "faults": world.plan.to_json()}},
    )
    return config, world
