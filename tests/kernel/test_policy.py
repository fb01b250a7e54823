"""Policy: the per-proposal checks in their fixed order, budgets, the loop guard and approval.

Every verdict is a transition: ``proposal.accepted`` with the checks passed, or
``proposal.rejected`` naming the check that refused; a refused proposal has no effect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telic.clock import SystemClock
from telic.errors import ConfigError
from telic.kernel import AgentBudget, AgentSpec, Budget, Kernel, RunConfig
from telic.kinds import Claim
from telic.ledger import open_ledger
from telic.minds.base import FunctionMind, View
from telic.policy import BudgetCheck, CheckContext, Policy
from telic.proposal import Action, Proposal
from telic.state import RunState
from telic.tools import ToolRegistry

from .kit import (
    Calls,
    Played,
    agent,
    call,
    config,
    echo_tool,
    finish,
    message,
    plan,
    play,
    remember,
    spent,
)

PER_PROPOSAL = ["schema", "allowlist", "arguments", "budget", "loop"]


def _verdict(played: Played, agent_name: str) -> str:
    """The one verdict recorded for the agent's first proposal."""
    made = played.of("proposal.made", agent_name)[0].seq
    accepted = [t for t in played.of("proposal.accepted") if t.data["proposal"] == made]
    rejected = [t for t in played.of("proposal.rejected") if t.data["proposal"] == made]
    assert len(accepted) + len(rejected) == 1, "every proposal gets exactly one verdict"
    return "accepted" if accepted else rejected[0].data["check"]


def test_each_check_refuses_in_the_fixed_order_and_the_first_refusal_is_the_verdict() -> None:
    calls = Calls()
    huge = "x" * 2000
    cfg = config(
        agent("ok", call("echo", x=1), finish(), tools=["echo"]),
        # oversized and calling a tool it may not: schema comes first
        agent("big", call("secret", blob=huge), finish(), tools=["echo"]),
        # not allowed and with wrong arguments: allowlist comes before arguments
        agent("nosy", call("secret", x="one"), finish(), tools=["echo"]),
        agent("lost", call("teleport", x=1), finish(), tools=["echo"]),
        agent("typo", call("echo", x="one"), finish(), tools=["echo"]),
        agent("extra", call("echo", x=1, y=2), finish(), tools=["echo"]),
        tools=[echo_tool(calls), echo_tool(calls, name="secret")],
        policy=Policy(max_proposal_bytes=1024),
    )
    played = play(cfg)
    assert {n: _verdict(played, n) for n in ("ok", "big", "nosy", "lost", "typo", "extra")} == {
        "ok": "accepted",
        "big": "schema",
        "nosy": "allowlist",
        "lost": "allowlist",
        "typo": "arguments",
        "extra": "arguments",
    }
    reasons = dict(played.rejections())
    assert "over the limit of 1024" in reasons["schema"]
    accepted = played.of("proposal.accepted", "ok")[0]
    assert accepted.data["checks"] == [*PER_PROPOSAL, "conflict"]
    by_agent = {t.agent: t.data["reason"] for t in played.of("proposal.rejected")}
    assert "may not call 'secret'" in by_agent["nosy"]
    assert "may not call 'teleport'" in by_agent["lost"]
    assert "x" in by_agent["typo"]
    assert "y" in by_agent["extra"]
    # Only the accepted call ran; the refused ones had no effect at all.
    assert calls.by_tool == {"echo": [{"x": 1}]}
    assert [t.agent for t in played.of("tool.started")] == ["ok"]
    for t in played.of("proposal.rejected"):
        assert played.effects_of(t.data["proposal"]) == []
    # Each refused agent was told why, as an observation.
    for name in ("big", "nosy", "lost", "typo", "extra"):
        assert any(o["source"] == "policy" for o in played.observations(name))
    assert played.result is not None
    assert played.result.status == "completed"


