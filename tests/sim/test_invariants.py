"""Each invariant check catches a run broken on purpose, and passes the clean run."""

from __future__ import annotations

import itertools

import pytest

import telic.sim.runner
from telic.errors import SimulatedCrash
from telic.kinds import (
    AgentRestarted,
    SupervisorRestarted,
    TickCompleted,
    TickStarted,
    ToolStarted,
)
from telic.sim import INVARIANTS, Outcome, check, generate, judge
from telic.sim.loop import SimClock
from telic.sim.runner import Escape
from telic.sim.world import Approval, Execution

from .kit import CLEAN_SEED, append, clean_outcome


@pytest.fixture
def outcome() -> Outcome:
    out = clean_outcome()
    assert check(out) == []  # the precondition of every test here
    return out


def broken(outcome: Outcome) -> set[str]:
    return {v.invariant for v in check(outcome)}


def test_the_clean_run_keeps_every_invariant_and_uses_what_the_checks_look_at(
    outcome: Outcome,
) -> None:
    world = outcome.world
    assert {e.tool for e in world.executions} >= {"tool1"}
    assert not world.plans["tool1"].idempotent
    assert world.plans["tool0"].high_impact
    assert judge(generate(CLEAN_SEED).with_faults(())).ok


def test_ended_catches_a_hang(outcome: Outcome) -> None:
    outcome.hang = "deadlock"
    assert "ended" in broken(outcome)


def test_ended_catches_a_run_left_running(outcome: Outcome) -> None:
    outcome.final_hash = None
    append(outcome, TickStarted(tick=99), tick=99)
    # a run.resumed after the end makes the run look live again
    from telic.kinds import RunResumed

    append(outcome, RunResumed(reason="test", head=0), tick=99)
    assert "ended" in broken(outcome)


def test_ended_catches_a_run_over_its_time_bound(outcome: Outcome) -> None:
    outcome.elapsed_s = outcome.bound_s + 1
    assert "ended" in broken(outcome)


def test_ended_catches_a_run_that_cannot_be_resumed(outcome: Outcome) -> None:
    outcome.refused = "RunNotResumable: no run.booted"
    assert "ended" in broken(outcome)


def test_no_crash_catches_an_escaped_error(outcome: Outcome) -> None:
    outcome.escapes.append(Escape(1, "TypeError", "boom", "", expected=False))
    assert "no-crash" in broken(outcome)


def test_an_injected_crash_is_not_a_crash_of_the_kernel(outcome: Outcome) -> None:
    outcome.escapes.append(Escape(1, SimulatedCrash.__name__, "crash", "", expected=True))
    assert broken(outcome) == set()


def test_clear_errors_catches_a_storage_error_that_hides_the_disk(outcome: Outcome) -> None:
    msg = "append failed: cannot rollback - no transaction is active"
    outcome.escapes.append(Escape(1, "LedgerError", msg, "", expected=True, storage=True))
    assert "clear-errors" in broken(outcome)
    full = "append: database or disk is full"
    outcome.escapes[-1] = Escape(1, "LedgerError", full, "", expected=True, storage=True)
    assert "clear-errors" not in broken(outcome)


def test_verify_catches_an_edited_transition(outcome: Outcome) -> None:
    rows = outcome.machine.store.rows[outcome.run_id]
    row = rows[3]
    rows[3] = row._replace(payload=row.payload.replace(b"1", b"2", 1))
    assert rows[3].payload != row.payload
    assert "verify" in broken(outcome)


def test_replay_catches_a_recorded_state_hash_that_is_not_the_fold(outcome: Outcome) -> None:
    append(
        outcome,
        TickCompleted(tick=50, progress=0.0, delta=0.0, valid=True, state_hash="0" * 64),
        tick=50,
    )
    assert "replay" in broken(outcome)


def test_replay_catches_a_kernel_state_that_is_not_the_fold(outcome: Outcome) -> None:
    outcome.final_hash = "f" * 64
    assert "replay" in broken(outcome)


