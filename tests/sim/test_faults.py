"""Every fault of the catalogue takes effect where its plan puts it (the simulator injects
what it says it injects), and a seed is exactly reproducible."""

from __future__ import annotations

from typing import get_args

import pytest

from telic.sim import Scenario, generate, run_scenario
from telic.sim.scenario import (
    CrashFault,
    Fault,
    MindEffect,
    MindFault,
    StorageFault,
    SubscriberEffect,
    SubscriberFault,
    ToolEffect,
    ToolFault,
)
from telic.sim.seeds import head_hash

SEED = 13
"""Its swarm: a1 calls tool0 in tick 2 and tool1 in ticks 3 and 4; eight ticks of budget."""


def _fired(faults: tuple[Fault, ...], *, backend: str | None = None) -> list[str]:
    scenario: Scenario = generate(SEED).with_faults(faults)
    if backend is not None:
        scenario = scenario.model_copy(
            update={"swarm": scenario.swarm.model_copy(update={"backend": backend})}
        )
    outcome = run_scenario(scenario, real_timeout_s=20)
    try:
        return outcome.machine.injected
    finally:
        outcome.close()


@pytest.mark.parametrize("effect", get_args(MindEffect))
def test_each_mind_fault_fires(effect: MindEffect) -> None:
    assert _fired((MindFault(agent="a1", tick=1, effect=effect),)) == [f"mind a1 tick 1: {effect}"]


@pytest.mark.parametrize("effect", get_args(ToolEffect))
def test_each_tool_fault_fires(effect: ToolEffect) -> None:
    fired = _fired((ToolFault(tool="tool1", call=1, effect=effect),))
    assert fired[:1] == [f"tool tool1 call 1: {effect}"]


@pytest.mark.parametrize("effect", get_args(SubscriberEffect))
def test_each_subscriber_fault_fires(effect: SubscriberEffect) -> None:
    fired = _fired((SubscriberFault(effect=effect),))
    assert len(fired) == 1 and fired[0].startswith(f"subscriber: {effect} from ")


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_crash_fires_and_the_run_is_resumed(when: str, backend: str) -> None:
    scenario = generate(SEED).with_faults((CrashFault(op=3, when=when),))  # type: ignore[arg-type]
    scenario = scenario.model_copy(
        update={"swarm": scenario.swarm.model_copy(update={"backend": backend})}
    )
    outcome = run_scenario(scenario)
    try:
        assert outcome.machine.injected == [f"crash {when} append 3"]
        assert outcome.machine.lifetimes == 2
        ledger = outcome.machine.reader()
        kinds = [t.kind for t in ledger.read(outcome.run_id)]
        ledger.close()
        assert "run.resumed" in kinds
    finally:
        outcome.close()


@pytest.mark.parametrize("error", ["disk_full", "io_error"])
def test_a_storage_fault_fires_inside_sqlite(error: str) -> None:
    fired = _fired((StorageFault(op=4, error=error),))  # type: ignore[arg-type]
    assert fired == [f"{error} at append 4"]


@pytest.mark.parametrize("seed", [3, 13, 21, 34])
def test_the_same_seed_twice_gives_the_same_head_hash(seed: int) -> None:
    heads: list[tuple[str, str]] = []
    for _ in range(2):
        outcome = run_scenario(generate(seed))
        try:
            heads.append(head_hash(outcome))
        finally:
            outcome.close()
    assert heads[0] == heads[1] and heads[0][1]
