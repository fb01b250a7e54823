"""How a child's task ends: stopping it (grace, then force) and reading why it ended.

asyncio has no untrappable kill: a task can catch ``CancelledError``. Stopping therefore
cancels once, waits out the grace period, then cancels again every :data:`KILL_RETRY` seconds
until the task is done. A child that swallows every cancellation cannot be stopped; that is a
bug in the child, and the supervisor keeps waiting rather than leave an orphan task behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from telic.kinds import AgentFailed, AgentTerminated, Payload
from telic.supervision.spec import Shutdown

__all__ = ["KILL_RETRY", "Exit", "classify", "failure", "retrieve", "terminate"]

KILL_RETRY = 0.001
"""Seconds between forced cancellations of a child that resists being stopped."""


async def terminate(tasks: Collection[asyncio.Task[None]], shutdown: Shutdown) -> None:
    """Stop ``tasks`` (all with the same shutdown) and return once every one is done."""
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    for t in pending:
        t.cancel()
    if shutdown == "infinity":
        await asyncio.wait(pending)
        return
    await asyncio.wait(pending, timeout=KILL_RETRY if shutdown == "brutal_kill" else shutdown)
    while pending := [t for t in pending if not t.done()]:
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=KILL_RETRY)


def retrieve(task: asyncio.Task[None]) -> None:
    """Mark a finished task's exception as seen (asyncio logs unseen ones)."""
    if not task.cancelled():
        task.exception()


class Exit:
    """Why a child's task ended: the event to report and whether the exit was abnormal."""

    __slots__ = ("abnormal", "event", "reason")

    def __init__(self, abnormal: bool, event: Payload, reason: str) -> None:
        self.abnormal = abnormal
        """An exception or a kill (restarts a transient child); a normal return is not."""
        self.event = event
        """AgentFailed for an exception, AgentTerminated otherwise."""
        self.reason = reason
        """One line for AgentRestarted.reason and SupervisorEscalated.reason."""


def classify(agent: str, task: asyncio.Task[None], kill_reason: str | None) -> Exit:
    """Read a finished task's outcome (marking any exception as seen)."""
    exc = None if task.cancelled() else task.exception()
    if kill_reason is not None:
        return Exit(True, AgentTerminated(agent=agent, reason=kill_reason), kill_reason)
    if task.cancelled():
        message = "cancelled by something other than its supervisor"
        return Exit(
            True, AgentFailed(agent=agent, error="CancelledError", message=message), "cancelled"
        )
    if exc is None:
        return Exit(False, AgentTerminated(agent=agent, reason="normal"), "normal")
    return failure(agent, exc)


def failure(agent: str, exc: BaseException) -> Exit:
    """The exit of a child that raised ``exc`` (while running, or from its ``start``)."""
    error = type(exc).__name__
    return Exit(True, AgentFailed(agent=agent, error=error, message=str(exc)), f"{error}: {exc}")
