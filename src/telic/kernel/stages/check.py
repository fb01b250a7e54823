"""Stage 3, check: the policy's per-proposal checks, in their fixed order.

The first refusal is the verdict (``proposal.rejected`` with the check's name; a loop also
``loop.detected``). User checks (any but telic's own) see the state read-only, and one that
raises, or returns something other than a :class:`~telic.policy.Verdict`, refuses the
proposal it was checking; telic's own read the live state, unguarded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from telic.kernel import guard
from telic.kernel.guard import Failed, safe_text
from telic.kernel.stages.records import Passing, Proposed, Tick
from telic.kernel.stages.shared import agent_limit, name_of
from telic.kinds import LoopDetected
from telic.policy import (
    AllowlistCheck,
    ArgumentsCheck,
    BudgetCheck,
    Check,
    CheckContext,
    LoopCheck,
    Policy,
    SchemaCheck,
    Verdict,
)

__all__ = ["OWN_CHECKS", "check", "checks_of"]

OWN_CHECKS: Final = frozenset({SchemaCheck, AllowlistCheck, ArgumentsCheck, BudgetCheck, LoopCheck})
"""telic's own checks (exact types: a subclass is user code): trusted with the live state."""


def checks_of(policy: Policy) -> tuple[tuple[Check, str, bool], ...]:
    """The policy's checks in order, each with its name and whether it is user code (what a
    run reads once: a check's name is read defensively, through the guard)."""
    return tuple((c, name_of(c), type(c) not in OWN_CHECKS) for c in policy.checks())


def check(t: Tick, proposed: Sequence[Proposed]) -> tuple[Passing, ...]:
    """The proposals every check passed, each with the names of the checks it passed."""
    run, batch, tick = t.run, t.batch, t.number
    checks = run.checks
    passed: list[Passing] = []
    live_state = run.fold.live
    frozen_state = run.state if any(user for *_, user in checks) else live_state
    for p in proposed:
        allowed = run.allowed_tools(p.agent)
        ctx = CheckContext(p.agent, p.role, allowed, live_state, run.tools, p.json)
        user_ctx = (
            ctx
            if frozen_state is live_state
            else CheckContext(p.agent, p.role, allowed, frozen_state, run.tools, p.json)
        )
        names: list[str] = []
        for each, name, user in checks:
            verdict = (
                guard.attempt(each.check, p.proposal, user_ctx)
                if user
                else each.check(p.proposal, ctx)
            )
            if not isinstance(verdict, Verdict):
                why = (
                    f"the check failed ({verdict})"
                    if isinstance(verdict, Failed)  # pyright: ignore[reportUnnecessaryIsInstance]
                    else f"the check returned {type(verdict).__name__}, not a Verdict"
                )
                batch.reject(tick, p.agent, p.seq, name, why)
                break
            if not verdict.ok:
                if name == "loop":
                    batch.add(
                        LoopDetected(
                            agent=p.agent,
                            pattern="repeat",
                            count=int(verdict.extra.get("count", 0)),
                            proposal=p.seq,
                        ),
                        tick=tick,
                        agent=p.agent,
                        causes=(p.seq,),
                    )
                batch.reject(
                    tick,
                    p.agent,
                    p.seq,
                    safe_text(str(verdict.check), 200),
                    safe_text(verdict.reason),
                    limit=agent_limit(each, verdict),
                )
                break
            names.append(name)
        else:
            passed.append(Passing(p, tuple(names)))
    return tuple(passed)
