"""Helpers for the event kernel's tests: a ledger, committing and publishing, watchdogs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from telic.clock import VirtualClock
from telic.events import Event, EventKernel, Subscription
from telic.kinds import MemoryUpdated, Payload, TickStarted
from telic.ledger import BaseLedger, open_ledger
from telic.transition import Transition, draft

T = TypeVar("T")

STALL = 3600.0
"""Virtual seconds a watchdog allows. Under a VirtualClock a stall (every task waiting)
makes time jump at once, so this fails a stalled test immediately and never waits."""


def memory_ledger(*runs: str) -> BaseLedger:
    ledger = open_ledger("memory://")
    for run in runs:
        ledger.create_run(run)
    return ledger


def payload_for(i: int, agent: str | None) -> Payload:
    if i % 3 == 2:
        return MemoryUpdated(agent=agent or "kernel", key=f"k{i}", value=i)
    return TickStarted(tick=i)


def append(ledger: BaseLedger, run: str, n: int, *, agent: str | None = None) -> list[Transition]:
    head = ledger.run(run).head
    return ledger.append(
        run,
        [
            draft(payload_for(head + i, agent), ts=1_000 + head + i, tick=head + i, agent=agent)
            for i in range(1, n + 1)
        ],
    )


def commit(
    ledger: BaseLedger, events: EventKernel, run: str, n: int, *, agent: str | None = None
) -> list[Transition]:
    """Append ``n`` transitions to ``run`` and publish them, as the kernel does."""
    out = append(ledger, run, n, agent=agent)
    events.publish(out)
    return out


def virtual(fn: Callable[[VirtualClock], Coroutine[Any, Any, T]]) -> T:
    """Run ``fn(clock)`` on a loop driven by a fresh VirtualClock, under a watchdog."""
    clock = VirtualClock()

    async def guarded() -> T:
        return await watchdog(fn(clock))

    return clock.run(guarded())


async def watchdog(aw: Awaitable[T], seconds: float = STALL) -> T:
    """Fail the test if ``aw`` stalls (see :data:`STALL`)."""
    try:
        async with asyncio.timeout(seconds):
            return await aw
    except TimeoutError:
        pytest.fail(f"stalled: nothing progressed for {seconds:g} virtual seconds")


async def take(sub: Subscription, n: int) -> list[Event]:
    out: list[Event] = []
    async for event in sub:
        out.append(event)
        if len(out) == n:
            break
    return out


def system_kinds(ledger: BaseLedger) -> list[str]:
    return [t.kind for t in ledger.read("telic-events")]


async def drain(sub: Subscription, *, pause: float = 0.0) -> list[Event]:
    """Read ``sub`` until it ends (sleeping ``pause`` after each event); what it delivered."""
    out: list[Event] = []
    async for event in sub:
        out.append(event)
        if pause:
            await asyncio.sleep(pause)
    return out


class Tally(list[T]):
    """A list whose growth can be awaited (instead of polling with sleeps)."""

    def __init__(self) -> None:
        super().__init__()
        self._grew = asyncio.Event()

    def append(self, item: T) -> None:
        super().append(item)
        self._grew.set()

    async def reach(self, n: int) -> None:
        while len(self) < n:
            self._grew.clear()
            await self._grew.wait()  # a stall here is caught by the watchdog