def test_a_missing_required_argument_is_a_schema_refusal() -> None:
    played = play(config(agent("a", Proposal(action="remember", args={"value": 1}), finish())))
    assert played.rejections("a") == [("schema", "action 'remember' needs args ['key']")]
    assert played.state()["memory"] == {}


# -- budgets ---------------------------------------------------------------------------------


def _budget_events(played: Played) -> list[tuple[int, str, str]]:
    return [
        (t.tick, t.kind, t.data["dimension"])
        for t in played.transitions()
        if t.kind in ("budget.warning", "budget.exhausted")
    ]


def test_tokens_warn_at_80_percent_then_refuse_and_stop_gracefully() -> None:
    steps = [spent(remember("i", i), "a", tokens=45) for i in range(6)]
    played = play(config(agent("a", *steps), budget=Budget(tokens=100)))
    assert _budget_events(played) == [
        (2, "budget.warning", "tokens"),
        (3, "budget.exhausted", "tokens"),
    ]
    assert played.rejections("a") == [("budget", "the tokens budget is exhausted")]
    assert played.of("proposal.rejected")[0].tick == 3
    assert played.one("run.stopped").data["reason"] == "budget exhausted: tokens"
    assert played.state()["spent"]["tokens"] == 135
    assert played.state()["memory"]["a"] == {"i": 1}  # tick 3's write was refused


def test_cost_warns_refuses_what_does_not_fit_and_stops() -> None:
    steps = [
        spent(remember("i", 0), "a", cost=0.5),
        spent(remember("i", 1), "a", cost=0.35),
        Proposal(action="remember", args={"key": "buy", "value": 1}, cost=0.5),
        spent(remember("i", 3), "a", cost=0.2),
        remember("i", 4),
    ]
    played = play(config(agent("a", *steps), budget=Budget(cost=1.0, currency="CHF")))
    assert _budget_events(played) == [
        (2, "budget.warning", "cost"),
        (4, "budget.exhausted", "cost"),
    ]
    assert played.rejections("a")[0][0] == "budget"
    assert "cost 0.5 is over what is left" in played.rejections("a")[0][1]
    assert played.of("proposal.rejected")[0].tick == 3
    assert played.one("run.booted").data["currency"] == "CHF"
    assert played.one("run.stopped").data["reason"] == "budget exhausted: cost"


def test_tool_calls_warn_then_stop_and_never_run_past_the_limit() -> None:
    calls = Calls()
    steps = [call("echo", x=i) for i in range(8)]
    cfg = config(
        agent("a", *steps, tools=["echo"]), tools=[echo_tool(calls)], budget=Budget(tool_calls=5)
    )
    played = play(cfg)
    assert _budget_events(played) == [
        (4, "budget.warning", "tool_calls"),
        (5, "budget.exhausted", "tool_calls"),
    ]
    assert calls.count("echo") == 5
    assert played.one("run.stopped").data["reason"] == "budget exhausted: tool_calls"


def test_two_calls_in_one_tick_do_not_overrun_the_tool_call_budget() -> None:
    calls = Calls()
    cfg = config(
        agent("a", call("echo", x=1), finish(), tools=["echo"]),
        agent("b", call("echo", x=2), finish(), tools=["echo"]),
        tools=[echo_tool(calls)],
        budget=Budget(tool_calls=1),
    )
    played = play(cfg)
    assert calls.by_tool == {"echo": [{"x": 1}]}
    assert played.rejections("b") == [("budget", "tool call budget of 1 is spent")]
    assert played.state()["spent"]["tool_calls"] == 1


def test_ticks_warn_at_a_configured_threshold_and_stop() -> None:
    steps = [remember("i", i) for i in range(9)]
    cfg = config(
        agent("a", *steps), budget=Budget(ticks=4), policy=Policy(warn_at=0.5, stall_ticks=0)
    )
    played = play(cfg)
    assert _budget_events(played) == [
        (2, "budget.warning", "ticks"),
        (4, "budget.exhausted", "ticks"),
    ]
    warning = played.of("budget.warning")[0].data
    assert (warning["spent"], warning["limit"]) == (2.0, 4.0)
    assert played.one("run.stopped").data["reason"] == "budget exhausted: ticks"


