"""TTL subscriptions on the injected clock: renewed by use or explicitly, removed promptly."""

from __future__ import annotations

import asyncio
import gc

import pytest

from telic.clock import VirtualClock
from telic.errors import BadTTL, SubscriptionClosed
from telic.events import MAX_TTL, EventKernel
from telic.events.state import SubscriptionState

from .kit import commit, drain, memory_ledger, system_kinds, take, virtual


def test_an_unrenewed_subscription_expires_without_any_publishing() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", run="r", ttl=5.0)
        assert events.subscription_count == 1
        await asyncio.sleep(4.9)
        assert not sub.closed
        await asyncio.sleep(0.2)
        # nothing was published: the timer task alone removed it, on time
        assert sub.closed
        assert "TTL of 5 s" in sub.reason
        assert events.subscription_count == 0
        assert system_kinds(ledger) == ["subscription.created", "subscription.expired"]
        expired = ledger.get("telic-events", 2)
        assert expired.data == {"subscription": sub.id, "pattern": "*", "ttl_s": 5.0}
        assert expired.ts == clock.now_us() - 100_000  # recorded at t = 5.0 s, read at 5.1 s
        with pytest.raises(SubscriptionClosed):
            await sub.__anext__()
        await events.aclose()

    virtual(body)


def test_delivered_events_and_renew_push_the_deadline_out() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", run="r", ttl=2.0)
        for _ in range(5):  # 5 x 1.5 s > 2 s, but every event taken renews
            await asyncio.sleep(1.5)
            commit(ledger, events, "r", 1)
            await take(sub, 1)
        for _ in range(3):
            await asyncio.sleep(1.5)
            sub.renew()
        assert not sub.closed
        sub.renew(0.5)  # a shorter TTL takes effect at once
        await asyncio.sleep(0.6)
        assert sub.closed
        expired = ledger.get("telic-events", ledger.run("telic-events").head)
        assert expired.kind == "subscription.expired"
        assert expired.ts == clock.now_us() - 100_000  # at 12.5 s: renewed at 12.0 s for 0.5 s
        with pytest.raises(SubscriptionClosed):
            sub.renew()
        await events.aclose()

    virtual(body)


def test_events_queued_but_not_taken_do_not_renew() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", run="r", ttl=1.0)
        for _ in range(10):
            commit(ledger, events, "r", 1)
            await asyncio.sleep(0.25)
        assert sub.closed
        assert sub.queued == 0  # its queue was freed
        await events.aclose()

    virtual(body)


def test_a_waiting_reader_gets_subscription_closed_on_expiry() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", run="r", ttl=3.0)
        with pytest.raises(SubscriptionClosed, match="TTL"):
            await drain(sub)
        assert clock.monotonic() == 3.0
        await events.aclose()

    virtual(body)


def test_many_subscriptions_expire_in_deadline_order_and_memory_is_freed() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        subs = [events.subscribe("*", ttl=float(10 - i)) for i in range(10)]
        ids = {s.id for s in subs}
        commit(ledger, events, "r", 100)  # each holds 100 queued events
        late = events.subscribe("tick.*", ttl=0.5)  # added after: the timer must wake earlier
        await asyncio.sleep(0.6)
        assert late.closed
        assert not any(s.closed for s in subs)
        await asyncio.sleep(10)
        assert all(s.closed for s in subs)
        assert events.subscription_count == 0
        expired = [
            t.data["ttl_s"] for t in ledger.read("telic-events") if t.kind.endswith("expired")
        ]
        assert expired == [0.5, *[float(i) for i in range(1, 11)]]
        del subs, late
        gc.collect()
        held = [o for o in gc.get_objects() if isinstance(o, SubscriptionState) and o.id in ids]
        assert held == [], "the event kernel still holds an expired subscription"
        await events.aclose()

    virtual(body)


@pytest.mark.parametrize("ttl", [0, -1, -0.001, float("nan"), float("inf"), MAX_TTL * 2, "5", True])
def test_bad_ttls_are_refused(ttl: object) -> None:
    async def body(clock: VirtualClock) -> None:
        events = EventKernel(memory_ledger("r"), clock=clock)
        with pytest.raises(BadTTL):
            events.subscribe("*", ttl=ttl)  # type: ignore[arg-type]
        assert events.subscription_count == 0
        await events.aclose()

    virtual(body)


def test_a_subscription_can_expire_while_catching_up() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        commit(ledger, events, "r", 1000)  # several pages
        sub = events.subscribe("*", run="r", from_seq=1, ttl=1.0)
        assert [e.seq for e in await take(sub, 3)] == [1, 2, 3]
        assert not sub.live  # still reading the ledger
        await asyncio.sleep(1.5)
        assert sub.closed
        assert sub.queued == 0
        commit(ledger, events, "r", 1)  # it never went live: nothing is delivered to it
        assert sub.queued == 0
        with pytest.raises(SubscriptionClosed):
            await take(sub, 1)
        await events.aclose()

    virtual(body)


def test_renewing_without_a_ttl() -> None:
    async def body(clock: VirtualClock) -> None:
        events = EventKernel(memory_ledger("r"), clock=clock)
        sub = events.subscribe("*")
        sub.renew()  # nothing to renew: harmless
        with pytest.raises(BadTTL):
            sub.renew(5.0)
        with pytest.raises(BadTTL):
            events.subscribe("*", ttl=1.0).renew(-1.0)
        await events.aclose()

    virtual(body)
