"""Bad input never crashes the kernel: a mind that raises, hangs or returns garbage, and a
tool that raises, hangs or returns something unserialisable, each become a recorded rejection
or failure; the agent is told why (an observation in its state), its supervisor restarts it
where the policy says so, and the run goes on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telic.errors import MalformedOutput
from telic.kernel import AgentSpec
from telic.kinds import ModelCalled
from telic.minds.base import FunctionMind, View
from telic.policy import Policy
from telic.proposal import Proposal
from telic.tools import tool

from .kit import Played, agent, call, config, finish, play, remember


def _after_the_failure(played: Played, name: str = "a") -> list[dict[str, Any]]:
    """What the agent was told, as its state holds it."""
    return played.observations(name)


def _completed(played: Played) -> None:
    assert played.result is not None
    assert played.result.status == "completed"


# -- minds -------------------------------------------------------------------------------------


def test_a_mind_that_raises_is_a_recorded_failure_and_its_agent_restarts() -> None:
    def recall(view: View) -> Proposal:
        failure = next(o for o in view.observations if o.source == "failure")
        return remember("last_error", failure.content)

    played = play(config(agent("a", RuntimeError("boom"), recall, finish())))
    failed = played.one("agent.failed", "a").data
    assert (failed["error"], failed["message"]) == ("AgentCrash", "RuntimeError: boom")
    restarted = played.one("agent.restarted", "a").data
    assert restarted["reason"] == "AgentCrash: RuntimeError: boom"
    assert played.of("tick.completed")[0].data["valid"] is False
    assert "proposal.made" not in played.kinds()[: played.kinds().index("agent.failed")]
    # the restarted agent saw the failure in the state rebuilt from the ledger
    assert played.state()["memory"]["a"]["last_error"] == {
        "error": "AgentCrash",
        "message": "RuntimeError: boom",
    }
    _completed(played)


def test_a_mind_that_hangs_is_timed_out_and_restarted() -> None:
    answers = iter(["hang", "finish"])

    async def sometimes_hangs(view: View) -> Proposal:
        if next(answers) == "hang":
            await asyncio.sleep(10 * 24 * 3600)
        return finish()

    cfg = config(
        AgentSpec("a", "worker", FunctionMind(sometimes_hangs)),
        policy=Policy(mind_timeout_s=5),
    )
    played = play(cfg)
    failed = played.one("agent.failed", "a")
    assert failed.data["message"] == "MindTimeout: the mind did not answer within 5 s"
    assert played.one("agent.restarted", "a").seq == failed.seq + 1
    assert any(o["source"] == "failure" for o in _after_the_failure(played))
    # the timeout is measured on the run's clock: five virtual seconds passed
    assert failed.ts - played.of("tick.started")[0].ts == 5_000_000
    # an async FunctionMind is not asked on the fast path (tests/kernel/test_fast_ask.py): it
    # is awaited in its process's task, so the timeout reaches it and the run goes on
    assert played.result is not None and played.result.status == "completed"
    _completed(played)


class _Garbage:
    """A mind that answers with something that is not a proposal."""

    def __init__(self, garbage: object) -> None:
        self.garbage = garbage
        self.calls = 0

    async def propose(self, view: View) -> Any:
        self.calls += 1
        return self.garbage if self.calls == 1 else finish()


@pytest.mark.parametrize("garbage", [{"action": "finish"}, "finish", None])
def test_a_mind_that_returns_garbage_gets_a_schema_rejection(garbage: object) -> None:
    played = play(config(AgentSpec("a", "worker", _Garbage(garbage))))
    check, reason = played.rejections("a")[0]
    assert check == "schema"
    assert reason == (
        f"model output is not a valid proposal: the mind returned {type(garbage).__name__}, "
        "not a Proposal"
    )
    assert played.of("proposal.rejected")[0].data["proposal"] is None
    assert "proposal.made" not in played.kinds()[: played.kinds().index("proposal.rejected")]
    assert {"seq": played.of("proposal.rejected")[0].seq, "source": "policy"}.items() <= (
        _after_the_failure(played)[0].items()
    )
    assert "agent.failed" not in played.kinds()  # a bad answer is a rejection, not a crash
    _completed(played)


def test_malformed_model_output_records_the_model_calls_then_the_rejection() -> None:
    attempt = ModelCalled(
        agent="a",
        model="m",
        request_digest="d1",
        response="{oops",
        input_tokens=7,
        error="bad JSON",
    )
    played = play(
        config(agent("a", MalformedOutput("bad JSON", calls=(attempt,)), finish())),
    )
    kinds = played.kinds()
    i = kinds.index("model.called")
    assert kinds[i : i + 2] == ["model.called", "proposal.rejected"]
    assert played.one("model.called").data["error"] == "bad JSON"
    assert played.rejections("a") == [("schema", "model output is not a valid proposal: bad JSON")]
    assert played.state()["spent"]["tokens"] == 7
    _completed(played)


# -- tools -------------------------------------------------------------------------------------


@tool
async def explode(x: int) -> int:
    raise ValueError(f"cannot handle {x}")


@tool(timeout=2.0)
async def hang(x: int) -> int:
    await asyncio.sleep(10 * 24 * 3600)
    return x


@tool
async def opaque(x: int) -> Any:
    return object()


@tool
async def not_a_number(x: int) -> float:
    return float("nan")


@tool
async def a_set(x: int) -> Any:
    return {x}


@pytest.mark.parametrize(
    ("name", "kind", "detail"),
    [
        ("explode", "tool.failed", ("ValueError", "cannot handle 1")),
        ("hang", "tool.timeout", 2.0),
        ("opaque", "tool.failed", "Unserialisable"),
        ("not_a_number", "tool.failed", "Unserialisable"),
        ("a_set", "tool.failed", "Unserialisable"),
    ],
)
def test_a_tool_that_fails_is_recorded_and_its_agent_is_told_and_restarted(
    name: str, kind: str, detail: Any
) -> None:
    cfg = config(
        agent("a", call(name, x=1), finish(), tools=[name]),
        tools=[explode, hang, opaque, not_a_number, a_set],
    )
    played = play(cfg)
    outcome = played.one(kind, "a")
    assert outcome.causes == (played.one("tool.started").seq,)
    if kind == "tool.timeout":
        assert outcome.data["timeout_s"] == detail
    elif isinstance(detail, tuple):
        assert (outcome.data["error"], outcome.data["message"]) == detail
    else:
        assert outcome.data["error"] == detail
    told = [o for o in _after_the_failure(played) if o["source"] == f"tool:{name}"]
    assert told[0]["seq"] == outcome.seq
    assert told[0]["content"]["args"] == {"x": 1}
    failed = played.one("agent.failed", "a")
    assert failed.seq > outcome.seq
    assert played.one("agent.restarted", "a").seq == failed.seq + 1
    assert played.of("tick.completed")[0].data["valid"] is False
    assert played.state()["pending_tools"] == {}
    _completed(played)


def test_a_tool_failure_can_leave_the_agent_running() -> None:
    cfg = config(
        agent("a", call("explode", x=1), finish(), tools=["explode"]),
        tools=[explode],
        policy=Policy(fail_agent_on_tool_error=False),
    )
    played = play(cfg)
    assert played.one("tool.failed").data["error"] == "ValueError"
    assert "agent.failed" not in played.kinds()
    assert "agent.restarted" not in played.kinds()
    assert played.of("tick.completed")[0].data["valid"] is False
    _completed(played)


@tool
async def a_tuple(x: int) -> Any:
    return (x, x + 1)


def test_a_json_result_of_another_python_type_is_recorded_as_its_json() -> None:
    cfg = config(agent("a", call("a_tuple", x=1), finish(), tools=["a_tuple"]), tools=[a_tuple])
    played = play(cfg)
    assert played.one("tool.completed").data["result"] == [1, 2]
    _completed(played)
