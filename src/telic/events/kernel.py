"""The event kernel: publish committed transitions, subscribe to them, follow runs."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Literal

from telic.clock import Clock, SystemClock
from telic.errors import BadSubscription, EventKernelClosed
from telic.events.handlers import Handler, dispatch
from telic.events.hub import Hub
from telic.events.processors import EventProcessor
from telic.events.subscription import Subscription
from telic.ledger.base import Ledger
from telic.transition import Transition

__all__ = ["EventKernel"]


class EventKernel:
    """Publishes the ledger's committed transitions as events to subscriptions.

    The kernel appends to ``ledger`` and then calls :meth:`publish` (synchronously; called
    from a worker thread, it is handed to the loop in order). Subscriptions read through :meth:`subscribe` (an async iterator)
    or :meth:`on` (a callback). The event kernel records its own transitions (subscriptions
    made, ended, expired, lagging) in the ledger's ``telic-events`` run. See docs/events.md.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Clock | None = None,
        processors: Iterable[EventProcessor] = (),
    ) -> None:
        self._hub = Hub(ledger, clock if clock is not None else SystemClock(), processors)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def ledger(self) -> Ledger:
        return self._hub.ledger

    @property
    def clock(self) -> Clock:
        return self._hub.clock

    @property
    def closed(self) -> bool:
        return self._hub.closed

    @property
    def subscription_count(self) -> int:
        """Open subscriptions (those the event kernel holds memory for)."""
        return len(self._hub.subs)

    def publish(self, transitions: Sequence[Transition]) -> None:
        """Deliver committed ``transitions`` to every matching subscription and processor.

        Synchronous and cheap: it never awaits, never waits on a subscriber (each has a
        bounded queue) and runs no subscriber code. Transitions must already be in the
        ledger. A kind outside the catalogue raises :class:`~telic.errors.UnknownEventType`
        before anything is delivered. Re-entrant calls are queued and delivered in order;
        calls from another thread than the subscriptions' loop are handed to that loop.
        """
        self._hub.publish(transitions, None)

    def subscribe(
        self,
        pattern: str = "*",
        *,
        run: str | None = None,
        agent: str | None = None,
        from_seq: int | None = None,
        ttl: float | None = None,
        maxsize: int = 1024,
        overflow: Literal["drop_oldest", "disconnect"] = "drop_oldest",
    ) -> Subscription:
        """Subscribe to event types matching ``pattern``; see docs/events.md.

        ``from_seq`` (with ``run``) reads the run's ledger from that sequence number first,
        then continues live with no gap and no duplicate. ``ttl`` (seconds) removes the
        subscription when it goes that long without delivering an event or a
        :meth:`Subscription.renew`.
        """
        state = self._hub.subscribe(
            pattern,
            run=run,
            agent=agent,
            from_seq=from_seq,
            ttl=ttl,
            maxsize=maxsize,
            overflow=overflow,
        )
        return Subscription(state, self._hub)

    def on(
        self,
        pattern: str,
        handler: Handler,
        *,
        run: str | None = None,
        agent: str | None = None,
        from_seq: int | None = None,
        ttl: float | None = None,
        maxsize: int = 1024,
        overflow: Literal["drop_oldest", "disconnect"] = "drop_oldest",
        timeout: float = 1.0,
    ) -> Subscription:
        """Call ``handler(event)`` for each matching event, in a task this kernel owns.

        Events are handled one at a time, in order. A handler that raises is logged and
        counted (:attr:`Subscription.failures`); an async one that runs past ``timeout``
        seconds is cancelled. Close the returned subscription to stop; :meth:`aclose` stops
        them all.
        """
        limit = _check_timeout(timeout)
        if not callable(handler):
            raise BadSubscription(f"handler must be callable, not {handler!r}")
        if self._hub.closed:
            raise EventKernelClosed()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise BadSubscription("on() needs a running event loop") from None
        sub = self.subscribe(
            pattern,
            run=run,
            agent=agent,
            from_seq=from_seq,
            ttl=ttl,
            maxsize=maxsize,
            overflow=overflow,
        )
        state = self._hub.subs[sub.id]
        task = loop.create_task(dispatch(sub, state, handler, limit), name=f"telic-events-{sub.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return sub

    async def aclose(self) -> None:
        """Close every subscription, cancel and await every task, shut processors down."""
        hub = self._hub
        if hub.closed:
            return
        hub.closed = True
        for state in list(hub.subs.values()):
            hub.end(state, "shutdown", "the event kernel was closed")
        hub.flush()
        current = asyncio.current_task()  # aclose() may be called from a handler
        tasks = [t for t in self._tasks if t is not current]
        timer = hub.expiry.stop()
        if timer is not None:
            tasks.append(timer)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for p in hub.processors:
            try:
                p.shutdown()
            except Exception:
                from telic.events.hub import log

                log.exception("event processor %r failed to shut down", p)
        errors = [
            r
            for r in results
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
        ]
        if errors:
            raise BaseExceptionGroup("event kernel tasks failed", errors)

    async def __aenter__(self) -> EventKernel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise BadSubscription(f"timeout must be a number of seconds, not {timeout!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise BadSubscription(f"timeout must be positive and finite, not {timeout!r}")
    return float(timeout)