def test_wall_time_is_measured_on_the_injected_clock() -> None:
    async def slow(view: View) -> Proposal:
        await asyncio.sleep(3.0)  # virtual seconds
        return remember("tick", view.tick)

    from telic.kernel import AgentSpec

    cfg = config(
        AgentSpec("a", "worker", FunctionMind(slow)),
        budget=Budget(wall_s=10),
        policy=Policy(stall_ticks=0),
    )
    played = play(cfg)
    assert _budget_events(played) == [
        (3, "budget.warning", "wall_s"),
        (4, "budget.exhausted", "wall_s"),
    ]
    assert played.rejections("a") == [("budget", "the wall_s budget is exhausted")]
    assert played.one("run.stopped").data["reason"] == "budget exhausted: wall_s"


# -- the loop guard --------------------------------------------------------------------------


def test_the_same_proposal_repeated_is_a_loop() -> None:
    steps = [remember("k", 1)] * 4 + [remember("k", 2), finish()]
    played = play(config(agent("a", *steps), policy=Policy(loop_repeats=3, stall_ticks=0)))
    loops = played.of("loop.detected")
    assert [(t.tick, t.data["pattern"], t.data["count"]) for t in loops] == [
        (3, "repeat", 3),
        (4, "repeat", 4),
    ]
    assert [c for c, _ in played.rejections("a")] == ["loop", "loop"]
    for t in loops:
        rejected = [r for r in played.of("proposal.rejected") if t.data["proposal"] in r.causes]
        assert len(rejected) == 1
    assert played.state()["memory"]["a"] == {"k": 2}
    assert played.result is not None
    assert played.result.status == "completed"


def test_no_progress_for_m_ticks_stops_the_run() -> None:
    def idle(view: View) -> Proposal:
        return remember("tick", view.tick)

    from telic.kernel import AgentSpec

    cfg = config(
        AgentSpec("a", "worker", FunctionMind(idle)),
        AgentSpec("b", "worker", FunctionMind(idle)),
        policy=Policy(stall_ticks=3),
    )
    played = play(cfg)
    stall = played.one("loop.detected").data
    assert (stall["pattern"], stall["count"], stall["agent"]) == ("stall", 3, None)
    assert played.one("run.stopped").data["reason"] == "no progress for 3 ticks"
    assert played.kinds().count("tick.started") == 3


# -- approval for high-impact tools ------------------------------------------------------------


def _approval_run(answer: Any, **policy: Any) -> tuple[Played, Calls]:
    calls = Calls()

    async def approver(agent_name: str, tool_name: str, args: Mapping[str, Any]) -> bool | None:
        assert (agent_name, tool_name, dict(args)) == ("a", "launch", {"x": 7})
        if answer == "hang":
            await asyncio.sleep(3600)
        if answer == "raise":
            raise RuntimeError("approver is down")
        return answer if isinstance(answer, bool) else None

    cfg = config(
        agent("a", call("launch", x=7), finish(), tools=["launch"]),
        tools=[echo_tool(calls, name="launch", high_impact=True)],
        approver=None if answer == "absent" else approver,
        policy=Policy(approval_timeout_s=30, **policy),
    )
    return play(cfg), calls


def test_an_approved_high_impact_call_runs_after_the_run_paused_for_it() -> None:
    played, calls = _approval_run(True)
    kinds = played.kinds()
    i = kinds.index("approval.requested")
    assert kinds[i : i + 5] == [
        "approval.requested",
        "run.paused",
        "approval.granted",
        "proposal.accepted",
        "tool.started",
    ]
    assert played.one("approval.granted").data["by"] == "approver"
    assert played.of("proposal.accepted")[0].data["checks"] == [
        *PER_PROPOSAL,
        "conflict",
        "approval",
    ]
    assert calls.count("launch") == 1
    paused_at = played.one("run.paused").seq
    assert played.ledger.state_at("run", paused_at)["status"] == "paused"
    assert played.ledger.state_at("run", paused_at + 1)["status"] == "running"


