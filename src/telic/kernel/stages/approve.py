"""Stage 7, approve: a high-impact tool call waits for a decision.

``approval.requested`` and ``run.paused`` are committed first, so the wait is in the ledger;
the decision comes from the run's approver, or from whoever records one in the ledger (see
:mod:`telic.kernel.approval`). A denial refuses the proposal (check ``approval``).
"""

from __future__ import annotations

from collections.abc import Sequence

from telic.kernel.stages.records import Passing, Tick
from telic.kinds import ApprovalDenied, ApprovalGranted, ApprovalRequested, Payload, RunPaused

__all__ = ["approve", "decision_record"]


async def approve(t: Tick, passing: Sequence[Passing]) -> tuple[Passing, ...]:
    """The proposals that need no approval or got one (those having passed ``approval``)."""
    run, batch, tick = t.run, t.batch, t.number
    approved: list[Passing] = []
    for each in passing:
        p = each.made
        args = p.proposal.args
        if p.proposal.action != "tool" or not run.tools.get(str(args["tool"])).high_impact:
            approved.append(each)
            continue
        tool_name = str(args["tool"])
        batch.add(
            ApprovalRequested(proposal=p.seq, agent=p.agent, tool=tool_name),
            tick=tick,
            agent=p.agent,
            causes=(p.seq,),
        )
        batch.add(
            RunPaused(reason=f"waiting for approval of {tool_name} for {p.agent}"),
            tick=tick,
            causes=(p.seq,),
        )
        await run.commit(batch)
        decision = await run.decide_approval(p.seq, p.agent, tool_name, args.get("args", {}))
        batch.rebase()  # a decision from the ledger moved the head
        if not decision.recorded:
            batch.add(
                decision_record(p.seq, decision.granted, decision.by, decision.reason),
                tick=tick,
                agent=p.agent,
                causes=(p.seq,),
            )
        if decision.granted:
            approved.append(each.passed("approval"))
        else:
            batch.reject(tick, p.agent, p.seq, "approval", decision.reason or "denied")
    return tuple(approved)


def decision_record(proposal: int, granted: bool, by: str, reason: str) -> Payload:
    """The record of a decision on the approval the proposal at ``proposal`` waits for."""
    if granted:
        return ApprovalGranted(proposal=proposal, by=by, reason=reason)
    return ApprovalDenied(proposal=proposal, by=by, reason=reason)
