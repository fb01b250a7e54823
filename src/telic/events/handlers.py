"""The callback API: run a handler for each event of a subscription, in an owned task."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable

from telic.errors import SubscriptionClosed
from telic.events.event import Event
from telic.events.state import LOGGED_IN_FULL, HandlerFailure, SubscriptionState, logged
from telic.events.subscription import Subscription

__all__ = ["Handler", "dispatch"]

log = logging.getLogger("telic.events")

Handler = Callable[[Event], object]
"""A sync function, or one returning an awaitable (an ``async def``), called per event."""


async def dispatch(
    sub: Subscription, state: SubscriptionState, handler: Handler, limit: float
) -> None:
    """Call ``handler`` for every event of ``sub``, one at a time, until it closes.

    A handler that raises, or whose awaitable runs past ``limit`` seconds (it is then cancelled),
    is logged and counted on the subscription; the next event is handled as usual.
    Cancelling this task (as :meth:`EventKernel.aclose` does) is never swallowed.
    """
    try:
        async for event in sub:
            scope: asyncio.Timeout | None = None
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    async with asyncio.timeout(limit) as scope:
                        await result
            except TimeoutError as exc:
                timed_out = scope is not None and scope.expired()
                _fail(state, event, "timeout" if timed_out else _describe(exc), timed_out)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                _fail(state, event, "CancelledError: the handler cancelled itself", False)
            except Exception as exc:
                _fail(state, event, _describe(exc), False)
    except SubscriptionClosed:
        return


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _fail(state: SubscriptionState, event: Event, error: str, timed_out: bool) -> None:
    state.failure_count += 1
    state.failures.append(HandlerFailure(event, error, timed_out))
    count = state.failure_count
    if not logged(count):
        return
    more = "" if count < LOGGED_IN_FULL else " (further failures are logged at powers of two)"
    log.warning(
        "handler of subscription %s failed on %s #%d of %s (failure %d): %s%s",
        state.id,
        event.type,
        event.seq,
        event.run,
        count,
        error,
        more,
    )
