"""Stage 1, ask: ``tick.started``, then every live agent's mind asked concurrently.

A mind that answers synchronously is asked in the kernel's task while its process is idle
(:meth:`AgentProcess.ask <telic.kernel.process.AgentProcess.ask>`); the others through their
process's inbox, concurrently. Each model call is written as it completes (``model.called`` / ``model.failed``, see
:mod:`telic.kernel.calls`), so those are in completion order. A resumed tick whose minds were
being asked when the process stopped is asked again: same tick, same view, and the answers
its calls already got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from telic.kernel.calls import TickCalls, reentry
from telic.kernel.stages.records import Asked, Tick
from telic.kernel.stages.shared import SLACK_S, answers
from telic.kernel.view import TickState
from telic.kinds import TickStarted

if TYPE_CHECKING:
    from telic.kernel.run import Run

__all__ = ["ask"]


async def ask(run: Run) -> Asked:
    """Open the next tick of ``run`` (or the one a resume left open) and ask its agents."""
    batch = run.batch()
    again = reentry(run)
    if again is None:
        tick = run.fold.live.tick + 1
        batch.add(TickStarted(tick=tick), tick=tick)
        view_state = TickState(run.fold, tick)  # copied if read, shared read-only by the minds
    else:
        tick, view_state = again.tick, again.state
    policy = run.config.policy
    live = run.live_agents()
    model_calls = TickCalls(run, batch, tick, view_state)  # written as they end
    answered: Mapping[str, Mapping[str, Any]] = again.recorded if again is not None else {}
    replies = [
        run.process(name).ask(
            run.view(
                name, tick, view_state, calls=model_calls.log(name), recorded=answered.get(name)
            )
        )
        for name in live
    ]
    limit = policy.mind_timeout_s + 2 * policy.cancel_grace_s + SLACK_S
    futures: list[asyncio.Future[Any]] = [r for r in replies if isinstance(r, asyncio.Future)]
    if futures:
        later = iter(await answers(futures, limit))
        replies = [next(later) if isinstance(r, asyncio.Future) else r for r in replies]
    else:
        # Every mind answered at once: yield to the loop once all the same, so that a run
        # never holds it for a whole tick (other runs, lease renewal, cancellation).
        await asyncio.sleep(0)
    view_state.close()
    return Asked(Tick(run, batch, tick), tuple(live), tuple(replies), limit)
