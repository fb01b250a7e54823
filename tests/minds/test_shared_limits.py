"""Limits are the provider's: one scheduler per endpoint and key however the minds are built,
and a ``Retry-After`` pause that no request of any agent enters (checked with the server's
own arrival times, on a real local server)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from minds_helpers import RecordingLog

from telic.errors import ProviderError
from telic.minds import Limits, View, model_mind
from telic.minds.factory import shared_scheduler
from telic.minds.providers import resolve_provider
from telic.minds.testing import FINISH, ModelServer, Reply


def test_six_minds_built_with_one_limit_share_it(make_view: Callable[..., View]) -> None:
    with ModelServer(latency_s=0.05) as server:

        async def main() -> list[Any]:
            minds = [
                model_mind(
                    "openai:gpt-4.1-mini",
                    base_url=server.openai_url,
                    scheduler=Limits(max_concurrent=2),
                )
                for _ in range(6)
            ]
            try:
                views = [make_view(agent=f"agent-{i}") for i in range(6)]
                return list(
                    await asyncio.gather(*(m.propose(v) for m, v in zip(minds, views, strict=True)))
                )
            finally:
                for m in minds:
                    await m.aclose()
                assert len({id(m.scheduler) for m in minds}) == 1

        proposals = asyncio.run(main())
    assert len(proposals) == 6
    assert len(server.requests) == 6
    assert server.peak_concurrent == 2


def test_the_scheduler_is_per_key_and_the_last_limits_hold() -> None:
    url = "http://127.0.0.1:9/v1"
    a = resolve_provider("openai", base_url=url, api_key="key-a")
    b = resolve_provider("openai", base_url=url, api_key="key-b")
    first = shared_scheduler(a, limits=Limits(max_concurrent=3))
    assert shared_scheduler(b) is not first
    assert shared_scheduler(a, limits=Limits(max_concurrent=5)) is first
    assert first.limits.max_concurrent == 5
    assert "key-a" not in repr(a.key)


@pytest.mark.parametrize("retries", [1, 0])
def test_no_request_leaves_inside_a_retry_after_pause(
    make_view: Callable[..., View], retries: int
) -> None:
    pause = 0.4
    with ModelServer() as server:
        server.script(Reply.error(429, retry_after=pause), FINISH, FINISH)
        log = RecordingLog()

        async def main() -> list[Any]:
            limits = Limits(max_concurrent=1, max_retries=retries)
            minds = [
                model_mind("openai:gpt-4.1-mini", base_url=server.openai_url, scheduler=limits)
                for _ in range(2)
            ]
            try:
                views = [
                    replace(make_view(agent=name), calls=log) for name in ("researcher", "planner")
                ]
                return list(
                    await asyncio.gather(
                        *(m.propose(v) for m, v in zip(minds, views, strict=True)),
                        return_exceptions=True,
                    )
                )
            finally:
                for m in minds:
                    await m.aclose()

        results = asyncio.run(main())
    limited, *later = server.requests
    assert later, "the other agent's request went out"
    for r in later:
        assert r.received_at >= limited.received_at + pause
    failures = log.failed()
    assert [f.status for f in failures] == [429]
    assert failures[0].retry_after_s == pytest.approx(pause)
    assert failures[0].agent in ("researcher", "planner")
    if retries == 0:
        assert failures[0].wait_s is None
        assert sum(isinstance(r, ProviderError) for r in results) == 1
        assert len(log.called()) == 1
    else:
        assert len(log.called()) == 2
        assert sorted(c.retries for c in log.called()) == [0, 1]
        assert failures[0].wait_s == pytest.approx(pause)
        assert not any(isinstance(r, BaseException) for r in results)
