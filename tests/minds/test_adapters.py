"""Both model adapters, end to end through the official SDKs, against a local server.

One suite, run against each wire format: the server on 127.0.0.1 speaks OpenAI chat
completions and Anthropic messages; nothing is patched.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from minds_helpers import SkippingClock

from telic.errors import MalformedOutput, ProviderError
from telic.kinds import ModelCalled
from telic.minds import Limits, ModelMind, View, model_mind
from telic.minds.anthropic import AnthropicMind
from telic.minds.openai import OpenAIMind
from telic.minds.testing import ModelServer, Reply, ServerRequest

T = TypeVar("T")

MODELS = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-sonnet-4-6"}

FINISH = {
    "action": "finish",
    "args": {"result": "Basel-Lugano by train, CHF 540"},
    "confidence": 0.9,
    "reason": "the plan is complete",
}
TOOL_CALL = {
    "action": "tool",
    "args": {"tool": "search_trains", "args": {"origin": "Basel"}},
    "confidence": 0.7,
    "reason": "need prices",
    "claims": [{"key": "train_price", "value": 79, "evidence": [4]}],
}


@pytest.fixture(params=["openai", "anthropic"])
def api(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def url_for(server: ModelServer, api: str) -> str:
    return server.openai_url if api == "openai" else server.anthropic_url


def mind_for(server: ModelServer, api: str, **kw: Any) -> ModelMind:
    kw.setdefault("scheduler", Limits(max_retries=0, timeout_s=10))
    return model_mind(MODELS[api], base_url=url_for(server, api), **kw)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def propose(mind: ModelMind, view: View) -> Any:
    async with mind:
        return await mind.propose(view)


# -- the happy path -----------------------------------------------------------------------


def test_a_propose_call_becomes_a_proposal_with_its_model_call(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.propose(TOOL_CALL, input_tokens=1200, output_tokens=80))
    mind = mind_for(server, api)
    assert isinstance(mind, OpenAIMind if api == "openai" else AnthropicMind)
    proposal = run(propose(mind, make_view()))

    assert proposal.action == "tool"
    assert proposal.args == TOOL_CALL["args"]
    assert proposal.claims[0].evidence == (4,)
    (call,) = proposal.model_calls
    assert isinstance(call, ModelCalled)
    assert call.model == MODELS[api]
    assert call.agent == "planner-1"
    assert (call.input_tokens, call.output_tokens) == (1200, 80)
    price = {"openai": (0.40, 1.60), "anthropic": (3.0, 15.0)}[api]
    assert call.cost == pytest.approx((1200 * price[0] + 80 * price[1]) / 1e6)
    assert call.latency_ms > 0
    assert call.error is None
    assert call.attempt == 1
    assert len(call.request_digest) == 64
    assert isinstance(call.response, dict)
    assert call.response["usage"]  # the provider's response is what gets recorded
    assert server.unused == 0


def test_the_request_offers_the_proposal_schema_as_a_forced_tool(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.propose(FINISH))
    run(propose(mind_for(server, api, api_key="sk-test"), make_view()))
    (body,) = server.bodies()
    headers = {k.lower(): v for k, v in server.requests[0].headers.items()}
    if api == "openai":
        assert server.requests[0].path == "/v1/chat/completions"
        assert headers["authorization"] == "Bearer sk-test"
    else:
        assert server.requests[0].path == "/v1/messages"
        key = headers.get("x-api-key") or headers["authorization"].removeprefix("Bearer ")
        assert key == "sk-test"
        assert "anthropic-version" in headers
    if api == "openai":
        (tool,) = body["tools"]
        schema = tool["function"]["parameters"]
        assert body["tool_choice"] == {"type": "function", "function": {"name": "propose"}}
        system = body["messages"][0]["content"]
        user = body["messages"][1]["content"]
        assert body["max_completion_tokens"] == 1024
    else:
        (tool,) = body["tools"]
        schema = tool["input_schema"]
        assert body["tool_choice"] == {"type": "tool", "name": "propose"}
        system = body["system"]
        user = body["messages"][0]["content"]
        assert body["max_tokens"] == 1024
    assert set(schema["properties"]) == {
        "action",
        "args",
        "confidence",
        "reason",
        "claims",
        "resource",
        "cost",
    }
    assert "model_calls" not in json.dumps(schema)
    assert "$ref" not in json.dumps(schema)
    # the role prompt and the protocol go to the system prompt ...
    assert "You are the **planner**" in system
    assert "## How you act" in system
    # ... and the view to the user message
    for part in (
        "Plan 3-day Basel to Ticino trip under CHF 600",
        "role: planner",
        '"cost":600.0',
        "search_trains",
        '"origin"',
        "Basel to Lugano",
        "train_price",
        "prefer trains",
        "skeptic-1 (skeptic)",
    ):
        assert part in user, part


def test_json_mode_asks_for_a_json_object_and_reads_it(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.prose("Here it is:\n```json\n" + json.dumps(FINISH) + "\n```"))
    proposal = run(propose(mind_for(server, api, structured="json"), make_view()))
    assert proposal.action == "finish"
    (body,) = server.bodies()
    assert "tools" not in body
    if api == "openai":
        assert body["response_format"]["json_schema"]["name"] == "proposal"
    else:
        assert "matching this JSON schema" in body["system"]


def test_observations_are_shown_with_their_sequence_numbers(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    view = make_view(
        observations=[{"seq": 17, "source": "tool:search_trains", "content": {"price": 79}}]
    )
    run(propose(mind_for(server, api), view))
    (body,) = server.bodies()
    text = json.dumps(body)
    assert "seq 17 [tool:search_trains]" in text
    assert '{\\"price\\":79}' in text


def test_a_role_prompt_given_explicitly_replaces_the_shipped_one(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    run(propose(mind_for(server, api, role_prompt="You only ever finish."), make_view()))
    (body,) = server.bodies()
    system = body["messages"][0]["content"] if api == "openai" else body["system"]
    assert system.startswith("You only ever finish.")
    assert "**planner**" not in system


# -- repairs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (Reply.prose("I think we should take the train."), "prose"),
        (Reply.call("propose", '{"action": "finish", '), "not valid JSON"),
        (Reply.propose({"action": "fly", "confidence": 2}), "does not match the schema"),
        (Reply.call("search_trains", {"origin": "Basel"}), "not available to you"),
        (Reply.propose({**FINISH, "reason": "x" * 3000}), "over the limit"),
        (Reply.propose({**FINISH, "model_calls": []}), "model_calls"),
        (Reply.prose(""), "empty"),
        (Reply.prose("{not json}"), "not valid"),
    ],
)
def test_an_unusable_reply_is_sent_back_and_repaired(
    server: ModelServer,
    api: str,
    make_view: Callable[..., View],
    bad: Reply,
    problem: str,
) -> None:
    if api == "anthropic" and problem == "not valid JSON":
        problem = "does not match the schema"  # the Anthropic wire carries an object
    server.script(bad, Reply.propose(FINISH))
    proposal = run(propose(mind_for(server, api, max_reply_bytes=2048), make_view()))

    assert proposal.action == "finish"
    first, second = proposal.model_calls
    assert first.attempt == 1
    assert first.error is not None
    assert problem in first.error
    assert second.attempt == 2
    assert second.error is None
    assert first.request_digest != second.request_digest
    # the second request carries the first reply and what was wrong with it
    _, repair = server.bodies()
    messages = repair["messages"]
    assert messages[-2]["role"] == "assistant"
    assert problem in json.dumps(messages[-1])


def test_a_reply_cut_off_at_the_output_limit_says_so(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.prose("I will now", truncated=True), Reply.propose(FINISH))
    proposal = run(propose(mind_for(server, api), make_view()))
    error = proposal.model_calls[0].error
    assert error is not None
    assert "cut off" in error


def test_repairs_are_bounded_then_malformed_output_carries_every_call(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(*[Reply.prose(f"no proposal, attempt {i}") for i in range(3)])
    with pytest.raises(MalformedOutput) as info:
        run(propose(mind_for(server, api, max_repairs=2), make_view()))
    calls = info.value.calls
    assert [c.attempt for c in calls] == [1, 2, 3]
    assert all(c.error and "prose" in c.error for c in calls)
    assert all(c.input_tokens > 0 for c in calls)
    assert "3 attempt(s)" in str(info.value)
    assert len(server.requests) == 3


def test_no_repairs_means_one_attempt(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.prose("nope"))
    with pytest.raises(MalformedOutput) as info:
        run(propose(mind_for(server, api, max_repairs=0), make_view()))
    assert len(info.value.calls) == 1


# -- recorded calls: resume and replay never call twice -----------------------------------


def test_recorded_responses_are_reused_instead_of_calling_again(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.prose("thinking out loud"), Reply.propose(TOOL_CALL))
    first = run(propose(mind_for(server, api), make_view()))
    assert len(server.requests) == 2

    recorded = {c.request_digest: c.response for c in first.model_calls}
    again = run(propose(mind_for(server, api), make_view(recorded=recorded)))
    assert len(server.requests) == 2  # nothing was sent
    assert again.model_dump() == first.model_dump()  # model_calls are not part of the dump
    assert again.model_calls == ()  # already in the ledger: not returned twice

    # a recorded ``model.called`` payload works as well as the bare response
    payloads = {c.request_digest: c.model_dump(mode="json") for c in first.model_calls}
    replayed = run(propose(mind_for(server, api), make_view(recorded=payloads)))
    assert replayed.model_dump() == first.model_dump()
    assert len(server.requests) == 2


def test_a_partial_record_resumes_where_it_stopped(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.prose("thinking out loud"), Reply.propose(FINISH))
    first = run(propose(mind_for(server, api), make_view()))
    failed = first.model_calls[0]

    # the kernel crashed after recording the first attempt only
    server.script(Reply.propose(FINISH))
    resumed = run(
        propose(mind_for(server, api), make_view(recorded={failed.request_digest: failed.response}))
    )
    assert len(server.requests) == 3  # one new call: the repair
    (call,) = resumed.model_calls
    assert call.attempt == 2
    assert call.request_digest == first.model_calls[1].request_digest


def test_the_request_digest_is_stable_for_the_same_view(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.propose(FINISH), Reply.propose(FINISH))
    a = run(propose(mind_for(server, api), make_view()))
    b = run(propose(mind_for(server, api), make_view()))
    assert a.model_calls[0].request_digest == b.model_calls[0].request_digest
    c = run(propose(mind_for(server, api), make_view(agent="planner-2")))
    assert c.model_calls[0].request_digest != a.model_calls[0].request_digest


# -- provider failures --------------------------------------------------------------------


def test_429_with_retry_after_is_honoured_then_retried(
    server: ModelServer, api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    server.script(Reply.error(429, retry_after=7), Reply.propose(FINISH))
    limits = Limits(max_retries=2, backoff_s=0.5, timeout_s=10)
    proposal = run(propose(mind_for(server, api, scheduler=limits, clock=clock), make_view()))
    assert proposal.action == "finish"
    assert clock.sleeps == [7.0]
    assert len(server.requests) == 2
    assert len(proposal.model_calls) == 1  # a failed HTTP attempt is not a model call


def test_500_is_retried_with_exponential_back_off(
    server: ModelServer, api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    server.script(Reply.error(500), Reply.error(503), Reply.propose(FINISH))
    limits = Limits(max_retries=3, backoff_s=1.0, timeout_s=10)
    proposal = run(propose(mind_for(server, api, scheduler=limits, clock=clock), make_view()))
    assert proposal.action == "finish"
    first, second = clock.sleeps
    assert 0.5 <= first <= 1.0
    assert 1.0 <= second <= 2.0


def test_server_errors_beyond_the_retries_raise_provider_error(
    server: ModelServer, api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    server.script(*[Reply.error(500, message="overloaded")] * 3)
    limits = Limits(max_retries=2, backoff_s=0.1, timeout_s=10)
    with pytest.raises(ProviderError, match="3 attempt"):
        run(propose(mind_for(server, api, scheduler=limits, clock=clock), make_view()))
    assert len(server.requests) == 3


def test_a_client_error_is_not_retried(
    server: ModelServer, api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    server.script(Reply.error(400, message="bad model name"))
    limits = Limits(max_retries=3, timeout_s=10)
    with pytest.raises(ProviderError, match="400"):
        run(propose(mind_for(server, api, scheduler=limits, clock=clock), make_view()))
    assert clock.sleeps == []
    assert len(server.requests) == 1


def test_a_hanging_server_times_out(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.hang())
    limits = Limits(max_retries=0, timeout_s=0.2)
    with pytest.raises(ProviderError, match=r"no response within 0\.2 s"):
        run(propose(mind_for(server, api, scheduler=limits), make_view()))


def test_a_malformed_json_response_is_retried_then_reported(
    server: ModelServer, api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    server.script(Reply.raw(b'{"choices": [{"message": '), Reply.raw(b"<html>oops</html>"))
    limits = Limits(max_retries=1, backoff_s=0.1, timeout_s=10)
    with pytest.raises(ProviderError, match="unreadable response"):
        run(propose(mind_for(server, api, scheduler=limits, clock=clock), make_view()))
    assert len(server.requests) == 2


def test_an_unreachable_endpoint_is_a_provider_error(
    api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}" + ("/v1" if api == "openai" else "")
    mind = model_mind(
        MODELS[api],
        base_url=url,
        scheduler=Limits(max_retries=1, backoff_s=0.1, timeout_s=5),
        clock=clock,
    )
    with pytest.raises(ProviderError, match="cannot reach"):
        run(propose(mind, make_view()))
    assert len(clock.sleeps) == 1


def test_a_provider_failure_after_a_repair_keeps_the_earlier_call(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    server.script(Reply.prose("hmm"), Reply.error(400, message="context too long"))
    with pytest.raises(ProviderError, match="400") as info:
        run(propose(mind_for(server, api), make_view()))
    (call,) = info.value.calls
    assert call.attempt == 1
    assert call.error is not None


def test_cancelling_a_proposal_in_flight_cancels_the_request_and_leaves_no_task(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    arrived = threading.Event()

    def hang(_request: ServerRequest) -> Reply:
        arrived.set()
        return Reply.hang()

    server.responder = hang

    async def main() -> None:
        async with mind_for(server, api) as mind:
            task = asyncio.ensure_future(mind.propose(make_view()))
            assert await asyncio.to_thread(arrived.wait, 30)  # the request reached the server
            assert mind.scheduler.in_flight == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert mind.scheduler.in_flight == 0
            assert asyncio.all_tasks() == {asyncio.current_task()}

    run(main())


def test_a_proposal_written_as_json_text_is_accepted_in_tool_mode(
    server: ModelServer, api: str, make_view: Callable[..., View]
) -> None:
    # some servers ignore tool_choice and answer in the text: the JSON fallback reads it
    server.script(Reply.prose(json.dumps(TOOL_CALL)))
    proposal = run(propose(mind_for(server, api), make_view()))
    assert proposal.action == "tool"
    (call,) = proposal.model_calls
    assert call.error is None
