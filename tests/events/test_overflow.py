"""Bounded queues: a stuck subscriber costs at most its queue; lag is reported once per episode."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telic.clock import VirtualClock
from telic.errors import SubscriptionClosed
from telic.events import EventKernel

from .kit import append, commit, drain, memory_ledger, system_kinds, take, virtual


def test_a_stuck_subscriber_under_100k_events_costs_at_most_its_queue() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        stuck = events.subscribe("tick.*", run="r", maxsize=256)
        reader = events.subscribe("transition.committed", run="r", maxsize=100_000)
        groups = [append(ledger, "r", 100) for _ in range(1000)]  # 100,000 transitions
        ticks = sum(1 for g in groups for t in g if t.kind == "tick.started")
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for group in groups:
                events.publish(group)
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert stuck.queued == 256
        assert stuck.dropped == ticks - 256
        # 100,000 events held would take several MB; the stuck queue is 256 events, and the
        # reader's 100,000 events share their Event objects with nobody (counted here too).
        held_by_reader = reader.queued
        assert held_by_reader == 100_000
        assert after - before < 100_000 * 120 + 2_000_000
        assert stuck.lag_episodes == 1
        assert "subscriber.lagged" not in system_kinds(ledger)  # publishing never appends
        await asyncio.sleep(0)  # the loop records it right after
        assert system_kinds(ledger).count("subscriber.lagged") == 1
        reader.close()
        got = await take(stuck, 257)
        assert got[0].type == "subscriber.lagged"
        assert got[0].data["subscription"] == stuck.id
        assert 1 <= got[0].data["dropped"] <= 100  # those of the group that began the episode
        assert [e.seq for e in got[1:]] == [
            t.seq for g in groups[-4:] for t in g if t.kind == "tick.started"
        ][-256:]
        await events.aclose()

    virtual(body)


def test_stuck_subscriber_memory_does_not_grow_with_the_number_of_events() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        stuck = events.subscribe("*", maxsize=64)
        groups = [append(ledger, "r", 100) for _ in range(300)]
        for group in groups[:50]:  # warm up: the queue is full, the lag is recorded
            events.publish(group)
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for group in groups[50:]:  # 25,000 more events
                events.publish(group)
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert stuck.queued == 64
        assert after - before < 64 * 1024, f"grew by {after - before} bytes"
        await events.aclose()

    virtual(body)


def test_one_lagged_event_per_episode() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        watcher = events.subscribe("subscriber.lagged")
        sub = events.subscribe("*", run="r", maxsize=10)
        for _ in range(50):
            commit(ledger, events, "r", 7)
        assert sub.lag_episodes == 1
        # a reader that takes a few events but never catches up stays in the same episode
        for _ in range(20):
            await take(sub, 3)
            commit(ledger, events, "r", 5)
        assert sub.lag_episodes == 1
        # drain completely: the episode ends
        while sub.queued:
            await take(sub, 1)
        commit(ledger, events, "r", 11)  # overflows again: a second episode
        assert sub.lag_episodes == 2
        got = await take(sub, 11)
        assert got[0].type == "subscriber.lagged"
        assert [e.type for e in got[1:]] == [t.kind for t in ledger.read("r")][-10:]
        lagged = [e.data for e in await take(watcher, 2)]
        assert lagged == [
            {"subscription": sub.id, "dropped": 4},
            {"subscription": sub.id, "dropped": 1},
        ]
        assert system_kinds(ledger).count("subscriber.lagged") == 2
        await events.aclose()

    virtual(body)


def test_a_lagging_subscriber_for_every_run_gets_its_lagged_event_once() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", maxsize=5)
        commit(ledger, events, "r", 20)
        got = await take(sub, 6)
        assert [e.type for e in got].count("subscriber.lagged") == 1
        assert sub.queued == 0
        await events.aclose()

    virtual(body)


def test_disconnect_closes_the_subscriber_and_spares_the_others() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        slow = events.subscribe("*", run="r", maxsize=4, overflow="disconnect")
        fine = events.subscribe("*", run="r", maxsize=100)
        commit(ledger, events, "r", 10)
        assert slow.closed
        assert "overflowed" in slow.reason
        assert slow.queued == 0
        assert events.subscription_count == 1
        with pytest.raises(SubscriptionClosed):
            await take(slow, 1)
        assert [e.seq for e in await take(fine, 10)] == list(range(1, 11))
        await asyncio.sleep(0)  # the disconnect is recorded off the publishing path
        ended = [t for t in ledger.read("telic-events") if t.kind == "subscription.ended"]
        assert [t.data["subscription"] for t in ended] == [slow.id]
        await events.aclose()

    virtual(body)


def test_a_waiting_reader_is_woken_by_the_disconnect() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", run="r", maxsize=1, overflow="disconnect")

        async def read() -> None:
            with pytest.raises(SubscriptionClosed):
                await drain(sub, pause=1.0)  # slow: the next publish overflows

        task = asyncio.create_task(read())
        await asyncio.sleep(0)
        commit(ledger, events, "r", 1)
        await asyncio.sleep(0)
        commit(ledger, events, "r", 2)
        await task
        await events.aclose()

    virtual(body)


@settings(max_examples=200, deadline=None)
@given(
    maxsize=st.integers(1, 8),
    dense=st.booleans(),
    plan=st.lists(st.tuples(st.sampled_from(["publish", "read"]), st.integers(1, 12)), max_size=40),
)
def test_what_a_lagging_reader_sees(maxsize: int, dense: bool, plan: list[tuple[str, int]]) -> None:
    """In order, nothing twice; every gap announced by a lagged event since the last drain;
    one lagged event per episode; delivered + dropped = published."""

    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        pattern = "*" if dense else "tick.*,memory.updated"  # every kind, or routed by kind
        sub = events.subscribe(pattern, run="r", maxsize=maxsize)
        published = 0
        seqs: list[int] = []
        markers = 0
        announced = False  # a lagged event arrived since the queue was last drained

        async def read(n: int) -> None:
            nonlocal markers, announced
            for event in await take(sub, n):
                if event.type == "subscriber.lagged":
                    assert event.data["subscription"] == sub.id
                    markers += 1
                    announced = True
                    continue
                if (seqs and event.seq != seqs[-1] + 1) or (not seqs and event.seq != 1):
                    assert announced, f"events before {event.seq} vanished unannounced"
                assert not seqs or event.seq > seqs[-1]
                seqs.append(event.seq)
            if sub.queued == 0:
                announced = False

        for action, n in plan:
            if action == "publish":
                commit(ledger, events, "r", n)
                published += n
            elif sub.queued:
                await read(min(n, sub.queued))
        while sub.queued:
            await read(1)
        assert markers == sub.lag_episodes == system_kinds(ledger).count("subscriber.lagged")
        assert len(seqs) + sub.dropped == published
        assert (markers == 0) == (sub.dropped == 0)
        await events.aclose()

    virtual(body)


def test_without_a_running_loop_the_lag_is_recorded_at_once() -> None:
    ledger = memory_ledger("r")
    events = EventKernel(ledger)
    sub = events.subscribe("*", run="r", maxsize=1)
    commit(ledger, events, "r", 3)
    assert system_kinds(ledger) == ["subscription.created", "subscriber.lagged"]
    assert sub.lag_episodes == 1
    assert sub.dropped == 2
