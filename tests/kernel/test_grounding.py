"""Grounding: a claim its cited observations do not support is a hallucination; the agent is
killed and restarted, and the run is restored to its last valid tick (beliefs, plan and
memory go back; spending and the tick counter do not)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import JsonValue

from telic.kinds import Claim
from telic.minds.base import View
from telic.policy import Policy
from telic.proposal import Proposal

from .kit import Calls, Played, agent, call, config, echo_tool, finish, plan, play, remember


def _echo_seq(view: View) -> int:
    """The seq of this agent's observed echo result."""
    return next(o.seq for o in view.observations if o.source == "tool:echo")


def _claiming(
    value: JsonValue, cite: Callable[[View], tuple[int, ...]]
) -> Callable[[View], Proposal]:
    def step(view: View) -> Proposal:
        return remember("x", value, claims=[Claim(key="x", value=value, evidence=cite(view))])

    return step


def _grounding_run(claim: Callable[[View], Proposal]) -> Played:
    calls = Calls()
    cfg = config(
        agent("a", call("echo", x=5), claim, finish(), tools=["echo"]),
        tools=[echo_tool(calls)],
        intensity=5,
    )
    return play(cfg)


def test_a_claim_its_observation_supports_becomes_a_belief() -> None:
    played = _grounding_run(_claiming(5, lambda v: (_echo_seq(v),)))
    assert "hallucination.detected" not in played.kinds()
    accepted = played.of("proposal.accepted", "a")[1]
    assert accepted.data["checks"][-1] == "grounding"
    belief = played.one("belief.updated")
    evidence = played.one("tool.completed").seq
    assert belief.data == {"agent": "a", "key": "x", "value": 5, "evidence": [evidence]}
    assert set(belief.causes) == {accepted.data["proposal"], evidence}
    assert played.state()["beliefs"]["x"]["value"] == 5


@pytest.mark.parametrize(
    ("claim", "why"),
    [
        (_claiming(5, lambda _v: ()), "claim x=5 cites no observation"),
        (_claiming(5, lambda _v: (1,)), "claim x=5 cites seq 1, a run.booted, not an observation"),
        (_claiming(5, lambda _v: (999,)), "claim x=5 cites seq 999, which does not exist"),
        (
            _claiming(6, lambda v: (_echo_seq(v),)),
            "claim x=6: 6 appears in none of the cited observations",
        ),
    ],
    ids=["cites-nothing", "cites-a-non-observation", "cites-nothing-there", "wrong-value"],
)
def test_an_unsupported_claim_is_a_hallucination_and_the_agent_is_killed_and_restarted(
    claim: Callable[[View], Proposal], why: str
) -> None:
    played = _grounding_run(claim)
    found = played.one("hallucination.detected")
    assert found.agent == "a"
    assert found.data["reason"].startswith(why)
    proposal = found.data["proposal"]
    # every cause exists (an invented seq is the finding, not a cause)
    assert all(0 < c < found.seq for c in found.causes)
    assert played.rejections("a") == [("grounding", found.data["reason"])]
    assert played.effects_of(proposal) == []
    assert "belief.updated" not in played.kinds()
    killed = played.of("agent.terminated", "a")[0]
    assert killed.data["reason"].startswith("killed")
    restarted = played.one("agent.restarted", "a")
    assert restarted.seq > killed.seq
    assert played.one("state.restored").seq > restarted.seq
    closing = played.of("tick.completed")[1]
    assert (closing.data["tick"], closing.data["valid"]) == (2, False)
    # the restarted agent goes on (it finishes) and the run completes
    assert played.of("agent.terminated", "a")[-1].data["reason"] == "normal"
    assert played.result is not None
    assert played.result.status == "completed"
    assert played.state()["agents"]["a"]["hallucinations"] == 1


def test_a_hallucination_restores_the_last_valid_tick_but_not_spending_or_the_tick() -> None:
    calls = Calls()

    def grounded(view: View) -> Proposal:
        seq = _echo_seq(view)
        return remember("fact", 5, claims=[Claim(key="x", value=5, evidence=(seq,))])

    def lie(view: View) -> Proposal:
        seq = _echo_seq(view)
        return remember("fact", 6, claims=[Claim(key="x", value=6, evidence=(seq,))])

    cfg = config(
        agent(
            "a", call("echo", x=5), grounded, lie, remember("after", 1), finish(), tools=["echo"]
        ),
        agent("b", remember("m", 1), plan("p", "v1"), remember("m", 2), finish()),
        agent("c", remember("n", 1), remember("n", 2), plan("q", "late"), finish()),
        tools=[echo_tool(calls)],
        policy=Policy(stall_ticks=0),
    )
    played = play(cfg)
    restored = played.one("state.restored")
    tick2 = next(t for t in played.of("tick.completed") if t.data["tick"] == 2)
    assert tick2.data["valid"]
    assert restored.tick == 3
    assert (restored.data["target"], restored.data["tick"]) == (tick2.seq, 2)
    assert restored.data["reason"] == "hallucination by a"
    before = played.ledger.state_at("run", restored.seq - 1)
    after = played.ledger.state_at("run", restored.seq)
    then = played.ledger.state_at("run", tick2.seq)
    # tick 3's writes (b's m=2, c's n=2 and plan q) are undone; tick 2's stay
    assert before["memory"]["b"] == {"m": 2}
    assert before["plan"].keys() == {"p", "q"}
    for part in ("memory", "beliefs", "plan"):
        assert after[part] == then[part]
    assert after["memory"] == {"a": {"fact": 5}, "b": {"m": 1}, "c": {"n": 2}}
    assert after["beliefs"]["x"]["value"] == 5
    assert after["plan"].keys() == {"p"}
    # spending and time are never rolled back
    assert after["spent"]["tool_calls"] == before["spent"]["tool_calls"] == 1
    assert after["spent"]["ticks"] == before["spent"]["ticks"] == 3
    assert after["tick"] == 3
    assert after["restores"] == [{"target": tick2.seq, "tick": 2, "seq": restored.seq}]
    assert played.of("tick.started")[3].data["tick"] == 4
    assert calls.count("echo") == 1
    final = played.state()
    assert final["memory"]["a"] == {"fact": 5, "after": 1}
    assert final["spent"]["ticks"] == 5


def test_a_hallucination_before_any_valid_tick_restores_the_empty_start() -> None:
    lie = remember("z", 2, claims=[Claim(key="q", value=3)])
    played = play(config(agent("a", remember("k", 1), finish()), agent("b", lie, finish())))
    restored = played.one("state.restored")
    assert (restored.data["target"], restored.data["tick"]) == (0, 0)
    after = played.ledger.state_at("run", restored.seq)
    assert (after["memory"], after["beliefs"], after["plan"]) == ({}, {}, {})
    assert played.state()["memory"] == {}


def test_an_agent_killed_for_a_hallucination_and_not_restarted_is_not_finished() -> None:
    lie = remember("z", 2, claims=[Claim(key="q", value=3)])
    played = play(
        config(agent("a", lie, restart="temporary"), agent("b", remember("k", 1), finish()))
    )
    assert played.one("agent.terminated", "a").data["reason"].startswith("killed")
    assert "agent.restarted" not in played.kinds()
    assert played.state()["agents"]["a"]["status"] == "killed"
    assert played.result is not None
    # "every permanent agent finished" does not hold: a was killed, not finished
    assert (played.result.status, played.result.reason) == ("failed", "no live agents are left")
