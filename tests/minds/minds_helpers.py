"""Helpers shared by the minds tests."""

from __future__ import annotations

import asyncio
import time

from telic.clock import SystemClock
from telic.kinds import ModelCalled, ModelFailed


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


class RecordingLog:
    """A :class:`telic.minds.CallLog` that keeps what a mind writes, with an optional token
    budget shared by every view it is given to."""

    def __init__(self, tokens: int | None = None) -> None:
        self.records: list[ModelCalled | ModelFailed] = []
        self.left = tokens
        self.held = 0

    def record(self, payload: ModelCalled | ModelFailed) -> None:
        self.records.append(payload)
        if self.left is not None and isinstance(payload, ModelCalled):
            self.left -= payload.input_tokens + payload.output_tokens

    def reserve(self, tokens: int) -> int:
        if self.left is None:
            return tokens
        granted = max(0, min(tokens, self.left - self.held))
        self.held += granted
        return granted

    def release(self, tokens: int) -> None:
        if self.left is not None:
            self.held -= tokens

    def failed(self) -> list[ModelFailed]:
        return [r for r in self.records if isinstance(r, ModelFailed)]

    def called(self) -> list[ModelCalled]:
        return [r for r in self.records if isinstance(r, ModelCalled)]
