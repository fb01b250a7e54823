"""What more than one stage needs: waiting for answers, naming user parts."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from telic.kernel import guard
from telic.kernel.guard import safe_text

__all__ = ["SLACK_S", "Unanswered", "answers", "name_of"]

SLACK_S: Final = 1.0
"""Seconds past a call's own deadline (and its cancellation grace) that a tick waits for an
answer before it gives up on the agent: the last resort, never reached while the agent
processes answer every request (they do, on every path)."""


class Unanswered:
    """The answer of a request nobody answered by the tick's last-resort deadline."""


async def answers(futures: list[asyncio.Future[Any]], limit: float) -> list[Any]:
    """Each future's result or exception, or :class:`Unanswered` past ``limit`` seconds."""
    if not futures:
        return []
    try:
        async with asyncio.timeout(limit):
            await asyncio.gather(*futures, return_exceptions=True)
    except TimeoutError:
        pass  # gather cancelled the late ones; the process skips a request whose reply is done
    return [
        Unanswered() if fut.cancelled() else (fut.exception() or fut.result()) for fut in futures
    ]


def name_of(part: object) -> str:
    """The name a check, resolver or verifier gives itself (user code: read defensively)."""
    name = guard.attempt(getattr, part, "name", type(part).__name__)
    return safe_text(str(name) if isinstance(name, str) else type(part).__name__, 200)