@pytest.mark.parametrize(
    ("answer", "by", "reason"),
    [
        (False, "approver", "denied"),
        (None, "approver", "no answer means deny"),
        ("hang", "kernel", "no answer within 30 s; no answer means deny"),
        ("absent", "kernel", "no decision within 30 s; no answer means deny"),
        ("raise", "kernel", "the approver failed (RuntimeError: approver is down); deny"),
    ],
)
def test_a_high_impact_call_without_approval_is_denied_and_never_runs(
    answer: Any, by: str, reason: str
) -> None:
    played, calls = _approval_run(answer)
    denied = played.one("approval.denied").data
    assert (denied["by"], denied["reason"]) == (by, reason)
    assert played.rejections("a") == [("approval", reason)]
    assert calls.count("launch") == 0
    assert "tool.started" not in played.kinds()
    assert played.result is not None
    assert played.result.status == "completed"  # the run goes on: the agent finishes next


def test_a_message_to_an_agent_that_does_not_exist_is_refused() -> None:
    played = play(config(agent("a", message("nobody", "hi"), finish())))
    assert played.rejections("a") == [
        ("arguments", "message to 'nobody', which is not an agent of this run (agents: a)")
    ]
    assert "nobody" not in played.state()["agents"]
    assert played.result is not None
    assert played.result.status == "completed"


def test_after_the_per_proposal_checks_come_exploration_conflicts_grounding_then_approval() -> None:
    calls = Calls()
    asked: list[str] = []

    async def approver(agent_name: str, tool_name: str, args: Mapping[str, Any]) -> bool | None:
        asked.append(agent_name)
        return True

    unfounded = [Claim(key="rate", value=3, evidence=())]
    cfg = config(
        # unsure: the confidence verdict comes before any conflict
        agent(
            "unsure",
            Proposal(action="plan", args={"key": "hotel", "value": "U"}, confidence=0.2),
            finish(),
        ),
        # wins the conflict (first by order), then fails grounding
        agent(
            "w1",
            Proposal(action="plan", args={"key": "hotel", "value": "W1"}, claims=tuple(unfounded)),
            finish(),
        ),
        # loses the conflict to w1, although w1 is refused afterwards
        agent("w2", plan("hotel", "W2"), finish()),
        # a high-impact call with an unfounded claim is refused before anyone is asked
        agent("h", call("launch", claims=unfounded, x=1), finish(), tools=["launch"]),
        tools=[echo_tool(calls, name="launch", high_impact=True)],
        approver=approver,
        intensity=10,
    )
    played = play(cfg)
    verdicts = {t.agent: t.data["check"] for t in played.of("proposal.rejected")}
    assert verdicts == {
        "unsure": "confidence",
        "w1": "grounding",
        "w2": "conflict",
        "h": "grounding",
    }
    detected = played.one("conflict.detected").data
    assert detected["agents"] == ["w1", "w2"]
    order = [t.kind for t in played.transitions() if t.tick == 1]
    assert order.index("conflict.resolved") < order.index("hallucination.detected")
    assert asked == []
    assert calls.count("launch") == 0
    assert "approval.requested" not in played.kinds()
    assert "plan.updated" not in played.kinds()


# -- an agent's own budget ---------------------------------------------------------------------

_DIMS = ("tool_calls", "model_calls", "tokens", "cost")
_ACTIONS: tuple[Action, ...] = ("tool", "remember", "finish")


