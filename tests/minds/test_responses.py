"""The OpenAI Responses API adapter (``api="responses"``) against the local server: the
request's shape, a repaired reply, JSON mode, usage with cached and reasoning tokens, and a
kernel run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from minds_helpers import RecordingLog

from telic.errors import ConfigError
from telic.kernel import AgentSpec, Kernel, RunConfig
from telic.ledger import open_ledger
from telic.minds import Limits, View, model_mind
from telic.minds.responses import ResponsesMind
from telic.minds.testing import ModelServer, Reply

FINISH = {"action": "finish", "args": {"result": "ok"}, "confidence": 0.9, "reason": "done"}


def _ask(server: ModelServer, view: View, **kw: Any) -> Any:
    async def go() -> Any:
        mind = model_mind(
            "openai:gpt-4.1-mini",
            base_url=server.openai_url,
            api="responses",
            scheduler=Limits(max_retries=0),
            **kw,
        )
        assert isinstance(mind, ResponsesMind)
        async with mind:
            return await mind.propose(view)

    return asyncio.run(go())


def test_a_forced_propose_function_becomes_a_proposal(
    server: ModelServer, make_view: Callable[..., View]
) -> None:
    server.script(Reply.propose(FINISH, cached_tokens=100, reasoning_tokens=40))
    log = RecordingLog()
    proposal = _ask(server, replace(make_view(), calls=log))
    assert proposal.action == "finish"
    (request,) = server.requests
    assert request.path == "/v1/responses"
    body = request.body
    assert "You are the **planner**" in body["instructions"]
    assert "role: planner" in body["input"][0]["content"]
    assert body["tool_choice"] == {"type": "function", "name": "propose"}
    assert body["tools"][0]["name"] == "propose"
    assert body["max_output_tokens"] == 1024
    (call,) = log.called()
    assert (call.cached_input_tokens, call.reasoning_tokens) == (100, 40)
    assert call.cost_known


def test_an_unusable_reply_is_answered_with_a_function_call_output(
    server: ModelServer, make_view: Callable[..., View]
) -> None:
    server.script(Reply.call("propose", '{"action": '), Reply.propose(FINISH))
    proposal = _ask(server, make_view())
    assert proposal.action == "finish"
    assert len(proposal.model_calls) == 2
    repair = server.requests[1].body["input"]
    assert repair[-2]["type"] == "function_call"
    assert repair[-1]["type"] == "function_call_output"
    assert repair[-1]["call_id"] == repair[-2]["call_id"]
    assert "not valid JSON" in repair[-1]["output"]


def test_json_mode_uses_a_json_schema_text_format(
    server: ModelServer, make_view: Callable[..., View]
) -> None:
    server.script(Reply.prose(json.dumps(FINISH)))
    proposal = _ask(server, make_view(), structured="json")
    assert proposal.action == "finish"
    body = server.requests[0].body
    assert body["text"]["format"]["type"] == "json_schema"
    assert "tools" not in body


def test_the_responses_api_is_only_for_openai_compatible_providers() -> None:
    with pytest.raises(ConfigError, match="Responses API is OpenAI's"):
        model_mind("anthropic:claude-haiku-4-5", base_url="http://127.0.0.1:9", api="responses")


def test_a_kernel_run_on_the_responses_api_completes(server: ModelServer) -> None:
    server.script(Reply.propose(FINISH, input_tokens=100, output_tokens=10))

    async def main() -> Any:
        mind = model_mind("openai:gpt-4.1-mini", base_url=server.openai_url, api="responses")
        ledger = open_ledger("memory://")
        config = RunConfig(goal="g", agents=[AgentSpec("planner", "planner", mind)])
        try:
            result = await Kernel(ledger).run(config, max_ticks=2)
        finally:
            await mind.aclose()
        return result, [t for t in ledger.read(result.run_id) if t.kind == "model.called"]

    result, calls = asyncio.run(main())
    assert result.status == "completed"
    assert [c.data["input_tokens"] + c.data["output_tokens"] for c in calls] == [110]
