"""Property: whatever minds propose, the kernel commits only what policy allows.

Random scripts (random actions, tools, arguments, confidences and claims, many invalid) run
through the kernel; then, from the ledger alone, every committed effect must trace back to an
accepted proposal that passes each policy check when checked again independently, and nothing
rejected may have an effect.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telic.canonical import encode
from telic.errors import ToolArgumentsInvalid
from telic.kernel import AgentSpec, Budget
from telic.kinds import Claim
from telic.minds.base import Mind, ScriptedMind, Step
from telic.policy import Policy, RuleVerifier
from telic.proposal import Proposal
from telic.tools import ToolRegistry
from telic.transition import Transition

from .kit import EFFECT_KINDS, Calls, Played, agent, config, echo_tool, finish, play

AGENTS = {"a": ("echo", "launch"), "b": ("echo",), "c": ()}
POLICY = Policy(max_proposal_bytes=600, loop_repeats=3, stall_ticks=0)
TICKS = 4


def _tools() -> ToolRegistry:
    calls = Calls()
    return ToolRegistry(
        [
            echo_tool(calls),
            echo_tool(calls, name="launch", high_impact=True),
            echo_tool(calls, name="secret"),
        ]
    )


_args = st.sampled_from([{"x": 1}, {"x": 2}, {"x": 3}, {"x": "two"}, {}, {"y": 1}])
_claim = st.lists(
    st.builds(
        Claim,
        key=st.sampled_from(["x", "y"]),
        value=st.sampled_from([1, 2, 3, "two"]),
        evidence=st.lists(st.integers(1, 60), max_size=2).map(tuple),
    ),
    min_size=1,
    max_size=1,
).map(tuple)
_claims = st.one_of(st.just(()), st.just(()), _claim)
_confidence = st.sampled_from([1.0, 1.0, 0.9, 0.3])


def _tool_call(name: str, args: dict[str, Any], confidence: float, claims: Any) -> Proposal:
    return Proposal(
        action="tool", args={"tool": name, "args": args}, confidence=confidence, claims=claims
    )


def _remember(key: str, value: Any, confidence: float, claims: Any) -> Proposal:
    return Proposal(
        action="remember", args={"key": key, "value": value}, confidence=confidence, claims=claims
    )


def _plan(key: str, value: int, confidence: float) -> Proposal:
    return Proposal(action="plan", args={"key": key, "value": value}, confidence=confidence)


def _message(to: str, confidence: float) -> Proposal:
    return Proposal(action="message", args={"to": to, "content": "hi"}, confidence=confidence)


def _spawn(confidence: float) -> Proposal:
    return Proposal(action="spawn", args={"question": "why?"}, confidence=confidence)


_tool_calls = st.builds(
    _tool_call,
    st.sampled_from(["echo", "echo", "launch", "launch", "secret", "nope"]),
    _args,
    _confidence,
    _claims,
)
_proposals = st.one_of(
    _tool_calls,
    _tool_calls,
    st.builds(
        _remember,
        st.sampled_from(["k1", "k2"]),
        st.sampled_from([1, 2, 3, 4, "x" * 700]),
        _confidence,
        _claims,
    ),
    st.builds(_plan, st.sampled_from(["p1", "p2"]), st.integers(0, 3), _confidence),
    st.builds(_message, st.sampled_from(["a", "b", "c", "ghost"]), _confidence),
    st.builds(_spawn, _confidence),
    st.just(finish()),
    st.just(Proposal(action="remember", args={"value": 1})),  # no key: a schema refusal
)
_steps: st.SearchStrategy[Step] = st.one_of(
    _proposals, _proposals, _proposals, st.just(RuntimeError("the mind fell over"))
)


def _repeated(steps: list[tuple[Step, int]]) -> list[Step]:
    """Each step said 1 to 3 times in a row (so that the loop guard has work), one a tick."""
    return [step for step, times in steps for _ in range(times)][:TICKS]


_script = st.lists(st.tuples(_steps, st.integers(1, 3)), min_size=TICKS, max_size=TICKS).map(
    _repeated
)


def _explorer(question: str, parent: AgentSpec) -> Mind:
    return ScriptedMind([finish({"question": question})])


def _reconstructed(made: Transition) -> Proposal:
    d = made.data
    return Proposal(
        action=d["action"],
        args=d["args"],
        confidence=d["confidence"],
        reason=d["reason"],
        claims=tuple(Claim(**c) for c in d["claims"]),
        cost=d["cost"],
    )


def _check_policy_allows(played: Played, made: Transition, budget_calls: int) -> None:
    """Check one accepted proposal against the policy again, from the ledger alone."""
    transitions = played.transitions()
    proposal = _reconstructed(made)
    agents = {
        **{a["name"]: a["tools"] for a in transitions[0].data["agents"]},
        **{t.data["agent"]: t.data["tools"] for t in played.of("agent.spawned")},
    }
    explorers = {t.data["agent"] for t in played.of("agent.spawned") if t.data["temporary"]}
    # schema and size
    assert len(encode(proposal.model_dump(mode="json"))) <= POLICY.max_proposal_bytes
    # allowlist and arguments
    if proposal.action == "tool":
        name = str(proposal.args["tool"])
        assert name in agents[made.agent or ""]
        registry = _tools()
        assert name in registry
        try:
            registry.get(name).validate(dict(proposal.args["args"]))  # type: ignore[arg-type]
        except ToolArgumentsInvalid as exc:  # pragma: no cover - the property failing
            raise AssertionError(f"accepted invalid arguments: {exc}") from exc
        if registry.get(name).high_impact:
            granted = [t for t in played.of("approval.granted") if t.data["proposal"] == made.seq]
            assert len(granted) == 1
    if proposal.action == "message":
        assert proposal.args["to"] in agents
    if proposal.action in ("remember", "plan"):
        assert "key" in proposal.args
    # loop guard: not the same as the proposals just before it
    mine = [t for t in played.of("proposal.made", made.agent) if t.seq <= made.seq]
    prints = [encode([t.data["action"], t.data["args"]]) for t in mine]
    run = prints[-POLICY.loop_repeats :]
    if proposal.action != "finish":
        assert len(run) < POLICY.loop_repeats or len(set(run)) > 1
    # exploration: confident enough, or an explorer itself, or not an action to explore
    if made.agent not in explorers and proposal.action not in ("finish", "spawn"):
        assert proposal.confidence >= POLICY.exploration_threshold
    # grounding, against what was committed before the tick began
    tick_start = next(t.seq for t in played.of("tick.started") if t.data["tick"] == made.tick)

    def lookup(seq: int) -> Transition | None:
        return transitions[seq - 1] if 1 <= seq < tick_start else None

    for claim in proposal.claims:
        assert RuleVerifier().unsupported(claim, lookup) is None
    assert len(played.of("tool.started")) <= budget_calls


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scripts=st.fixed_dictionaries(dict.fromkeys(AGENTS, _script)),
    answers=st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=4),
    budget_calls=st.integers(1, 4),
)
def test_committed_actions_are_a_subset_of_what_policy_allows(
    scripts: dict[str, list[Step]], answers: list[bool | None], budget_calls: int
) -> None:
    pending = list(answers)

    async def approver(agent_name: str, tool_name: str, args: Any) -> bool | None:
        return pending.pop(0) if pending else None

    cfg = config(
        *(agent(name, *scripts[name], tools=AGENTS[name], role=name) for name in AGENTS),
        tools=list(_tools()),
        budget=Budget(tool_calls=budget_calls),
        policy=POLICY,
        explorer=_explorer,
        approver=approver,
        intensity=100,
    )
    played = play(cfg, max_ticks=TICKS)
    assert played.result is not None  # the kernel never crashed

    made = {t.seq: t for t in played.of("proposal.made")}
    accepted = {t.data["proposal"] for t in played.of("proposal.accepted")}
    rejected = {t.data["proposal"] for t in played.of("proposal.rejected")} - {None}
    # every proposal has exactly one recorded verdict
    assert accepted | rejected == set(made)
    assert not accepted & rejected
    assert len(played.of("proposal.accepted")) == len(accepted)
    # every committed effect comes from an accepted proposal that policy allows
    for effect in (t for t in played.transitions() if t.kind in EFFECT_KINDS):
        cause = effect.causes[0]
        assert cause in accepted, f"{effect.kind} at {effect.seq} has no accepted proposal"
        assert made[cause].agent == effect.agent
        _check_policy_allows(played, made[cause], budget_calls)
    # nothing rejected has an effect
    for seq in rejected:
        assert played.effects_of(seq) == []
    # no two accepted proposals of one tick hold the same resource
    held: dict[tuple[int, str], int] = {}
    for seq in accepted:
        resource = made[seq].data["resource"]
        if resource is not None:
            assert (made[seq].tick, resource) not in held
            held[(made[seq].tick, resource)] = seq
