"""Durable human approval: a high-impact call parks the run until someone decides.

The kernel commits ``approval.requested`` and ``run.paused`` first, so the wait is in the
ledger. Then, unless the run has an in-process approver (a callback), it waits for a decision
to appear in the ledger: :func:`decide` appends ``approval.granted`` or ``approval.denied``
from any process (the server, ``telic approve``, another kernel) with optimistic concurrency,
recording who decided and why. The parked run polls its head every :data:`POLL_S` and folds
what was appended (only decisions are appended to a parked run). There is no timeout unless
the policy sets ``approval_timeout_s``; then the kernel itself denies through the same
:func:`decide`, so a human's decision and the timeout cannot both land.

When the kernel stops while parked (a crash, ``kill -9``), the request stays parked:
:func:`unresolved` finds it on resume and :func:`finish_parked` waits for its decision,
runs the call if it was granted (through the tick's execute stage, in the agent's process,
with its retries and supervision), and closes the interrupted tick.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from telic.clock import Clock
from telic.errors import NotAwaitingApproval, SequenceConflict
from telic.kernel.stages.approve import decision_record
from telic.kernel.stages.effects import start_call
from telic.kernel.stages.execute import execute
from telic.kernel.stages.records import Tick
from telic.kinds import (
    ProposalAccepted,
    TickCompleted,
)
from telic.ledger.base import BaseLedger
from telic.state import RunState
from telic.transition import Transition, draft

if TYPE_CHECKING:
    from telic.kernel.run import Run

__all__ = ["ENDED", "POLL_S", "Decision", "Parked", "decide", "finish_parked", "unresolved", "wait"]

ENDED: Final = frozenset({"completed", "failed", "stopped"})
"""A run in one of these states waits for nothing (a request it left is moot)."""
POLL_S: Final = 0.25
"""How often a parked run looks for a decision in the ledger."""
_ATTEMPTS: Final = 20


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    by: str
    reason: str
    recorded: bool
    """Already in the ledger (decided through :func:`decide`); otherwise the caller records it."""


@dataclass(frozen=True, slots=True)
class Parked:
    """A high-impact call whose tick was interrupted before it was acted on."""

    proposal: int
    agent: str
    tool: str
    args: dict[str, Any]
    decision: Decision | None
    """Its decision, if one was recorded before the kernel stopped."""


def decide(
    ledger: BaseLedger,
    run_id: str,
    proposal: int,
    *,
    granted: bool,
    by: str,
    reason: str,
    now_us: Callable[[], int],
    publish: Callable[[list[Transition]], None] | None = None,
) -> Transition:
    """Record a decision on the approval ``proposal`` waits for, from any process.

    An optimistic append at the head, retried when another writer got there first.
    :class:`NotAwaitingApproval` if no approval waits for ``proposal`` (unknown, or decided).
    """
    for _ in range(_ATTEMPTS):
        state = RunState(ledger.state_at(run_id))
        if state.status in ENDED:
            raise NotAwaitingApproval(run_id, proposal, f"the run has ended ({state.status})")
        pending = state.pending_approvals.get(str(proposal))
        if pending is None:
            raise NotAwaitingApproval(run_id, proposal, _why_not(ledger, run_id, proposal))
        record = draft(
            decision_record(proposal, granted, by, reason),
            ts=now_us(),
            tick=state.tick,
            agent=pending.agent,
            causes=(pending.seq,),
        )
        try:
            committed = ledger.append(run_id, [record], expected=state.seq + 1)
        except SequenceConflict:
            continue
        if publish is not None:
            publish(committed)
        return committed[0]
    raise SequenceConflict(run_id, -1, ledger.run(run_id).head)


def _why_not(ledger: BaseLedger, run_id: str, proposal: int) -> str:
    head = ledger.run(run_id).head
    if not 1 <= proposal <= head:
        return "no such proposal"
    t = ledger.get(run_id, proposal)
    if t.kind != "proposal.made":
        return f"seq {proposal} is a {t.kind}, not a proposal"
    return "it was decided already, or never needed an approval"


def adopt(run: Run) -> list[Transition]:
    """Fold into ``run`` what others appended since it last wrote (decisions, while parked)."""
    head = run.ledger.run(run.id).head
    seq = run.fold.seq
    if head <= seq:
        return []
    new = list(run.ledger.read(run.id, seq + 1, head))
    for t in new:
        run.fold.apply(t)
    run.published(new)
    return new


async def wait(run: Run, proposal: int) -> Decision:
    """The decision on ``proposal``: from the ledger, or the policy's timeout."""
    clock: Clock = run.clock
    timeout = run.config.policy.approval_timeout_s
    deadline = None if timeout is None else clock.monotonic() + timeout
    while True:
        for t in adopt(run):
            if t.kind in ("approval.granted", "approval.denied") and (
                t.data["proposal"] == proposal
            ):
                return Decision(
                    t.kind == "approval.granted", t.data["by"], t.data.get("reason", ""), True
                )
        if deadline is not None and clock.monotonic() >= deadline:
            with contextlib.suppress(NotAwaitingApproval):  # someone decided first: look again
                decide(
                    run.ledger,
                    run.id,
                    proposal,
                    granted=False,
                    by="kernel",
                    reason=f"no decision within {timeout:g} s; no answer means deny",
                    now_us=clock.now_us,
                )
            continue
        await clock.sleep(POLL_S)


