"""Runs: list, detail, start, stop, fork, resume, verify.

Routes that only read (or append) are plain functions, which FastAPI runs in its worker
threads: a slow read never holds up the event loop (streams, heartbeats). Those that drive
runs hand the work to the kernel loop and read the result in a worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query

from telic.access import Identity
from telic.errors import SequenceError
from telic.kernel.approval import ENDED
from telic.kernel.tree import ROOT, Tree
from telic.ledger.base import RunInfo
from telic.reducer import initial_state, state_hash
from telic.serve.auth import Operator, Reader
from telic.serve.context import Context, context
from telic.serve.models import (
    AgentOut,
    ApprovalOut,
    ForkIn,
    ParentRef,
    ResumeIn,
    RunDetail,
    RunPage,
    RunSummary,
    StartIn,
    StopIn,
    SupervisorOut,
    VerifyOut,
)
from telic.state import RunState

__all__ = ["SYSTEM_RUNS", "router"]

router = APIRouter(tags=["runs"])

SYSTEM_RUNS = frozenset({"telic-events", "telic-access"})
"""Ledger runs that hold records of the system, not runs of agents."""

Ctx = Annotated[Context, Depends(context)]


def _summary(ctx: Context, info: RunInfo, state: RunState) -> dict[str, Any]:
    return {
        "id": info.id,
        "goal": state.goal,
        "status": state.status,
        "parent": None if info.parent is None else ParentRef(run=info.parent, seq=info.fork_seq),
        "head": info.head,
        "head_hash": info.head_hash.hex(),
        "hosted": ctx.host.hosts(info.id),
    }


def approvals_of(ctx: Context, run_id: str, state: RunState) -> list[ApprovalOut]:
    out: list[ApprovalOut] = []
    if state.status in ENDED:
        return out
    for proposal, a in sorted(state.pending_approvals.items(), key=lambda kv: kv[1].seq):
        made = ctx.ledger.get(run_id, int(proposal)).data
        args: dict[str, Any] = made.get("args", {}).get("args") or {}
        out.append(
            ApprovalOut(
                run=run_id,
                proposal=int(proposal),
                agent=a.agent,
                tool=a.tool,
                args=args,
                requested_seq=a.seq,
            )
        )
    return out


def supervisors_of(state: RunState) -> list[SupervisorOut]:
    """The run's supervision tree from its folded state: the root, then each team under its
    parent; each with its children in start order (explorers after, under their parent's)."""
    tree = Tree.from_state(state)
    recorded = state.supervision
    agents = state.agents
    explorers = [n for n, a in state.agents_in_order() if a.temporary]
    out: list[SupervisorOut] = []
    for name in [ROOT, *(t.name for t in tree.teams)]:
        children = [
            *tree.children(name),
            *(n for n in explorers if agents[n].supervisor == name),
        ]
        if name == ROOT:
            root = None if recorded is None else recorded.root
            out.append(
                SupervisorOut(
                    name=ROOT,
                    parent=None,
                    strategy=None if root is None else root.strategy,
                    intensity=None if root is None else root.intensity,
                    period_s=None if root is None else root.period_s,
                    restart=None,
                    restarts=0,
                    escalations=None if root is None else root.escalations,
                    children=children,
                )
            )
            continue
        assert recorded is not None  # a tree with teams is on record
        team = recorded.teams[name]
        out.append(
            SupervisorOut(
                name=name,
                parent=team.supervisor,
                strategy=team.strategy,
                intensity=team.intensity,
                period_s=team.period_s,
                restart=team.restart,
                restarts=team.restarts,
                escalations=team.escalations,
                children=children,
            )
        )
    return out


def detail(ctx: Context, run_id: str) -> RunDetail:
    info = ctx.ledger.run(run_id)
    raw = ctx.ledger.state_at(run_id)
    state = RunState(raw)
    agents = [
        AgentOut(
            name=name,
            role=a.role,
            status=a.status,
            restarts=a.restarts,
            supervisor=a.supervisor,
            temporary=a.temporary,
            parent=a.parent,
        )
        for name, a in state.agents_in_order()
    ]
    return RunDetail(
        **_summary(ctx, info, state),
        reason=state.reason,
        tick=state.tick,
        progress=state.progress,
        budget=dict(state.budget),
        spent=dict(state.spent.json),
        currency=state.currency,
        agents=agents,
        supervisors=supervisors_of(state),
        approvals=approvals_of(ctx, run_id, state),
        artifacts=sorted(state.artifacts),
        state_hash=state_hash(raw),
    )


@router.get("/runs", response_model=RunPage, summary="List runs, newest first")
def list_runs(
    ctx: Ctx,
    who: Identity = Reader,
    status: Annotated[
        str | None, Query(description="Only runs with this status (e.g. running, paused).")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RunPage:
    infos = [i for i in ctx.ledger.runs() if i.id not in SYSTEM_RUNS]
    infos.sort(key=lambda i: i.created, reverse=True)
    rows: list[RunSummary] = []
    for info in infos:
        state = RunState(ctx.ledger.state_at(info.id) if info.head else initial_state())
        if status is not None and state.status != status:
            continue
        rows.append(RunSummary(**_summary(ctx, info, state)))
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return RunPage(items=page, next_offset=offset + limit if more else None, total=len(rows))


@router.get("/runs/{run_id}", response_model=RunDetail, summary="A run in detail")
def get_run(run_id: str, ctx: Ctx, who: Identity = Reader) -> RunDetail:
    return detail(ctx, run_id)


@router.post("/runs", response_model=RunDetail, status_code=201, summary="Start a run from a spec")
async def start_run(body: StartIn, ctx: Ctx, who: Identity = Operator) -> RunDetail:
    run_id = await ctx.driver.call(ctx.host.start(body, by=who.name))
    return await anyio.to_thread.run_sync(detail, ctx, run_id, limiter=ctx.reads)


@router.post("/runs/{run_id}/stop", response_model=RunDetail, summary="Stop a run gracefully")
async def stop_run(run_id: str, body: StopIn, ctx: Ctx, who: Identity = Operator) -> RunDetail:
    await anyio.to_thread.run_sync(ctx.ledger.run, run_id, limiter=ctx.reads)  # 404
    await ctx.driver.call(ctx.host.stop(run_id, by=who.name, reason=body.reason))
    return await anyio.to_thread.run_sync(detail, ctx, run_id, limiter=ctx.reads)


@router.post(
    "/runs/{run_id}/fork", response_model=RunDetail, status_code=201, summary="Fork at a seq"
)
def fork_run(run_id: str, body: ForkIn, ctx: Ctx, who: Identity = Operator) -> RunDetail:
    info = ctx.ledger.run(run_id)
    if body.at > info.head:
        raise SequenceError(run_id, body.at, info.head)
    new_id = ctx.kernel.fork(run_id, body.at)
    return detail(ctx, new_id)


@router.post("/runs/{run_id}/resume", response_model=RunDetail, summary="Resume a run here")
async def resume_run(run_id: str, body: ResumeIn, ctx: Ctx, who: Identity = Operator) -> RunDetail:
    await ctx.driver.call(ctx.host.resume(run_id, body, by=who.name))
    return await anyio.to_thread.run_sync(detail, ctx, run_id, limiter=ctx.reads)


@router.get("/runs/{run_id}/verify", response_model=VerifyOut, summary="Verify the chain")
def verify_run(run_id: str, ctx: Ctx, who: Identity = Reader) -> VerifyOut:
    r = ctx.ledger.verify(run_id)
    return VerifyOut(
        run=run_id,
        ok=r.ok,
        checked=r.checked,
        first_bad=r.first_bad,
        reason=r.reason,
        head_hash=r.head_hash,
    )
