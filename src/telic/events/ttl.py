"""TTLs: checking them, and the timer task that removes lapsed subscriptions.

The timer sleeps until the earliest deadline (read from the injected clock, waited for with
the running loop's timers, which a VirtualClock drives) and is woken early when a nearer
deadline appears; it does not depend on anything being published. Renewal only moves a
subscription's deadline; the heap is corrected lazily when the old entry comes due.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Final

from telic.clock import Clock
from telic.errors import BadTTL
from telic.events.state import SubscriptionState

__all__ = ["MAX_TTL", "Expiry", "check_ttl"]

MAX_TTL: Final = 7 * 24 * 3600.0
"""The longest TTL accepted, in seconds (a week); longer ones are almost surely a unit error."""
_EPSILON: Final = 1e-6
"""Deadlines this close to now count as due (float rounding of loop timers)."""


def check_ttl(ttl: object) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise BadTTL(ttl, "it must be a number of seconds")  # type: ignore[arg-type]
    value = float(ttl)
    if math.isnan(value) or value <= 0:
        raise BadTTL(value, "it must be positive")
    if value > MAX_TTL:
        raise BadTTL(value, f"it must be at most {MAX_TTL:g} s (a week); omit it for none")
    return value


class Expiry:
    """The TTL timer of one hub: a heap of (deadline, order, subscription id) and a task."""

    def __init__(
        self,
        clock: Clock,
        subs: dict[str, SubscriptionState],
        expire: Callable[[SubscriptionState], None],
    ) -> None:
        self.clock = clock
        self.subs = subs
        """The hub's open subscriptions by id (the heap holds ids, never the subscriptions)."""
        self.expire = expire
        self.heap: list[tuple[float, int, str]] = []
        self.heap_order = itertools.count()
        self.timer: asyncio.Task[None] | None = None
        self.timer_wake: asyncio.Event | None = None
        self.timer_target = math.inf

    def stop(self) -> asyncio.Task[None] | None:
        """Hand the timer task over to be cancelled and awaited (by ``EventKernel.aclose``)."""
        timer, self.timer = self.timer, None
        return timer

    def schedule(self, state: SubscriptionState, loop: asyncio.AbstractEventLoop) -> None:
        assert state.deadline is not None
        heapq.heappush(self.heap, (state.deadline, next(self.heap_order), state.id))
        if len(self.heap) > 2 * len(self.subs) + 64:
            self.heap[:] = [
                (s.deadline, next(self.heap_order), s.id)
                for s in self.subs.values()
                if s.deadline is not None
            ]
            heapq.heapify(self.heap)
        if self.timer is None:
            self.timer_wake = asyncio.Event()
            self.timer = loop.create_task(self.run_timer(), name="telic-events-ttl")
        elif state.deadline < self.timer_target and self.timer_wake is not None:
            self.timer_wake.set()

    def reschedule(self, state: SubscriptionState, loop: asyncio.AbstractEventLoop) -> None:
        """After a renewal with a new TTL, which may be shorter."""
        if state.deadline is not None and state.deadline < self.timer_target:
            self.schedule(state, loop)

    async def run_timer(self) -> None:
        wake = self.timer_wake
        assert wake is not None
        while True:
            now = self.clock.monotonic()
            self.expire_due(now)
            wake.clear()
            if self.heap:
                self.timer_target = self.heap[0][0]
                try:
                    async with asyncio.timeout(max(0.0, self.timer_target - now)):
                        await wake.wait()
                except TimeoutError:
                    pass
            else:
                self.timer_target = math.inf
                await wake.wait()

    def expire_due(self, now: float) -> None:
        """End every subscription whose deadline has passed (a method of its own, so that
        the timer's frame keeps no reference to an expired subscription)."""
        heap = self.heap
        while heap and heap[0][0] <= now + _EPSILON:
            _, _, sub_id = heapq.heappop(heap)
            state = self.subs.get(sub_id)
            if state is None or state.deadline is None:
                continue
            if state.deadline <= now + _EPSILON:
                self.expire(state)
            else:
                heapq.heappush(heap, (state.deadline, next(self.heap_order), sub_id))
