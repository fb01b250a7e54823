"""A subscription: an async iterator of events with a bounded queue and an optional TTL."""

from __future__ import annotations

import asyncio
from types import TracebackType

from telic.errors import SubscriptionClosed
from telic.events.event import Event
from telic.events.hub import LAG_PENDING, Hub, running_loop
from telic.events.state import HandlerFailure, SubscriptionState
from telic.events.ttl import check_ttl

__all__ = ["Subscription"]


class Subscription:
    """Events matching a pattern (and a run, an agent), in order, catch-up first if asked.

    Iterate it with ``async for``; use it as a context manager (``with`` or ``async with``)
    to close it on exit.
    Iteration ends when the owner calls :meth:`close`; it raises
    :class:`~telic.errors.SubscriptionClosed` when the subscription expired, was disconnected
    for overflowing, or the event kernel was closed. Read it from one task at a time.
    """

    __slots__ = ("_hub", "_s")

    def __init__(self, state: SubscriptionState, hub: Hub) -> None:
        self._s = state
        self._hub = hub

    # -- what it is ----------------------------------------------------------------------

    @property
    def id(self) -> str:
        """Unique id, as recorded in the ``subscription.*`` transitions."""
        return self._s.id

    @property
    def pattern(self) -> str:
        return self._s.pattern

    @property
    def run(self) -> str | None:
        return self._s.run

    @property
    def agent(self) -> str | None:
        return self._s.agent

    @property
    def ttl(self) -> float | None:
        return self._s.ttl

    @property
    def maxsize(self) -> int:
        return self._s.maxsize

    @property
    def types(self) -> frozenset[str]:
        """The event types this subscription can deliver (besides ``subscriber.lagged``)."""
        return frozenset(self._s.routes.values())

    # -- how it is doing -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._s.closing is not None

    @property
    def reason(self) -> str:
        """Why it closed ('' while open)."""
        return self._s.reason

    @property
    def live(self) -> bool:
        """True once catch-up is over (or was not asked for) and events arrive as published."""
        return self._s.catchup is None and self._s.closing is None

    @property
    def queued(self) -> int:
        """Events waiting to be read."""
        return len(self._s.queue)

    @property
    def dropped(self) -> int:
        """Events dropped by overflow since the subscription began."""
        return self._s.dropped

    @property
    def lag_episodes(self) -> int:
        """How many ``subscriber.lagged`` transitions were recorded for it."""
        return self._s.episodes

    @property
    def failures(self) -> tuple[HandlerFailure, ...]:
        """The latest handler failures (callback subscriptions only; at most 64 kept)."""
        return tuple(self._s.failures)

    @property
    def failure_count(self) -> int:
        return self._s.failure_count

    # -- control -------------------------------------------------------------------------

    def renew(self, ttl: float | None = None) -> None:
        """Push the TTL deadline out by the TTL (or by a new ``ttl``) from now."""
        state = self._s
        if state.closing is not None:
            raise SubscriptionClosed(state.id, state.reason)
        if ttl is not None:
            if state.ttl is None:
                from telic.errors import BadTTL

                raise BadTTL(ttl, "this subscription was made without a TTL")
            state.ttl = check_ttl(ttl)
            state.renew()
            self._hub.expiry.reschedule(state, running_loop())
        else:
            state.renew()

    def close(self) -> None:
        """End the subscription (records ``subscription.ended``); idempotent."""
        self._hub.end(self._s, "closed", "closed by its owner")

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        state = self._s
        queue = state.queue
        if queue and state.lag_event is None:
            event = queue.popleft()
            if not queue:
                state.lagging = False  # drained: a lag episode ends here
            ttl = state.ttl
            if ttl is not None:
                state.deadline = state.monotonic() + ttl
            return event
        return await self._next_slow()

    async def _next_slow(self) -> Event:
        state = self._s
        yielded = False
        while True:
            lag = state.lag_event
            if lag is LAG_PENDING:
                self._hub.flush()  # record it now: the reader is here before the callback
                continue
            if lag is not None:
                state.lag_event = None
                state.renew()
                return lag
            queue = state.queue
            if queue:
                state.renew()
                event = queue.popleft()
                if not queue:
                    state.lagging = False
                return event
            if state.closing is not None:
                if state.closing == "closed":
                    raise StopAsyncIteration
                raise SubscriptionClosed(state.id, state.reason)
            if state.catchup is not None:
                if state.pages and not yielded:
                    yielded = True
                    await asyncio.sleep(0)  # let others run between pages of a long catch-up
                    continue
                yielded = False
                self._hub.fill(state)
                continue
            if state.waiter is not None and not state.waiter.done():
                raise RuntimeError(f"subscription {state.id} is already being read by another task")
            waiter = asyncio.get_running_loop().create_future()
            state.waiter = waiter
            try:
                await waiter
            finally:
                if state.waiter is waiter:
                    state.waiter = None

    def __repr__(self) -> str:
        state = self._s
        where = f" run={state.run!r}" if state.run is not None else ""
        status = state.closing or ("live" if state.catchup is None else "catching up")
        return (
            f"<Subscription {state.id} {state.pattern!r}{where} {status} queued={len(state.queue)}>"
        )