def test_allowlist_catches_a_disallowed_start_and_effect(outcome: Outcome) -> None:
    allowed = {a.name: a.tools for a in outcome.scenario.swarm.agents}
    assert "tool0" not in allowed["a0"]
    append(
        outcome,
        ToolStarted(call_id="c999", agent="a0", tool="tool0", args={"key": "a0/9"}),
        tick=9,
        agent="a0",
    )
    assert "allowlist" in broken(outcome)


def test_allowlist_catches_an_effect_of_a_disallowed_tool(outcome: Outcome) -> None:
    outcome.world.executions.append(Execution(1, "tool0", "a0/1"))
    assert "allowlist" in broken(outcome)


def test_recorded_catches_an_effect_without_its_start(outcome: Outcome) -> None:
    outcome.world.executions.append(Execution(1, "tool1", "a1/77"))
    assert "recorded" in broken(outcome)


def test_once_catches_a_non_idempotent_tool_run_twice(outcome: Outcome) -> None:
    first = next(e for e in outcome.world.executions if e.tool == "tool1")
    outcome.world.executions.append(first)
    assert "once" in broken(outcome)


def test_once_catches_a_non_idempotent_call_started_twice(outcome: Outcome) -> None:
    ledger = outcome.machine.reader()
    started = next(
        t
        for t in ledger.read(outcome.run_id)
        if t.kind == "tool.started" and t.data["tool"] == "tool1"
    )
    append(outcome, ToolStarted.model_validate(started.data), tick=started.tick, agent="a1")
    assert "once" in broken(outcome)


def test_budget_catches_a_tick_after_the_budget_was_spent(outcome: Outcome) -> None:
    limit = outcome.scenario.swarm.budget.ticks
    for tick in range(100, 100 + limit + 2):  # each tick.started spends one tick
        append(outcome, TickStarted(tick=tick), tick=tick)
        append(
            outcome,
            TickCompleted(tick=tick, progress=0, delta=0, valid=True, state_hash="0" * 64),
            tick=tick,
        )
    assert "budget" in broken(outcome)


def test_approval_catches_a_high_impact_start_without_a_grant(outcome: Outcome) -> None:
    append(
        outcome,
        ToolStarted(call_id="c998", agent="a1", tool="tool0", args={"key": "a1/98"}),
        tick=9,
        agent="a1",
    )
    assert "approval" in broken(outcome)


def test_approval_catches_a_high_impact_effect_the_approver_refused(outcome: Outcome) -> None:
    outcome.world.approvals.append(Approval("a1", "tool0", "a1/97", "no"))
    outcome.world.executions.append(Execution(1, "tool0", "a1/97"))
    assert "approval" in broken(outcome)


def test_deterministic_catches_a_seed_that_runs_differently_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts = itertools.count(1_767_225_600_000_000, 1_000_000)
    monkeypatch.setattr(telic.sim.runner, "SimClock", lambda: SimClock(next(starts)))
    report = judge(generate(CLEAN_SEED).with_faults(()))
    assert [v.invariant for v in report.violations] == ["deterministic"]


def test_every_invariant_is_named_in_the_catalogue() -> None:
    assert len(set(INVARIANTS)) == len(INVARIANTS)
    assert "deterministic" in INVARIANTS


def test_tree_catches_an_agent_restarted_by_another_supervisor(outcome: Outcome) -> None:
    agent = generate(CLEAN_SEED).swarm.agents[0].name
    append(outcome, AgentRestarted(agent=agent, supervisor="t7", attempt=1, reason="?"), tick=1)
    assert "tree" in broken(outcome)


def test_tree_catches_a_team_restarted_by_another_than_its_parent(outcome: Outcome) -> None:
    append(
        outcome,
        SupervisorRestarted(supervisor="t0", parent="root", attempt=1, reason="?"),
        tick=1,
    )
    assert "tree" in broken(outcome)


def test_tree_passes_a_swarm_under_a_tree_that_escalates() -> None:
    seed = next(s for s in range(300) if _escalating_tree(s))
    assert judge(generate(seed)).ok


def _escalating_tree(seed: int) -> bool:
    swarm = generate(seed).swarm
    return bool(swarm.teams) and any(t.intensity == 0 for t in swarm.teams)