def _budget_state(limits: Mapping[str, float], spent: Mapping[str, float]) -> RunState:
    return RunState(
        {
            "budget": {},
            "spent": {"tokens": 0, "cost": 0.0, "tool_calls": 0, "ticks": 0, "wall_s": 0.0},
            "agent_budgets": {
                "a": {"limits": dict(limits), "spent": {d: spent.get(d, 0) for d in _DIMS}},
            },
        }
    )


@given(
    limits=st.dictionaries(st.sampled_from(_DIMS), st.integers(0, 5).map(float)),
    spent=st.dictionaries(st.sampled_from(_DIMS), st.integers(0, 6)),
    action=st.sampled_from(_ACTIONS),
    cost=st.none() | st.integers(0, 3).map(float),
    agent=st.sampled_from(("a", "b")),
)
def test_an_agents_budget_refuses_exactly_what_it_has_spent(
    limits: dict[str, float],
    spent: dict[str, int],
    action: Action,
    cost: float | None,
    agent: str,
) -> None:
    """The budget check refuses a proposal of the agent ``a`` exactly when one of its own
    limits is reached (tool calls for a tool call; model calls, tokens, cost for anything but
    finishing; a stated cost over what is left), naming the agent and the limit; the agent
    ``b``, with no budget of its own, is never refused."""
    args: dict[str, Any] = {"tool": "t", "args": {}} if action == "tool" else {"key": "k"}
    if action == "finish":
        args = {"result": "done"}
    proposal = Proposal(action=action, args=args, cost=cost)
    ctx = CheckContext(
        agent, "worker", frozenset({"t"}), _budget_state(limits, spent), ToolRegistry()
    )
    verdict = BudgetCheck().check(proposal, ctx)

    def used(d: str) -> float:
        return float(spent.get(d, 0))

    over = [
        d
        for d in _DIMS
        if d in limits
        and (
            (d == "tool_calls" and action == "tool" and used(d) >= limits[d])
            or (d == "cost" and cost is not None and used(d) + cost > limits[d])
            or (d != "tool_calls" and action != "finish" and used(d) >= limits[d])
        )
    ]
    if agent == "b" or not over:
        assert verdict.ok
        return
    assert not verdict.ok and verdict.check == "budget"
    assert verdict.extra["agent"] == "a" and "'a'" in verdict.reason
    dim = verdict.extra["dimension"]
    assert dim in over and verdict.extra["limit"] == limits[dim]
    assert verdict.extra["spent"] == used(dim)
    assert f"{limits[dim]:g}" in verdict.reason


def test_a_run_without_agent_budgets_folds_no_agent_budget_state() -> None:
    """Default budgets change no record and no state: the key exists only when an agent has
    a budget (the reference run's pinned head hash depends on it)."""
    from telic.reducer import initial_state

    assert "agent_budgets" not in initial_state()
    config = RunConfig(goal="g", agents=[AgentSpec("a", "worker", _finisher())])
    state = asyncio.run(_state_of(config))
    assert "agent_budgets" not in state
    booted = RunConfig(
        goal="g",
        agents=[AgentSpec("a", "worker", _finisher(), budget=AgentBudget(tokens=10))],
    )
    state = asyncio.run(_state_of(booted))
    assert state["agent_budgets"]["a"]["limits"] == {"tokens": 10.0}
    negative = RunConfig(
        goal="g",
        agents=[AgentSpec("a", "worker", _finisher(), budget=AgentBudget(tool_calls=-1))],
    )
    with pytest.raises(ConfigError, match="agent 'a' budget tool_calls must not be negative"):
        negative.validate()


def _finisher() -> FunctionMind:
    return FunctionMind(lambda view: Proposal(action="finish", args={"result": "ok"}))


async def _state_of(config: RunConfig) -> Mapping[str, Any]:
    ledger = open_ledger("memory://")
    result = await Kernel(ledger, clock=SystemClock()).run(config, max_ticks=2)
    return ledger.state_at(result.run_id)
