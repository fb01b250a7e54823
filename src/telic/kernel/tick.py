"""One tick: ask every live agent, validate in a fixed order, commit, execute, measure.

The order of a tick, every step a transition:

1. ``tick.started``; every live agent's mind is asked concurrently;
2. in agent order (never arrival order): ``model.called``, ``proposal.made``;
3. per-proposal checks (schema, allowlist, arguments, budget, loop guard, user checks);
4. low confidence: ``exploration.spawned`` and an explorer instead of the action;
5. conflicts between the survivors: ``conflict.detected`` / ``conflict.resolved``;
6. grounding of claims: ``hallucination.detected`` marks the agent for kill and restore;
7. approval of high-impact tools (committed first; the run pauses until answered);
8. ``proposal.accepted`` and the effect (memory, plan, beliefs, message, spawn, finish,
   ``tool.started``); commit, then run tools concurrently under their timeouts;
9. results in agent order; supervisor reactions; kill and ``state.restored``;
10. ``tick.completed`` with progress, then budget, stall and the return condition.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telic.errors import MalformedOutput
from telic.kernel.process import AgentCrash, ToolOutcome
from telic.kernel.view import TickState
from telic.kinds import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    BeliefUpdated,
    ConflictDetected,
    ConflictResolved,
    ExplorationSpawned,
    HallucinationDetected,
    LoopDetected,
    MemoryUpdated,
    MessageSent,
    ModelCalled,
    Payload,
    PlanUpdated,
    ProposalAccepted,
    ProposalMade,
    ProposalRejected,
    RunPaused,
    TickCompleted,
    TickStarted,
    ToolCompleted,
    ToolFailed,
    ToolStarted,
    ToolTimeout,
)
from telic.policy import BudgetCheck, Candidate, CheckContext, find_conflicts
from telic.proposal import Proposal
from telic.tools import Tool

if TYPE_CHECKING:
    from telic.kernel.run import Run

__all__ = ["run_tick"]


@dataclass(slots=True)
class _Pending:
    agent: str
    role: str
    order: int
    proposal: Proposal
    seq: int
    json: dict[str, Any]
    """The proposal as JSON, computed once for every check."""


async def run_tick(run: Run) -> None:
    """Advance ``run`` by one tick (see the module docstring)."""
    tick = run.state["tick"] + 1
    batch = run.batch()
    batch.add(TickStarted(tick=tick), tick=tick)
    invalid = False

    live = run.live_agents()
    view_state = TickState(run.fold, tick)  # copied if read, shared read-only by the minds
    futures = [run.process(name).propose(run.view(name, tick, view_state)) for name in live]
    replies: list[Any] = list(await asyncio.gather(*futures, return_exceptions=True))
    view_state.close()

    pending: list[_Pending] = []
    crashed: list[str] = []
    for order, (name, reply) in enumerate(zip(live, replies, strict=True)):
        role = run.role(name)
        if isinstance(reply, AgentCrash):
            invalid = True  # the supervisor reports the crash and the restart
            for call in reply.calls:  # what was spent before the failure is still spent
                batch.add(call, tick=tick, agent=name)
            crashed.append(name)
            continue
        if isinstance(reply, MalformedOutput):
            recorded: tuple[ModelCalled, ...] = getattr(reply, "calls", ())
            for call in recorded:
                batch.add(call, tick=tick, agent=name)
            batch.add(
                ProposalRejected(agent=name, check="schema", reason=str(reply)),
                tick=tick,
                agent=name,
            )
            continue
        if isinstance(reply, BaseException):
            raise reply
        proposal: Proposal = reply
        for call in proposal.model_calls:
            batch.add(call, tick=tick, agent=name)
        # The proposal was validated when it was built; its record needs no second pass.
        made = ProposalMade.model_construct(
            agent=name,
            action=proposal.action,
            args=proposal.args,
            confidence=proposal.confidence,
            reason=proposal.reason,
            claims=proposal.claims,
            resource=proposal.claimed_resource(),
            cost=proposal.cost,
        )
        seq = batch.add(made, tick=tick, agent=name)
        pending.append(_Pending(name, role, order, proposal, seq, proposal.model_dump(mode="json")))
    await run.settle(batch, tick, crashed)

    # 3. per-proposal checks, in the fixed order; the first refusal is the verdict.
    checks = run.config.policy.checks()
    passed: list[tuple[_Pending, list[str]]] = []
    for p in pending:
        ctx = CheckContext(
            p.agent, p.role, run.allowed_tools(p.agent), run.fold.peek(), run.tools, p.json
        )
        names: list[str] = []
        refused = False
        for check in checks:
            verdict = check.check(p.proposal, ctx)
            if not verdict.ok:
                if check.name == "loop":
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
                batch.reject(tick, p.agent, p.seq, verdict.check, verdict.reason)
                refused = True
                break
            names.append(check.name)
        if not refused:
            passed.append((p, names))

    # 4. exploration instead of low-confidence actions.
    threshold = run.config.policy.exploration_threshold
    confident: list[tuple[_Pending, list[str]]] = []
    for p, names in passed:
        unsure = (
            p.proposal.confidence < threshold
            and p.proposal.action not in ("finish", "spawn")
            and not run.is_explorer(p.agent)
        )
        if run.config.explorer is None and (unsure or p.proposal.action == "spawn"):
            check, reason = (
                (
                    "confidence",
                    f"confidence {p.proposal.confidence:g} is below {threshold:g} and the run has no explorer",
                )
                if unsure
                else ("spawn", "the run has no explorer to spawn")
            )
            batch.reject(tick, p.agent, p.seq, check, reason)
            continue
        if unsure:
            question = p.proposal.reason or f"{p.proposal.action} {p.proposal.args}"
            explorer = run.next_explorer_name()
            cause = batch.add(
                ExplorationSpawned(
                    proposal=p.seq,
                    agent=p.agent,
                    explorer=explorer,
                    question=question,
                    confidence=p.proposal.confidence,
                    threshold=threshold,
                ),
                tick=tick,
                agent=p.agent,
                causes=(p.seq,),
            )
            batch.reject(
                tick,
                p.agent,
                p.seq,
                "confidence",
                f"confidence {p.proposal.confidence:g} is below {threshold:g}; {explorer} explores it",
            )
            await run.spawn_explorer(batch, tick, explorer, question, p.agent, cause)
            continue
        confident.append((p, names))

    # 5. conflicts.
    cands = [Candidate(p.seq, p.agent, p.role, p.order, p.proposal) for p, _ in confident]
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
        resolver = run.config.policy.resolver_for(resource)
        res = resolver.resolve(resource, group, run.fold.peek())
        lost = tuple(c.seq for c in group if c is not res.winner)
        batch.add(
            ConflictResolved(
                resource=resource,
                policy=resolver.name,
                winner=res.winner.seq,
                losers=lost,
                why=res.why,
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
                    f"lost {resource} to {res.winner.agent} ({resolver.name} policy: {res.why})",
                    causes=(c.seq, detected),
                )

    # 6. grounding.
    verifier = run.config.policy.verifier
    grounded: list[tuple[_Pending, list[str]]] = []
    hallucinated: list[str] = []
    for p, names in confident:
        if p.seq in losers:
            continue
        names.append("conflict")
        if verifier is not None and p.proposal.claims:
            bad = None
            for claim in p.proposal.claims:
                why = verifier.unsupported(claim, run.lookup)
                if why is not None:
                    bad = (claim, why)
                    break
            if bad is not None:
                claim, why = bad
                batch.add(
                    HallucinationDetected(agent=p.agent, proposal=p.seq, claim=claim, reason=why),
                    tick=tick,
                    agent=p.agent,
                    causes=(p.seq, *claim.evidence),
                )
                batch.reject(tick, p.agent, p.seq, "grounding", why)
                hallucinated.append(p.agent)
                continue
            names.append(verifier.name)
        grounded.append((p, names))

    # 7. approval for high-impact tools (committed first: the run visibly waits).
    approved: list[tuple[_Pending, list[str]]] = []
    for p, names in grounded:
        if p.proposal.action == "tool" and run.tools.get(str(p.proposal.args["tool"])).high_impact:
            tool_name = str(p.proposal.args["tool"])
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
            run.commit(batch)
            decision = await run.decide_approval(
                p.seq, p.agent, tool_name, p.proposal.args.get("args", {})
            )
            batch.rebase()  # a decision from the ledger moved the head
            if decision.granted:
                if not decision.recorded:
                    batch.add(
                        ApprovalGranted(proposal=p.seq, by=decision.by, reason=decision.reason),
                        tick=tick,
                        agent=p.agent,
                        causes=(p.seq,),
                    )
                names.append("approval")
            else:
                if not decision.recorded:
                    batch.add(
                        ApprovalDenied(proposal=p.seq, by=decision.by, reason=decision.reason),
                        tick=tick,
                        agent=p.agent,
                        causes=(p.seq,),
                    )
                batch.reject(tick, p.agent, p.seq, "approval", decision.reason or "denied")
                continue
        approved.append((p, names))

    # 8. accept and commit effects; tool calls are recorded as started before they run.
    # The budget is checked again for tool calls: the calls accepted before them in this
    # tick are spent by now, and together they must not overrun it.
    calls: list[tuple[_Pending, int, str, dict[str, Any]]] = []
    budget = BudgetCheck()
    for p, names in approved:
        if p.proposal.action == "tool":
            ctx = CheckContext(
                p.agent, p.role, run.allowed_tools(p.agent), run.fold.peek(), run.tools
            )
            verdict = budget.check(p.proposal, ctx)
            if not verdict.ok:
                batch.reject(tick, p.agent, p.seq, verdict.check, verdict.reason)
                continue
        batch.add(
            ProposalAccepted(proposal=p.seq, agent=p.agent, checks=tuple(names)),
            tick=tick,
            agent=p.agent,
            causes=(p.seq,),
        )
        for claim in p.proposal.claims:
            batch.add(
                BeliefUpdated(
                    agent=p.agent, key=claim.key, value=claim.value, evidence=claim.evidence
                ),
                tick=tick,
                agent=p.agent,
                causes=(p.seq, *claim.evidence),
            )
        args = p.proposal.args
        effect: Payload | None = None
        match p.proposal.action:
            case "remember":
                effect = MemoryUpdated(agent=p.agent, key=str(args["key"]), value=args.get("value"))
            case "plan":
                effect = PlanUpdated(agent=p.agent, key=str(args["key"]), value=args.get("value"))
            case "message":
                effect = MessageSent(
                    sender=p.agent, to=str(args["to"]), content=args.get("content")
                )
            case "spawn":
                helper = run.next_explorer_name()
                await run.spawn_explorer(batch, tick, helper, str(args["question"]), p.agent, p.seq)
            case "finish":
                await run.finish_agent(batch, tick, p.agent, args.get("result"), p.seq)
            case "tool":
                tool = run.tools.get(str(args["tool"]))
                raw_args: Any = args.get("args", {})
                targs = tool.validate(dict(raw_args))
                call_id = f"c{batch.next_seq}"
                started = batch.add(
                    ToolStarted(
                        call_id=call_id,
                        agent=p.agent,
                        tool=tool.name,
                        args=targs,
                        idempotent=tool.idempotent,
                    ),
                    tick=tick,
                    agent=p.agent,
                    causes=(p.seq,),
                )
                calls.append((p, started, call_id, targs))
        if effect is not None:
            batch.add(effect, tick=tick, agent=p.agent, causes=(p.seq,))

    if calls:
        run.commit(batch)
        failed = await _execute(run, batch, tick, calls)
        invalid |= bool(failed)
        # 9. supervisor reactions to tool failures, then kills and the restore.
        if run.config.policy.fail_agent_on_tool_error:
            await run.settle(batch, tick, failed)
    if hallucinated:
        invalid = True
        await run.kill_and_restore(batch, tick, hallucinated)

    # 10. measure and close the tick.
    before = run.fold.peek()["progress"]
    progress = max(0.0, min(1.0, float(run.config.progress(run.fold.peek()))))
    batch.add(
        TickCompleted(
            tick=tick,
            progress=progress,
            delta=round(progress - before, 6),
            valid=not invalid and not run.tick_had_failures(tick),
            state_hash=run.fold.hash(),
        ),
        tick=tick,
    )
    run.commit(batch)


async def _execute(
    run: Run, batch: Any, tick: int, calls: list[tuple[_Pending, int, str, dict[str, Any]]]
) -> list[str]:
    """Run the tick's tool calls concurrently and record results in call order.

    An idempotent tool with a retry policy is tried again after a failure or timeout: the
    failure is recorded, then a new ``tool.started`` (``attempt`` + 1) is committed before the
    call runs again, after the policy's back-off. Only the last failure crashes the agent.
    Returns the agents whose calls failed for good.
    """
    crash = run.config.policy.fail_agent_on_tool_error
    failed: list[str] = []
    attempts: list[tuple[_Pending, int, str, dict[str, Any], int]] = [
        (p, started, call_id, targs, 1) for p, started, call_id, targs in calls
    ]
    while attempts:
        tools = [run.tools.get(str(p.proposal.args["tool"])) for p, *_ in attempts]
        futures = [
            run.process(p.agent).execute(
                tool, targs, crash_on_failure=crash and not _retries(tool, attempt)
            )
            for tool, (p, _, _, targs, attempt) in zip(tools, attempts, strict=True)
        ]
        outcomes: list[Any] = list(await asyncio.gather(*futures, return_exceptions=True))
        again: list[tuple[_Pending, int, str, dict[str, Any], int]] = []
        backoff = 0.0
        for tool, (p, started, call_id, targs, attempt), outcome in zip(
            tools, attempts, outcomes, strict=True
        ):
            if not isinstance(outcome, ToolOutcome):
                outcome = ToolOutcome("failed", error=type(outcome).__name__, message=str(outcome))
            ended = _record_outcome(batch, tick, p.agent, tool, call_id, started, outcome)
            if outcome.status == "completed":
                continue
            if _retries(tool, attempt):
                backoff = max(backoff, tool.retry.backoff_s * 2 ** (attempt - 1))
                again.append((p, ended, call_id, targs, attempt + 1))
            else:
                failed.append(p.agent)
        attempts = []
        if again:
            run.commit(batch)
            await asyncio.sleep(backoff)
            for p, cause, call_id, targs, attempt in again:
                tool = run.tools.get(str(p.proposal.args["tool"]))
                started = batch.add(
                    ToolStarted(
                        call_id=call_id,
                        agent=p.agent,
                        tool=tool.name,
                        args=targs,
                        idempotent=tool.idempotent,
                        attempt=attempt,
                    ),
                    tick=tick,
                    agent=p.agent,
                    causes=(cause,),
                )
                attempts.append((p, started, call_id, targs, attempt))
            run.commit(batch)
    return failed


def _retries(tool: Tool, attempt: int) -> bool:
    """Whether a failed ``attempt`` of ``tool`` is tried again."""
    return tool.idempotent and attempt < tool.retry.attempts


def _record_outcome(
    batch: Any, tick: int, agent: str, tool: Tool, call_id: str, started: int, outcome: ToolOutcome
) -> int:
    payload: Payload
    if outcome.status == "completed":
        payload = ToolCompleted(call_id=call_id, agent=agent, tool=tool.name, result=outcome.result)
    elif outcome.status == "timeout":
        payload = ToolTimeout(
            call_id=call_id, agent=agent, tool=tool.name, timeout_s=tool.timeout_s
        )
    else:
        payload = ToolFailed(
            call_id=call_id,
            agent=agent,
            tool=tool.name,
            error=outcome.error,
            message=outcome.message,
        )
    seq: int = batch.add(payload, tick=tick, agent=agent, causes=(started,))
    return seq
