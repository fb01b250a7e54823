"""One tick: ask every live agent, validate in a fixed order, commit, execute, measure.

Every step is a transition, and each stage is a function of its own (:mod:`telic.kernel.stages`):

1. **ask**: ``tick.started``; every live agent's mind is asked concurrently; each model call
   is written as it completes (``model.called`` / ``model.failed``, see
   :mod:`telic.kernel.calls`), so these are in completion order;
2. **record**: in agent order (never arrival order), ``proposal.made`` (or
   ``proposal.rejected``); the supervisor's reactions to crashes;
3. **check**: per-proposal checks (schema, allowlist, arguments, budget, loop guard, user
   checks);
4. **explore**: low confidence: ``exploration.spawned`` and an explorer instead of the action;
5. **resolve conflicts** between the survivors: ``conflict.detected`` / ``conflict.resolved``;
6. **ground** claims: ``hallucination.detected`` marks the agent for kill and restore;
7. **approve** high-impact tools (committed first; the run pauses until answered);
8. **commit effects**: ``proposal.accepted`` and the effect (memory, plan, beliefs, message,
   spawn, finish, ``tool.started``);
9. **execute**: commit, then run tools concurrently under their timeouts and retries; results
   in call order; the supervisor's reactions to tool failures;
10. **settle**: kill and ``state.restored``; ``tick.completed`` with progress. Budget, stall
    and the return condition are checked after the tick (:meth:`Run.step
    <telic.kernel.run.Run.step>`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telic.kernel.stages import (
    approve,
    ask,
    check,
    commit_effects,
    execute,
    explore,
    ground,
    record,
    resolve_conflicts,
    settle,
)

if TYPE_CHECKING:
    from telic.kernel.run import Run

__all__ = ["run_tick"]


async def run_tick(run: Run) -> None:
    """Advance ``run`` by one tick (see the module docstring)."""
    asked = await ask(run)
    t = asked.tick
    recorded = await record(t, asked)
    passing = check(t, recorded.proposed)
    passing = await explore(t, passing)
    passing = resolve_conflicts(t, passing)
    grounded = ground(t, passing)
    approved = await approve(t, grounded.passing)
    calls = await commit_effects(t, approved)
    executed = await execute(t, calls)
    await settle(
        t, invalid=recorded.invalid or bool(executed.failed), hallucinated=grounded.hallucinated
    )
