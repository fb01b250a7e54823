"""Bad input: typed errors, never a hang or unbounded memory."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

import telic.events
from telic.clock import VirtualClock
from telic.errors import (
    BadSubscription,
    EventError,
    EventKernelClosed,
    RunNotFound,
    SequenceError,
    SubscriptionClosed,
)
from telic.events import EventKernel

from .kit import commit, memory_ledger, take, virtual


def test_unknown_runs_are_run_not_found() -> None:
    events = EventKernel(memory_ledger("r"))
    with pytest.raises(RunNotFound):
        events.subscribe("*", run="nope")
    with pytest.raises(RunNotFound):
        events.subscribe("*", run="nope", from_seq=1)
    assert events.subscription_count == 0


@pytest.mark.parametrize("from_seq", [0, -1, 5, 10**9])
def test_a_start_outside_one_to_head_plus_one_is_a_sequence_error(from_seq: int) -> None:
    ledger = memory_ledger("r")
    events = EventKernel(ledger)
    commit(ledger, events, "r", 3)
    with pytest.raises(SequenceError) as info:
        events.subscribe("*", run="r", from_seq=from_seq)
    assert info.value.head == 3
    assert events.subscription_count == 0
    events.subscribe("*", run="r", from_seq=4)  # head + 1 is fine: live from the next one


@pytest.mark.parametrize(
    "kwargs",
    [
        {"from_seq": 1},  # no run
        {"run": "r", "from_seq": "1"},
        {"run": "r", "from_seq": True},
        {"maxsize": 0},
        {"maxsize": -5},
        {"maxsize": 10**9},
        {"maxsize": 2.5},
        {"overflow": "block"},
        {"agent": 7},
        {"run": 7},
    ],
)
def test_other_bad_arguments_are_bad_subscriptions(kwargs: dict[str, object]) -> None:
    events = EventKernel(memory_ledger("r"))
    with pytest.raises(BadSubscription):
        events.subscribe("*", **kwargs)  # type: ignore[arg-type]
    assert events.subscription_count == 0
    assert issubclass(BadSubscription, EventError)


def test_a_ttl_needs_a_running_loop() -> None:
    events = EventKernel(memory_ledger("r"))
    with pytest.raises(BadSubscription, match="running event loop"):
        events.subscribe("*", ttl=1.0)


def test_after_aclose_subscribing_fails_and_readers_are_told() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", run="r")
        commit(ledger, events, "r", 2)
        await events.aclose()
        with pytest.raises(SubscriptionClosed, match="closed"):
            await take(sub, 1)
        with pytest.raises(EventKernelClosed):
            events.subscribe("*")
        commit(ledger, events, "r", 2)  # publishing after close delivers to nobody, harmlessly

    virtual(body)


def test_closing_ends_iteration_and_is_recorded_once() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        async with events.subscribe("*", run="r") as sub:
            commit(ledger, events, "r", 3)
            assert [e.seq for e in await take(sub, 3)] == [1, 2, 3]
        assert sub.closed
        assert [e async for e in sub] == []  # a closed subscription just ends
        sub.close()
        ended = [t for t in ledger.read("telic-events") if t.kind == "subscription.ended"]
        assert len(ended) == 1
        assert ended[0].data == {"subscription": sub.id, "reason": "closed by its owner"}
        await events.aclose()

    virtual(body)


def test_two_tasks_reading_one_subscription_is_an_error_not_a_hang() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", run="r")
        first = asyncio.create_task(take(sub, 1))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="another task"):
            await take(sub, 1)
        commit(ledger, events, "r", 1)
        assert [e.seq for e in await first] == [1]
        await events.aclose()

    virtual(body)


def test_the_public_api_is_explicit_and_sorted() -> None:
    public = {
        name
        for name, value in vars(telic.events).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }
    assert set(telic.events.__all__) == public
    assert len(telic.events.__all__) == len(public)
