"""Helpers shared by the minds tests."""

from __future__ import annotations

import asyncio
import time

from telic.clock import SystemClock


class SkippingClock(SystemClock):
    """Real time for I/O, but ``sleep`` returns at once and moves the clock ahead instead.

    Back-off and ``Retry-After`` waits are recorded in :attr:`sleeps`, so tests can check
    them without waiting.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds
        await asyncio.sleep(0)
