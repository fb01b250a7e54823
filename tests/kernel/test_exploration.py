"""Exploration: a proposal below the confidence threshold spawns a temporary explorer; its
findings come back to the parent as an observation, and the explorer ends."""

from __future__ import annotations

from telic.kernel import AgentSpec
from telic.minds.base import Mind, ScriptedMind, View
from telic.policy import Policy
from telic.proposal import Proposal

from .kit import Calls, agent, call, config, echo_tool, finish, play, remember


def _findings(view: View) -> Proposal:
    return finish({"question": view.question, "x": view.observations[-1].content["x"]})


def test_a_low_confidence_proposal_spawns_an_explorer_whose_findings_reach_the_parent() -> None:
    calls = Calls()
    made: list[tuple[str, str]] = []

    def explorer(question: str, parent: AgentSpec) -> Mind:
        made.append((question, parent.name))
        # the explorer is itself unsure; explorers never spawn explorers of their own
        return ScriptedMind([call("echo", confidence=0.1, x=3), _findings])

    def parent_decides(view: View) -> Proposal:
        found = [o for o in view.observations if o.source == "explorer:explorer-1"]
        return remember("x", found[0].content["x"])

    cfg = config(
        agent(
            "a",
            Proposal(
                action="remember", args={"key": "x", "value": 9}, confidence=0.2, reason="is x 9?"
            ),
            remember("waiting", 1),
            remember("waiting", 2),
            parent_decides,
            finish(),
            tools=["echo"],
        ),
        tools=[echo_tool(calls)],
        explorer=explorer,
        policy=Policy(exploration_threshold=0.5),
    )
    played = play(cfg)

    spawned = played.one("exploration.spawned")
    assert spawned.data == {
        "proposal": played.of("proposal.made", "a")[0].seq,
        "agent": "a",
        "explorer": "explorer-1",
        "question": "is x 9?",
        "confidence": 0.2,
        "threshold": 0.5,
    }
    assert played.rejections("a")[0] == (
        "confidence",
        "confidence 0.2 is below 0.5; explorer-1 explores it",
    )
    assert played.effects_of(spawned.data["proposal"]) == []
    assert made == [("is x 9?", "a")]
    helper = played.one("agent.spawned", "explorer-1")
    assert helper.causes == (spawned.seq,)
    assert (helper.data["temporary"], helper.data["parent"], helper.data["tools"]) == (
        True,
        "a",
        ["echo"],
    )
    assert calls.by_tool == {"echo": [{"x": 3}]}
    found = played.one("observation.recorded")
    assert (found.agent, found.data["source"]) == ("a", "explorer:explorer-1")
    assert found.data["content"] == {"question": "is x 9?", "x": 3}
    ended = played.one("agent.terminated", "explorer-1")
    assert ended.data["reason"] == "normal"
    assert ended.seq > found.seq
    state = played.state()
    assert state["agents"]["explorer-1"]["status"] == "terminated"
    assert state["memory"]["a"]["x"] == 3  # the parent acted on the findings
    assert "agent.failed" not in played.kinds()
    assert state["explorations"]["explorer-1"]["agent"] == "a"
    assert played.result is not None
    assert played.result.status == "completed"


def test_without_an_explorer_a_low_confidence_proposal_is_refused_not_a_crash() -> None:
    cfg = config(agent("a", remember("x", 1, confidence=0.1), finish()))
    played = play(cfg)
    assert played.rejections("a") == [
        ("confidence", "confidence 0.1 is below 0.5 and the run has no explorer")
    ]
    assert "exploration.spawned" not in played.kinds()
    assert played.state()["memory"] == {}
    assert played.result is not None
    assert played.result.status == "completed"


def test_a_spawn_request_without_an_explorer_is_refused() -> None:
    ask = Proposal(action="spawn", args={"question": "what now?"})
    played = play(config(agent("a", ask, finish())))
    assert played.rejections("a") == [("spawn", "the run has no explorer to spawn")]
    assert "agent.spawned" not in played.kinds()[3:]
