"""What more than one stage needs: waiting for answers, naming user parts."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from telic.kernel import guard
from telic.kernel.guard import safe_text
from telic.kinds import AgentLimit
from telic.policy import BudgetCheck, Check, Verdict

__all__ = ["SLACK_S", "Unanswered", "agent_limit", "answers", "name_of"]

SLACK_S: Final = 1.0
"""Seconds past a call's own deadline (and its cancellation grace) that a tick waits for an
answer before it gives up on the agent: the last resort, never reached while the agent
processes answer every request (they do, on every path)."""


class Unanswered:
    """The answer of a request nobody answered by the tick's last-resort deadline."""


async def answers(futures: list[asyncio.Future[Any]], limit: float) -> list[Any]:
    """Each future's result or exception, or :class:`Unanswered` past ``limit`` seconds.

    The late ones are cancelled (the process skips a request whose reply is done), and so are
    all of them if the caller is. One waiter future and one timer: what ``asyncio.gather``
    under ``asyncio.timeout`` does, at a fraction of its cost on the path of every tick.
    """
    if not futures:
        return []
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    left = len(futures)

    def one_done(_: object) -> None:
        nonlocal left
        left -= 1
        if left == 0 and not waiter.done():
            waiter.set_result(None)

    def late() -> None:
        if not waiter.done():
            waiter.set_result(None)

    for fut in futures:
        fut.add_done_callback(one_done)
    timer = loop.call_later(limit, late)
    try:
        await waiter
    finally:
        timer.cancel()
        for fut in futures:
            fut.remove_done_callback(one_done)
            fut.cancel()  # a no-op on the done ones
    return [
        Unanswered() if fut.cancelled() else (fut.exception() or fut.result()) for fut in futures
    ]


def name_of(part: object) -> str:
    """The name a check, resolver or verifier gives itself (user code: read defensively)."""
    name = guard.attempt(getattr, part, "name", type(part).__name__)
    return safe_text(str(name) if isinstance(name, str) else type(part).__name__, 200)


def agent_limit(check: Check, verdict: Verdict) -> AgentLimit | None:
    """The agent's own budget limit behind a refusal of telic's :class:`BudgetCheck` (its
    ``extra``), or None (the run's budget, or any other check)."""
    if type(check) is not BudgetCheck or "agent" not in verdict.extra:
        return None
    x = verdict.extra
    return AgentLimit(
        agent=str(x["agent"]),
        dimension=str(x["dimension"]),
        limit=float(x["limit"]),
        spent=float(x["spent"]),
    )