def unresolved(ledger: BaseLedger, run_id: str, state: RunState) -> list[Parked]:
    """The approvals of the open tick that were never acted on (in request order)."""
    if not state.tick_open:
        return []
    tick = state.tick
    requested: dict[int, Transition] = {}
    decided: dict[int, Transition] = {}
    acted: set[int] = set()
    for t in _open_tick(ledger, run_id, state.seq, tick):
        if t.kind == "approval.requested":
            requested[t.data["proposal"]] = t
        elif t.kind in ("approval.granted", "approval.denied"):
            decided[t.data["proposal"]] = t
        elif t.kind in ("proposal.accepted", "proposal.rejected"):
            acted.add(t.data.get("proposal") or 0)
    out: list[Parked] = []
    for proposal, req in sorted(requested.items(), key=lambda kv: kv[1].seq):
        if proposal in acted:
            continue
        made = ledger.get(run_id, proposal).data
        raw: Any = made.get("args", {}).get("args", {})
        d = decided.get(proposal)
        decision = (
            None
            if d is None
            else Decision(d.kind == "approval.granted", d.data["by"], d.data["reason"], True)
        )
        out.append(Parked(proposal, req.data["agent"], req.data["tool"], dict(raw or {}), decision))
    return out


def _open_tick(ledger: BaseLedger, run_id: str, head: int, tick: int) -> list[Transition]:
    """The transitions of ``tick`` (the last one), read backwards in pages from the head."""
    out: list[Transition] = []
    end = head
    page = 256
    while end >= 1:
        start = max(1, end - page + 1)
        chunk = list(ledger.read(run_id, start, end))
        for i in range(len(chunk) - 1, -1, -1):
            t = chunk[i]
            if t.tick != tick:
                return list(reversed(out))
            out.append(t)
            if t.kind == "tick.started":
                return list(reversed(out))
        end = start - 1
    return list(reversed(out))


async def finish_parked(run: Run, parked: list[Parked]) -> None:
    """Finish a tick that was interrupted while calls waited for approval: wait for each
    decision, run the granted calls, close the tick (as invalid: it was interrupted)."""
    tick = run.fold.live.tick
    for p in parked:
        decision = p.decision or await run.decide_approval(p.proposal, p.agent, p.tool, p.args)
        batch = run.batch()
        if not decision.recorded:
            record = decision_record(p.proposal, decision.granted, decision.by, decision.reason)
            batch.add(record, tick=tick, agent=p.agent, causes=(p.proposal,))
        if not decision.granted:
            batch.reject(tick, p.agent, p.proposal, "approval", decision.reason or "denied")
            await run.commit(batch)
            continue
        if not run.supervises(p.agent):
            why = "its agent is not running (stopped or not restarted) to make the call"
            batch.reject(tick, p.agent, p.proposal, "supervision", why)
            await run.commit(batch)
            continue
        batch.add(
            ProposalAccepted(proposal=p.proposal, agent=p.agent, checks=("approval",)),
            tick=tick,
            agent=p.agent,
            causes=(p.proposal,),
        )
        t = Tick(run, batch, tick)
        call = start_call(t, p.agent, run.tools.get(p.tool), dict(p.args), p.proposal)
        await execute(t, (call,))  # the tick's own execute stage: retries, supervision
        await run.commit(batch)
    batch = run.batch()
    progress = run.fold.live.progress
    batch.add(
        TickCompleted(
            tick=tick, progress=progress, delta=0.0, valid=False, state_hash=run.fold.hash()
        ),
        tick=tick,
    )
    await run.commit(batch)
