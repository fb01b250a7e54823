"""The simulated process's loop finds every kind of hang without waiting for it."""

from __future__ import annotations

import asyncio
import time

from telic.sim.loop import SimClock, drive


def test_a_result_comes_back_on_virtual_time() -> None:
    clock = SimClock()

    async def work() -> int:
        await asyncio.sleep(3600)
        return 7

    t0 = time.monotonic()
    got = drive(clock, work(), virtual_deadline=10_000, real_timeout_s=30)
    assert got.value == 7 and got.error is None and got.hang is None
    assert clock.monotonic() >= 3600
    assert time.monotonic() - t0 < 5  # an hour of virtual time is not waited for


def test_an_error_is_returned_not_raised() -> None:
    async def fail() -> None:
        raise KeyError("x")

    got = drive(SimClock(), fail(), virtual_deadline=10, real_timeout_s=30)
    assert isinstance(got.error, KeyError) and got.hang is None


def test_waiting_on_what_never_comes_is_a_deadlock() -> None:
    async def stuck() -> None:
        await asyncio.get_running_loop().create_future()

    got = drive(SimClock(), stuck(), virtual_deadline=10**9, real_timeout_s=30)
    assert got.hang == "deadlock"
    assert "stuck" not in got.where or got.where  # a place is always named


def test_sleeping_forever_runs_out_of_virtual_time() -> None:
    async def forever() -> None:
        while True:  # noqa: ASYNC110 (the hang under test)
            await asyncio.sleep(1)

    got = drive(SimClock(), forever(), virtual_deadline=500, real_timeout_s=30)
    assert got.hang == "over time"


def test_spinning_on_the_loop_trips_the_real_time_watchdog() -> None:
    async def spin() -> None:
        while True:  # noqa: ASYNC110 (the hang under test)
            await asyncio.sleep(0)

    got = drive(SimClock(), spin(), virtual_deadline=10**9, real_timeout_s=0.2)
    assert got.hang == "real time"


def test_a_task_that_swallows_its_cancellation_is_abandoned_not_waited_for() -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    async def main() -> None:
        asyncio.get_running_loop().create_task(stubborn())
        await asyncio.get_running_loop().create_future()

    t0 = time.monotonic()
    got = drive(SimClock(), main(), virtual_deadline=100, real_timeout_s=30)
    assert got.hang == "over time"
    assert time.monotonic() - t0 < 10
