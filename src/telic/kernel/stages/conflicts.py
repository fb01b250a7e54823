"""Stage 5, resolve conflicts: proposals that claim the same resource, one winner each.

Each group is recorded (``conflict.detected``), its resolver (the policy's for the resource)
picks the winner (``conflict.resolved``), and the losers are refused. A resolver that raises,
or picks none of the group, leaves the first by agent order the winner, the failure in
``conflict.resolved.why``.
"""

from __future__ import annotations

from collections.abc import Sequence

from telic.kernel import guard
from telic.kernel.guard import Failed, safe_text
from telic.kernel.stages.records import Passing, Tick
from telic.kernel.stages.shared import name_of
from telic.kinds import ConflictDetected, ConflictResolved
from telic.policy import Candidate, Resolution, find_conflicts

__all__ = ["resolve_conflicts"]


def resolve_conflicts(t: Tick, passing: Sequence[Passing]) -> tuple[Passing, ...]:
    """The proposals that lost no conflict, each having passed ``conflict``."""
    run, batch, tick = t.run, t.batch, t.number
    policy = run.config.policy
    cands = [
        Candidate(p.made.seq, p.made.agent, p.made.role, p.made.order, p.made.proposal)
        for p in passing
    ]
    losers: set[int] = set()
    for resource, group in find_conflicts(cands).items():
        detected = batch.add(
            ConflictDetected(
                resource=resource,
                proposals=tuple(c.seq for c in group),
                agents=tuple(c.agent for c in group),
            ),
            tick=tick,
            causes=tuple(c.seq for c in group),
        )
        resolver = policy.resolver_for(resource)
        policy_name = name_of(resolver)
        res = guard.attempt(resolver.resolve, resource, group, run.state)
        if not isinstance(res, Resolution) or all(c is not res.winner for c in group):
            failure = (
                str(res) if isinstance(res, Failed) else "it did not choose one of the proposals"
            )
            res = Resolution(
                group[0],
                safe_text(f"the resolver failed ({failure}); the first by agent order wins"),
            )
        lost = tuple(c.seq for c in group if c is not res.winner)
        batch.add(
            ConflictResolved(
                resource=resource,
                policy=policy_name,
                winner=res.winner.seq,
                losers=lost,
                why=safe_text(str(res.why)),
            ),
            tick=tick,
            causes=(detected,),
        )
        for c in group:
            if c is not res.winner:
                losers.add(c.seq)
                batch.reject(
                    tick,
                    c.agent,
                    c.seq,
                    "conflict",
                    safe_text(
                        f"lost {resource} to {res.winner.agent} ({policy_name} policy: {res.why})"
                    ),
                    causes=(c.seq, detected),
                )
    return tuple(p.passed("conflict") for p in passing if p.made.seq not in losers)
