"""The mutable state of one subscription, shared by its public face and the hub.

Internal to the event kernel: the hub's fan-out loop reads and writes these fields directly
(no method call per delivery), so they are plain slots.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from telic.events.event import Event
from telic.events.patterns import Routes
from telic.transition import Transition

__all__ = [
    "LOGGED_IN_FULL",
    "Closing",
    "Dense",
    "HandlerFailure",
    "Overflow",
    "SubscriptionState",
    "logged",
]

Overflow = Literal["drop_oldest", "disconnect"]
Closing = Literal["closed", "expired", "disconnected", "shutdown"]
Dense = Literal["own", "committed"]


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """A callback handler that raised or timed out on one event."""

    event: Event
    error: str
    """The exception's type and message, or ``timeout`` for a handler that ran too long."""
    timed_out: bool


@dataclass(slots=True, eq=False, weakref_slot=True)
class SubscriptionState:
    id: str
    pattern: str
    routes: Routes
    run: str | None
    agent: str | None
    ttl: float | None
    maxsize: int
    drop_oldest: bool
    monotonic: Callable[[], float]
    dense: Dense | None = None
    """Set when the pattern takes every kind, each as itself (``own``) or as
    ``transition.committed``: the hub then delivers whole batches to it."""
    queue: deque[Event] = field(default_factory=deque[Event])
    waiter: asyncio.Future[None] | None = None
    floor: int = 0
    """Live transitions with a lower sequence number were already read during catch-up."""
    catchup: int | None = None
    """The next sequence number to read from the ledger, while catching up; None when live."""
    reader: Iterator[Transition] | None = None
    pages: int = 0
    deadline: float | None = None
    lagging: bool = False
    episode_start: int = 0
    """:attr:`dropped` when the current lag episode began."""
    lag_event: Event | None = None
    dropped: int = 0
    episodes: int = 0
    closing: Closing | None = None
    reason: str = ""
    failures: deque[HandlerFailure] = field(
        default_factory=lambda: deque[HandlerFailure](maxlen=64)
    )
    failure_count: int = 0

    def renew(self) -> None:
        ttl = self.ttl
        if ttl is not None:
            self.deadline = self.monotonic() + ttl

    def wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)


LOGGED_IN_FULL: Final = 10


def logged(count: int) -> bool:
    """Whether the ``count``-th failure of one source is logged: the first
    :data:`LOGGED_IN_FULL`, then each power of two. A handler that fails on every event of
    a 200,000-event stream logs 27 lines, not 200,000; every failure is still counted."""
    return count <= LOGGED_IN_FULL or count & (count - 1) == 0
