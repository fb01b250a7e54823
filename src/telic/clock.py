"""Injected time: the system clock, and a virtual clock for deterministic runs and tests.

The kernel never calls ``time.time()`` or ``asyncio.sleep`` on its own: it asks a
:class:`Clock`. :class:`SystemClock` is real time. :class:`VirtualClock` runs an asyncio event
loop whose time jumps ahead whenever every task is waiting on a timer, so sleeps, timeouts and
TTLs take no real time and a run is reproducible to the byte (the idea of trio's
``MockClock(autojump_threshold=0)``, done for asyncio by wrapping the loop's selector).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["Clock", "ContinuedClock", "SystemClock", "VirtualClock"]

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """What telic needs from time."""

    def now_us(self) -> int:
        """Wall-clock time, microseconds since the Unix epoch (for timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals, timeouts, TTLs)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on an event loop driven by this clock."""
        ...


class SystemClock:
    """Real time."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(coro)


class ContinuedClock(SystemClock):
    """Real time that goes on from a recorded instant: :meth:`now_us` starts at ``from_us``
    and moves with the system's monotonic clock.

    Resuming a run recorded on another timeline (``telic demo --instant`` runs on a virtual
    clock; a fork resumed days after its parent's boot) with this clock continues the run's
    own timeline, so its wall-time budget counts the time it has run, not the time between.
    """

    def __init__(self, from_us: int) -> None:
        self._from_us = from_us
        self._t0 = time.monotonic()

    def now_us(self) -> int:
        return self._from_us + round((time.monotonic() - self._t0) * 1_000_000)


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking for ``timeout``, advances virtual time."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout is None or timeout <= 0:
            if not events and timeout is None:
                return super().select(None)  # nothing scheduled: only real I/O can wake us
            return events
        self._clock.advance(timeout)
        return []


class VirtualClock:
    """Deterministic time: starts at ``start_us`` and moves only when the loop would wait.

    Use :meth:`run` (or :meth:`new_event_loop`) so that ``asyncio.sleep``, ``wait_for`` and
    every timer of the loop follow this clock.
    """

    def __init__(self, start_us: int = 1_767_225_600_000_000) -> None:  # 2026-01-01T00:00Z
        self._start_us = start_us
        self._elapsed = 0.0

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go back")
        self._elapsed += seconds

    def now_us(self) -> int:
        return self._start_us + round(self._elapsed * 1_000_000)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.SelectorEventLoop(_JumpingSelector(self))
        loop.time = self.monotonic  # type: ignore[method-assign]
        return loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=self.new_event_loop) as runner:
            return runner.run(coro)
