"""Approvals: what waits, and deciding (recorded with who decided and why)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from telic.access import Identity
from telic.kernel.approval import decide
from telic.serve.auth import Approver, Reader
from telic.serve.context import Context, context
from telic.serve.models import ApprovalDecision, ApprovalOut, TransitionOut
from telic.serve.routes.runs import SYSTEM_RUNS, approvals_of
from telic.state import RunState

__all__ = ["router"]

router = APIRouter(tags=["approvals"])

Ctx = Annotated[Context, Depends(context)]


@router.get("/approvals", response_model=list[ApprovalOut], summary="Every approval that waits")
def all_approvals(ctx: Ctx, who: Identity = Reader) -> list[ApprovalOut]:
    out: list[ApprovalOut] = []
    for info in ctx.ledger.runs():
        if info.id in SYSTEM_RUNS or info.head == 0:
            continue
        state = RunState(ctx.ledger.state_at(info.id))
        if state.pending_approvals:
            out.extend(approvals_of(ctx, info.id, state))
    return out


@router.get(
    "/runs/{run_id}/approvals", response_model=list[ApprovalOut], summary="A run's waiting calls"
)
def run_approvals(run_id: str, ctx: Ctx, who: Identity = Reader) -> list[ApprovalOut]:
    return approvals_of(ctx, run_id, RunState(ctx.ledger.state_at(run_id)))


@router.post(
    "/runs/{run_id}/approvals/{proposal}",
    response_model=TransitionOut,
    summary="Approve or deny a waiting call",
)
def decide_approval(
    run_id: str, proposal: int, body: ApprovalDecision, ctx: Ctx, who: Identity = Approver
) -> TransitionOut:
    t = decide(
        ctx.ledger,
        run_id,
        proposal,
        granted=body.decision == "approve",
        by=who.name,
        reason=body.reason,
        now_us=ctx.kernel.clock.now_us,
        publish=ctx.kernel.publish,  # from this worker thread, handed to the HTTP loop
    )
    return TransitionOut.model_construct(**t.to_json())
