"""Driving one simulated process on the virtual clock, with hang detection.

A hang must be found, not waited for. The loop's selector is where every hang shows:

- **deadlock**: the loop would block with no timer set and no ready callback, so nothing can
  ever wake it (the simulation does no real I/O): every task waits on something that never
  comes. Found at once, at no cost in real time.
- **over time**: virtual time passes the seed's bound (a task that keeps sleeping, retrying or
  swallowing its cancellation).
- **real time**: the watchdog: the loop keeps turning (``sleep(0)`` spins) past a real-time
  limit.

Each trips the loop's stop; what is left running is cancelled and given a bounded (virtual)
while to finish, then abandoned, so a hung seed costs milliseconds and never the next seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from telic.clock import VirtualClock

__all__ = ["Drive", "Hang", "SimClock", "drive"]

Hang = Literal["deadlock", "over time", "real time"]

CLEANUP_S = 60.0
"""Virtual seconds the tasks left behind by a hang or a crash get to finish their cancellation."""


class _WatchedSelector(selectors.DefaultSelector):
    def __init__(self, clock: SimClock) -> None:
        super().__init__()
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.real_deadline = float("inf")
        self.virtual_deadline = float("inf")
        self.tripped: Hang | None = None

    def trip(self, why: Hang) -> None:
        self.tripped = self.tripped or why
        if self.loop is not None:
            self.loop.stop()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if time.monotonic() > self.real_deadline:
            self.trip("real time")
            return []
        if timeout is None:
            self.trip("deadlock")
            return []
        if timeout > 0:
            if self.clock.monotonic() + timeout > self.virtual_deadline:
                self.trip("over time")
                return []
            self.clock.advance(timeout)
        return []


class SimClock(VirtualClock):
    """The virtual clock of one seed; each simulated process gets a new loop on it."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return self.watched_loop()[0]

    def watched_loop(self) -> tuple[asyncio.AbstractEventLoop, _WatchedSelector]:
        selector = _WatchedSelector(self)
        loop = asyncio.SelectorEventLoop(selector)
        loop.time = self.monotonic  # type: ignore[method-assign]
        selector.loop = loop
        # Tasks abandoned after a hang are destroyed pending; that is expected, not news.
        loop.set_exception_handler(lambda _loop, _context: None)
        return loop, selector


@dataclass(frozen=True, slots=True)
class Drive:
    """How one process lifetime ended."""

    value: Any = None
    error: BaseException | None = None
    hang: Hang | None = None
    where: str = ""
    """For a hang: where the process's main task was waiting (file:line in function)."""


def drive(
    clock: SimClock,
    coro: Coroutine[Any, Any, Any],
    *,
    virtual_deadline: float,
    real_timeout_s: float,
) -> Drive:
    """Run ``coro`` on a new loop of ``clock`` until it returns, raises or hangs."""
    loop, watched = clock.watched_loop()
    watched.real_deadline = time.monotonic() + real_timeout_s
    watched.virtual_deadline = virtual_deadline
    task = loop.create_task(coro)
    try:
        loop.run_until_complete(task)
        return Drive(value=task.result())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        if watched.tripped is not None and not task.done():
            return Drive(hang=watched.tripped, where=_where(task))
        return Drive(error=exc)
    finally:
        _abandon(loop, watched)


def _where(task: asyncio.Task[Any]) -> str:
    """The innermost frame of telic's own code that ``task`` is suspended in (the
    coroutine chain, followed through each ``await``)."""
    places: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            path = str(frame.f_code.co_filename).replace("\\", "/")
            if "/telic/" in path and "/telic/sim/" not in path:
                short = path[path.rindex("/telic/") + 1 :]
                places.append(f"{short}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return places[-1] if places else "no frame of telic's"


def _abandon(loop: asyncio.AbstractEventLoop, watched: _WatchedSelector) -> None:
    """Cancel what is left and let it unwind for a bounded while; then close the loop."""
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            watched.tripped = None
            watched.real_deadline = time.monotonic() + 5.0
            watched.virtual_deadline = loop.time() + CLEANUP_S
            with contextlib.suppress(RuntimeError):  # stopped by the selector: abandoned
                loop.run_until_complete(asyncio.wait(tasks, timeout=CLEANUP_S))
    finally:
        loop.close()
