"""A mind whose requests are sent from elsewhere (``ModelMind.remote``, what a Ray cluster
host sets for an agent with resources): the scheduler, retries, ``Retry-After``, budgets and
the write-ahead records stay with the mind; only the HTTP request leaves.

The remote here is in-process but sends the way a Ray task does (a client of its own, made
from the picklable :class:`Endpoint` after a pickle round trip), against the local server.
The Ray side itself is tested on a real cluster (tests/cluster).
"""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from minds_helpers import RecordingLog, SkippingClock

from telic.errors import ProviderError
from telic.kinds import ModelCalled, ModelFailed
from telic.minds import Limits, ModelMind, Retryable, View, model_mind
from telic.minds.endpoint import Endpoint, Sent
from telic.minds.testing import ModelServer, Reply
from telic.transition import encode_payload

FINISH = {"action": "finish", "args": {"result": "ok"}, "confidence": 0.9, "reason": "done"}
MODELS = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-sonnet-4-6"}


class FarAway:
    """Sends each try as a worker would: from a pickled endpoint, with a client of its own,
    reporting its node; ``lose`` tries are lost before they are sent (a node that died)."""

    def __init__(self, node: str, *, lose: int = 0) -> None:
        self.node = node
        self.lose = lose
        self.sent = 0

    async def __call__(self, endpoint: Endpoint, request: dict[str, Any]) -> Sent:
        there: Endpoint = pickle.loads(pickle.dumps(endpoint))
        if self.lose:
            self.lose -= 1
            raise Retryable("the model request's Ray task was lost (NodeDiedError)")
        self.sent += 1
        try:
            return Sent(await there.send_once(pickle.loads(pickle.dumps(request))), self.node)
        except Retryable as exc:
            exc.node = self.node
            raise pickle.loads(pickle.dumps(exc)) from None


@pytest.fixture(params=["openai", "anthropic"])
def api(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def _mind(server: ModelServer, api: str, clock: SkippingClock, **limits: Any) -> ModelMind:
    url = server.openai_url if api == "openai" else server.anthropic_url
    return model_mind(
        MODELS[api], base_url=url, scheduler=Limits(timeout_s=10, **limits), clock=clock
    )


def _ask(mind: ModelMind, view: View) -> None:
    async def go() -> None:
        try:
            await mind.propose(view)
        finally:
            await mind.aclose()

    asyncio.run(go())


def test_a_remote_try_is_scheduled_retried_and_recorded_here_with_its_node(
    server: ModelServer, api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    server.script(Reply.error(429, retry_after=7), Reply.propose(FINISH))
    mind = _mind(server, api, clock, max_retries=3, backoff_s=0.5)
    far = FarAway("node-gpu", lose=1)
    mind.remote = far
    log = RecordingLog(tokens=50_000)
    _ask(mind, dataclasses.replace(make_view(), calls=log))
    lost, limited = log.failed()
    assert (lost.node, lost.status, "NodeDiedError" in lost.error) == (None, None, True)
    assert (limited.node, limited.status, limited.retry_after_s) == ("node-gpu", 429, 7.0)
    (called,) = log.called()
    assert called.node == "node-gpu" and called.retries == 2
    assert 7.0 in clock.sleeps  # Retry-After honoured by the mind's own scheduler
    assert far.sent == 2 and len(server.requests) == 2  # the lost try never reached it
    assert log.held == 0  # the budget hold was given back


def test_a_remote_error_that_may_not_be_retried_is_the_local_one(
    server: ModelServer, api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    server.script(Reply.error(401, message="bad key"))
    mind = _mind(server, api, clock, max_retries=3)
    mind.remote = FarAway("node-a")
    with pytest.raises(ProviderError, match="HTTP 401"):
        _ask(mind, make_view())
    assert len(server.requests) == 1


def test_retries_used_up_remotely_end_as_a_provider_error(
    server: ModelServer, api: str, make_view: Callable[..., View], clock: SkippingClock
) -> None:
    mind = _mind(server, api, clock, max_retries=1)
    mind.remote = FarAway("node-a", lose=5)
    log = RecordingLog()
    with pytest.raises(ProviderError, match="after 2 attempt"):
        _ask(mind, dataclasses.replace(make_view(), calls=log))
    assert [f.attempt for f in log.failed()] == [1, 2]
    assert not server.requests


def test_a_call_made_here_is_recorded_as_before_without_a_node() -> None:
    here = ModelCalled(agent="a", model="m", request_digest="d", response={})
    there = here.model_copy(update={"node": "n1"})
    assert b"node" not in encode_payload(here)  # the record format of local calls is unchanged
    assert b'"node":"n1"' in encode_payload(there)
    failed = ModelFailed(agent="a", model="m", request_digest="d", attempt=1, error="e")
    assert b"node" not in encode_payload(failed)


def test_a_retryable_keeps_its_details_across_a_pickle() -> None:
    back = pickle.loads(pickle.dumps(Retryable("slow", retry_after=2.5, status=429, node="n")))
    assert (back.reason, back.retry_after, back.status, back.node) == ("slow", 2.5, 429, "n")


def test_an_endpoint_never_shows_its_key(server: ModelServer, clock: SkippingClock) -> None:
    mind = model_mind(
        "openai:gpt-4.1-mini", base_url=server.openai_url, api_key="sk-secret", clock=clock
    )
    assert "sk-secret" not in repr(mind.endpoint)
    asyncio.run(mind.aclose())
