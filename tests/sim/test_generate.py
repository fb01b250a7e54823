"""The generator: a seed names one scenario; plans round-trip through JSON; every seam and
every fault effect is drawn."""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telic.errors import SimError
from telic.sim import fault_plan, generate
from telic.sim.cli import parse_plan
from telic.sim.scenario import (
    CrashFault,
    MindEffect,
    MindFault,
    StorageFault,
    SubscriberEffect,
    SubscriberFault,
    ToolEffect,
    ToolFault,
)

seeds = st.integers(min_value=0, max_value=2**32)


@given(seeds)
@settings(max_examples=50, deadline=None)
def test_a_seed_names_one_scenario(seed: int) -> None:
    assert generate(seed) == generate(seed)


@given(seeds)
@settings(max_examples=50, deadline=None)
def test_a_fault_plan_round_trips_through_its_json(seed: int) -> None:
    s = generate(seed)
    assert fault_plan(s.plan_json()) == s.faults


@given(seeds)
@settings(max_examples=50, deadline=None)
def test_faults_point_at_seams_the_swarm_has(seed: int) -> None:
    s = generate(seed)
    agents = {a.name for a in s.swarm.agents}
    tools = {t.name for t in s.swarm.tools}
    for f in s.faults:
        if isinstance(f, MindFault):
            assert f.agent in agents and 1 <= f.tick <= s.swarm.budget.ticks
        elif isinstance(f, ToolFault):
            assert f.tool in tools and f.call >= 1
        elif isinstance(f, StorageFault):
            assert s.swarm.backend == "sqlite"
    for a in s.swarm.agents:
        assert set(a.tools) <= tools


def test_a_thousand_seeds_draw_every_seam_and_every_effect() -> None:
    mind: set[str] = set()
    tool: set[str] = set()
    subscriber: set[str] = set()
    seams: set[str] = set()
    backends: set[str] = set()
    strategies: set[str] = set()
    answers: set[str] = set()
    for seed in range(1000):
        s = generate(seed)
        backends.add(s.swarm.backend)
        strategies.add(s.swarm.strategy)
        answers.update(s.swarm.approvals)
        for f in s.faults:
            seams.add(f.seam)
            if isinstance(f, MindFault):
                mind.add(f.effect)
            elif isinstance(f, ToolFault):
                tool.add(f.effect)
            elif isinstance(f, SubscriberFault):
                subscriber.add(f.effect)
            elif isinstance(f, CrashFault):
                seams.add(f"crash {f.when}")
            else:
                seams.add(f.error)
    assert mind == set(get_args(MindEffect))
    assert tool == set(get_args(ToolEffect))
    assert subscriber == set(get_args(SubscriberEffect))
    assert seams >= {"mind", "tool", "storage", "crash", "subscriber", "crash before"}
    assert seams >= {"crash after", "disk_full", "io_error"}
    assert backends == {"memory", "sqlite"}
    assert strategies == {"one_for_one", "one_for_all", "rest_for_one"}
    assert answers == {"yes", "no", "none", "hang", "raise"}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '[{"seam": "moon"}]',
        '[{"seam": "mind", "agent": "a0", "tick": 1, "effect": "sulk"}]',
        '[{"seam": "crash", "op": "soon"}]',
    ],
)
def test_a_bad_plan_is_one_clear_error(text: str) -> None:
    with pytest.raises(SimError, match="--plan is not a fault plan") as info:
        parse_plan(text)
    assert "\n" not in str(info.value)
