"""The per-provider scheduler, on a virtual clock: limits, fairness, priorities, retries,
timeouts and cancellation, with no real waiting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from telic.clock import VirtualClock
from telic.errors import ConfigError, ProviderError
from telic.minds import Dispatch, Limits, Retryable, Scheduler
from telic.minds.scheduler import TokenBucket, parse_retry_after


def make(limits: Limits, clock: VirtualClock) -> tuple[Scheduler, list[Dispatch]]:
    seen: list[Dispatch] = []
    return Scheduler(limits, clock=clock, observer=seen.append), seen


def work(clock: VirtualClock, seconds: float, result: Any = None) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        await clock.sleep(seconds)
        return result

    return call


def test_limits_are_checked() -> None:
    with pytest.raises(ConfigError):
        Limits(max_concurrent=0)
    with pytest.raises(ConfigError):
        Limits(requests_per_minute=0)
    with pytest.raises(ConfigError):
        Limits(timeout_s=0)
    with pytest.raises(ConfigError):
        Limits(max_retries=-1)


def test_no_more_than_max_concurrent_requests_are_in_flight() -> None:
    clock = VirtualClock()
    peak = 0

    async def main() -> float:
        sched, _ = make(Limits(max_concurrent=4), clock)

        async def call() -> None:
            nonlocal peak
            peak = max(peak, sched.in_flight)
            await clock.sleep(1.0)

        start = clock.monotonic()
        await asyncio.gather(*(sched.run(call, agent=f"a{i}") for i in range(20)))
        assert sched.in_flight == 0
        assert sched.queued == 0
        return clock.monotonic() - start

    elapsed = clock.run(main())
    assert peak == 4
    assert elapsed == pytest.approx(5.0)  # 20 requests, 4 at a time, 1 s each


def test_requests_per_minute_paces_requests_smoothly() -> None:
    clock = VirtualClock()

    async def main() -> list[Dispatch]:
        sched, seen = make(Limits(max_concurrent=100, requests_per_minute=120), clock)
        await asyncio.gather(*(sched.run(work(clock, 0.01), agent=f"a{i}") for i in range(10)))
        return seen

    seen = clock.run(main())
    starts = [d.started_at for d in seen]
    # a bucket of one second's worth (2 requests), then one every half second
    assert starts[:2] == [0.0, 0.0]
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]
    assert gaps == pytest.approx([0.5] * 8)


def test_tokens_per_minute_paces_by_request_size_and_settles_real_usage() -> None:
    clock = VirtualClock()

    async def main() -> list[Dispatch]:
        # 60,000 tokens/min = 1,000/s; the bucket holds one second's worth
        sched, seen = make(Limits(max_concurrent=100, tokens_per_minute=60_000), clock)
        first = sched.run(work(clock, 0.01, 2000), agent="big", tokens=100, used=lambda n: n)
        await first  # reserved 100 tokens but used 2,000: the bucket is in debt
        await sched.run(work(clock, 0.01), agent="next", tokens=500)
        return seen

    seen = clock.run(main())
    big, nxt = seen
    assert big.started_at == 0.0
    # at 0.01 s the level is 1000 - 100 + 10 (refill) + 100 - 2000 (settled) = -990;
    # 500 more tokens take (990 + 500) / 1000 = 1.49 s
    assert nxt.started_at == pytest.approx(0.01 + 1.49, abs=1e-6)


def test_token_bucket_refills_at_its_rate_up_to_capacity() -> None:
    clock = VirtualClock()
    bucket = TokenBucket(rate=10, capacity=5, clock=clock)
    assert bucket.wait_s(5) == 0
    bucket.take(5)
    assert bucket.wait_s(1) == pytest.approx(0.1)
    clock.advance(10)
    assert bucket.level == 5  # never above capacity
    assert bucket.wait_s(50) == 0  # a request larger than the bucket waits for a full one


def test_round_robin_between_agents_of_the_same_priority() -> None:
    clock = VirtualClock()

    async def main() -> list[str]:
        sched, seen = make(Limits(max_concurrent=1), clock)
        blocker = sched.run(work(clock, 1), agent="blocker")
        chatty = [sched.run(work(clock, 1), agent="chatty") for _ in range(4)]
        quiet = [sched.run(work(clock, 1), agent=name) for name in ("b", "c")]
        await asyncio.gather(blocker, *chatty, *quiet)
        return [d.agent for d in seen]

    order = clock.run(main())
    # chatty queued four requests before b and c did, yet they wait for only one of them
    assert order == ["blocker", "chatty", "b", "c", "chatty", "chatty", "chatty"]


def test_higher_priority_is_served_first() -> None:
    clock = VirtualClock()

    async def main() -> list[str]:
        sched, seen = make(Limits(max_concurrent=1), clock)
        low = [sched.run(work(clock, 1), agent=f"low{i}", priority=0) for i in range(3)]
        tasks = [asyncio.ensure_future(c) for c in low]
        await asyncio.sleep(0)  # the low-priority requests are queued (one is running)
        high = [sched.run(work(clock, 1), agent=f"high{i}", priority=5) for i in range(2)]
        await asyncio.gather(*tasks, *high)
        return [d.agent for d in seen]

    order = clock.run(main())
    assert order == ["low0", "high0", "high1", "low1", "low2"]


def test_retryable_failures_are_retried_honouring_retry_after() -> None:
    clock = VirtualClock()
    attempts: list[float] = []

    async def flaky() -> str:
        attempts.append(clock.monotonic())
        if len(attempts) == 1:
            raise Retryable("429", retry_after=7.0, status=429)
        if len(attempts) == 2:
            raise Retryable("503", status=503)
        return "ok"

    async def main() -> str:
        sched, _ = make(Limits(max_retries=3, backoff_s=2.0), clock)
        result = await sched.run(flaky, agent="a")
        assert sched.retries == 2
        return result

    assert clock.run(main()) == "ok"
    assert attempts[1] - attempts[0] == pytest.approx(7.0)  # as the server asked
    assert 2.0 <= attempts[2] - attempts[1] <= 4.0  # second retry: 2 s doubled, jittered


def test_retry_after_pauses_the_whole_provider() -> None:
    clock = VirtualClock()
    limited = True

    async def first() -> None:
        nonlocal limited
        if limited:
            limited = False
            raise Retryable("429", retry_after=5.0, status=429)

    async def main() -> list[Dispatch]:
        sched, seen = make(Limits(max_concurrent=1, max_retries=1), clock)
        a = asyncio.ensure_future(sched.run(first, agent="a"))
        await asyncio.sleep(0)
        await clock.sleep(1.0)  # agent b comes along while the provider is paused
        await sched.run(work(clock, 0.1), agent="b")
        await a
        return seen

    seen = clock.run(main())
    b = next(d for d in seen if d.agent == "b")
    assert b.started_at >= 5.0


def test_retries_are_bounded() -> None:
    clock = VirtualClock()
    calls = 0

    async def always_500() -> None:
        nonlocal calls
        calls += 1
        raise Retryable("HTTP 500", status=500)

    async def main() -> None:
        sched, _ = make(Limits(max_retries=2, backoff_s=0.1), clock)
        await sched.run(always_500)

    with pytest.raises(ProviderError, match="after 3 attempt"):
        clock.run(main())
    assert calls == 3


def test_a_request_over_its_timeout_is_cancelled_and_retried() -> None:
    clock = VirtualClock()
    cancelled = 0

    async def slow() -> None:
        nonlocal cancelled
        try:
            await clock.sleep(100)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    async def main() -> None:
        sched, _ = make(Limits(timeout_s=2, max_retries=1, backoff_s=0.1), clock)
        await sched.run(slow)

    with pytest.raises(ProviderError, match="no response within 2 s"):
        clock.run(main())
    assert cancelled == 2


def test_other_errors_pass_through_and_free_the_slot() -> None:
    clock = VirtualClock()

    async def broken() -> None:
        raise KeyError("bug")

    async def main() -> Scheduler:
        sched, _ = make(Limits(max_concurrent=1, tokens_per_minute=600), clock)
        with pytest.raises(KeyError):
            await sched.run(broken, tokens=5)
        assert await sched.run(work(clock, 0, "still works")) == "still works"
        return sched

    sched = clock.run(main())
    assert sched.in_flight == 0
    assert sched.retries == 0


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    clock = VirtualClock()

    async def main() -> list[str]:
        sched, seen = make(Limits(max_concurrent=1), clock)
        running = asyncio.ensure_future(sched.run(work(clock, 1), agent="a"))
        waiting = asyncio.ensure_future(sched.run(work(clock, 1), agent="b"))
        after = asyncio.ensure_future(sched.run(work(clock, 1), agent="c"))
        await asyncio.sleep(0)
        assert sched.queued == 2
        waiting.cancel()
        await asyncio.gather(running, after)
        assert waiting.cancelled()
        assert sched.queued == 0
        return [d.agent for d in seen]

    assert clock.run(main()) == ["a", "c"]


def test_cancelling_the_caller_cancels_its_request() -> None:
    clock = VirtualClock()
    states: list[str] = []

    async def call() -> None:
        try:
            await clock.sleep(10)
        except asyncio.CancelledError:
            states.append("cancelled")
            raise

    async def main() -> Scheduler:
        sched, _ = make(Limits(max_concurrent=1), clock)
        task = asyncio.ensure_future(sched.run(call))
        await clock.sleep(1)
        assert sched.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert states == ["cancelled"]  # the request ended before the caller did
        return sched

    sched = clock.run(main())
    assert sched.in_flight == 0


def test_aclose_fails_waiters_cancels_requests_and_leaves_no_task() -> None:
    clock = VirtualClock()

    async def main() -> None:
        sched, _ = make(Limits(max_concurrent=1), clock)
        tasks = [asyncio.ensure_future(sched.run(work(clock, 10), agent=f"a{i}")) for i in range(3)]
        await clock.sleep(1)
        await sched.aclose()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, ProviderError) for r in results), results
        assert all("closed" in str(r) for r in results)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        with pytest.raises(ProviderError, match="closed"):
            await sched.run(work(clock, 1))

    clock.run(main())


def test_retry_after_headers_are_read_in_every_form() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert (
        parse_retry_after({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, now_s=1792567670) == 10
    )
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
