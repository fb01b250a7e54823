"""A kernel run whose agents are model minds, against the local server, with each adapter:
every call is recorded, its tokens and cost reach the budget, and a model that keeps
answering with prose is a recorded rejection, not a crash."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from telic.kernel import AgentSpec, Budget, Kernel, RunConfig
from telic.ledger import open_ledger
from telic.minds import Limits, model_mind
from telic.minds.testing import ModelServer, Reply, ServerRequest

MODELS = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-haiku-4-5"}


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_run_of_model_minds_completes_and_records_every_call(api: str) -> None:
    counter = itertools.count()

    def responder(request: ServerRequest) -> Reply:
        n = next(counter)
        if n == 0:
            return Reply.prose("Let me think about Ticino first.")  # repaired next time
        return Reply.propose(
            {
                "action": "finish",
                "args": {"result": f"done {n}"},
                "confidence": 0.9,
                "reason": "ok",
            },
            input_tokens=1000,
            output_tokens=100,
        )

    with ModelServer(responder=responder) as server:
        url = server.openai_url if api == "openai" else server.anthropic_url

        async def main() -> tuple[Any, list[Any]]:
            minds = [
                model_mind(MODELS[api], base_url=url, scheduler=Limits(max_retries=0))
                for _ in range(2)
            ]
            ledger = open_ledger("memory://")
            config = RunConfig(
                goal="Plan 3-day Basel to Ticino trip under CHF 600",
                agents=[
                    AgentSpec("planner", "planner", minds[0]),
                    AgentSpec("verifier", "verifier", minds[1]),
                ],
                budget=Budget(tokens=1_000_000, cost=10.0),
            )
            result = await Kernel(ledger).run(config, max_ticks=5)
            for m in minds:
                await m.aclose()
            return result, list(ledger.read(result.run_id))

        result, transitions = asyncio.run(main())

    assert result.status == "completed"
    calls = [t for t in transitions if t.kind == "model.called"]
    assert len(calls) == 3  # one repaired reply, then one answer per agent
    assert [c.data["error"] is not None for c in calls].count(True) == 1
    assert len(server.requests) == 3
    spent = result.state.spent
    assert spent.tokens == sum(c.data["input_tokens"] + c.data["output_tokens"] for c in calls)
    assert spent.cost == pytest.approx(sum(c.data["cost"] for c in calls))
    assert spent.cost > 0
    # each call is recorded before the proposal it produced
    kinds = [t.kind for t in transitions]
    first_call = kinds.index("model.called")
    assert "proposal.made" in kinds[first_call:]


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_model_that_only_writes_prose_is_rejected_and_the_run_goes_on(api: str) -> None:
    with ModelServer(responder=lambda _r: Reply.prose("I would rather chat.")) as server:
        url = server.openai_url if api == "openai" else server.anthropic_url

        async def main() -> tuple[Any, list[Any]]:
            mind = model_mind(MODELS[api], base_url=url, max_repairs=1)
            ledger = open_ledger("memory://")
            config = RunConfig(
                goal="Plan a trip",
                agents=[AgentSpec("planner", "planner", mind)],
                budget=Budget(ticks=2),
            )
            result = await Kernel(ledger).run(config, max_ticks=3)
            await mind.aclose()
            return result, list(ledger.read(result.run_id))

        result, transitions = asyncio.run(main())

    kinds = [t.kind for t in transitions]
    rejected = [t for t in transitions if t.kind == "proposal.rejected"]
    assert rejected
    assert all("not a valid proposal" in t.data["reason"] for t in rejected)
    assert kinds.count("model.called") == 2 * len(rejected)  # each attempt is on record
    assert "agent.failed" not in kinds
    assert result.status == "stopped"  # by its tick budget: it ended cleanly
    assert result.reason is not None
    assert "budget" in result.reason


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_token_budget_is_overrun_by_at_most_one_prompt(api: str) -> None:
    counter = itertools.count()

    def responder(request: ServerRequest) -> Reply:
        n = next(counter)
        return Reply.propose(  # a wordy model: it would write 900 tokens if it could
            {"action": "remember", "args": {"key": f"k{n}", "value": n}, "confidence": 0.9},
            output_tokens=900,
        )

    limit = 9_500
    with ModelServer(responder=responder) as server:
        url = server.openai_url if api == "openai" else server.anthropic_url

        async def main() -> tuple[Any, list[Any]]:
            minds = [model_mind(MODELS[api], base_url=url, max_tokens=1024) for _ in range(2)]
            ledger = open_ledger("memory://")
            config = RunConfig(
                goal="Plan a trip",
                agents=[
                    AgentSpec("planner", "planner", minds[0]),
                    AgentSpec("b", "budgeter", minds[1]),
                ],
                budget=Budget(tokens=limit, ticks=20),
            )
            result = await Kernel(ledger).run(config, max_ticks=20)
            for m in minds:
                await m.aclose()
            return result, list(ledger.read(result.run_id))

        result, transitions = asyncio.run(main())

    calls = [t.data for t in transitions if t.kind == "model.called"]
    spent = result.state.spent.tokens
    assert spent == sum(c["input_tokens"] + c["output_tokens"] for c in calls)
    assert limit - 1_000 < spent <= limit + max(c["input_tokens"] for c in calls)
    assert any(c["output_tokens"] < 900 for c in calls)  # a reply was cut to what was left
    refused = [t.data for t in transitions if t.kind == "proposal.rejected"]
    assert all(r["check"] == "budget" for r in refused)
    assert result.status == "stopped"


def test_every_failed_try_is_on_the_ledger() -> None:
    with ModelServer() as server:
        server.script(
            Reply.error(500),
            Reply.error(429, retry_after=0.01),
            Reply.error(503),
        )

        async def main() -> list[Any]:
            mind = model_mind(
                MODELS["openai"],
                base_url=server.openai_url,
                scheduler=Limits(backoff_s=0.01, max_retries=4),
            )
            ledger = open_ledger("memory://")
            config = RunConfig(goal="g", agents=[AgentSpec("planner", "planner", mind)])
            result = await Kernel(ledger).run(config, max_ticks=3)
            await mind.aclose()
            return list(ledger.read(result.run_id))

        transitions = asyncio.run(main())
    failed = [t.data for t in transitions if t.kind == "model.failed"]
    called = [t.data for t in transitions if t.kind == "model.called"]
    assert len(server.requests) == len(failed) + len(called) == 4
    assert [f["status"] for f in failed] == [500, 429, 503]
    assert [f["attempt"] for f in failed] == [1, 2, 3]
    assert failed[1]["retry_after_s"] == pytest.approx(0.01)
    assert all(f["wait_s"] is not None and f["latency_ms"] >= 0 for f in failed)
    assert called[0]["retries"] == 3
    assert len({f["request_digest"] for f in failed} | {called[0]["request_digest"]}) == 1
