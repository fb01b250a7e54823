"""One tick: ask every live agent, validate in a fixed order, commit, execute, measure.

The order of a tick, every step a transition:

1. ``tick.started``; every live agent's mind is asked concurrently; each model call is
   written as it completes (``model.called`` / ``model.failed``, see
   :mod:`telic.kernel.calls`), so these are in completion order;
2. in agent order (never arrival order): ``proposal.made``;
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
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from telic.errors import MalformedOutput
from telic.frozen import FrozenDict
from telic.kernel import guard
from telic.kernel.calls import TickCalls, reentry
from telic.kernel.guard import Failed, safe_text
from telic.kernel.intake import Admitted, Refused
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
    ProposalRejected,
    RunPaused,
    TickCompleted,
    TickStarted,
    ToolCompleted,
    ToolFailed,
    ToolStarted,
    ToolTimeout,
)
from telic.minds.base import Mind
from telic.policy import (
    AllowlistCheck,
    ArgumentsCheck,
    BudgetCheck,
    Candidate,
    CheckContext,
    LoopCheck,
    Resolution,
    SchemaCheck,
    Verdict,
    find_conflicts,
)
from telic.proposal import Proposal
from telic.reducer import State
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
    batch = run.batch()
    again = reentry(run)  # a resumed tick whose minds were being asked: ask it again
    if again is None:
        tick = run.fold.peek()["tick"] + 1
        batch.add(TickStarted(tick=tick), tick=tick)
        view_state = TickState(run.fold, tick)  # copied if read, shared read-only by the minds
    else:
        tick, view_state = again.tick, again.state
    invalid = False
    policy = run.config.policy

    live = run.live_agents()
    model_calls = TickCalls(run, batch, tick, view_state)  # written as they end
    answered: Mapping[str, Mapping[str, Any]] = again.recorded if again is not None else {}
    futures = [
        run.process(name).propose(
            model_calls.view(run.view(name, tick, view_state), answered.get(name))
        )
        for name in live
    ]
    limit = policy.mind_timeout_s + 2 * policy.cancel_grace_s + _SLACK_S
    replies = await _answers(futures, limit)
    view_state.close()

    pending: list[_Pending] = []
    crashed: list[str] = []
    for order, (name, reply) in enumerate(zip(live, replies, strict=True)):
        role = run.role(name)
        if isinstance(reply, Admitted):
            proposal = reply.proposal
            for call in proposal.model_calls:
                batch.add(call, tick=tick, agent=name)
            seq = batch.add_encoded("proposal.made", reply.made, reply.raw, tick=tick, agent=name)
            pending.append(_Pending(name, role, order, proposal, seq, reply.json))
            continue
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
            check, reason = reply.check, str(reply)
        elif isinstance(reply, Refused):
            check, reason = "schema", reply.reason
        else:  # no answer by the last-resort deadline: the process is stopped and restarted
            invalid = True
            why = f"no answer within {limit:g} s (the last-resort deadline of a tick)"
            if run.kill(name, reason=why):
                crashed.append(name)
            continue
        batch.add(ProposalRejected(agent=name, check=check, reason=reason), tick=tick, agent=name)
    await run.settle(batch, tick, crashed)
    if crashed:  # a group restart or a supervisor giving up may have stopped other agents
        pending = _drop_stopped(run, batch, tick, pending)

    # 3. per-proposal checks, in the fixed order; the first refusal is the verdict. User
    # checks (any but telic's own) see the state read-only, and one that raises refuses the
    # proposal it was checking; telic's own read the live state, unguarded.
    checks = [(c, _name(c), type(c) not in _OWN_CHECKS) for c in policy.checks()]
    passed: list[tuple[_Pending, list[str]]] = []
    live_state = run.fold.peek()
    frozen_state = FrozenDict(live_state) if any(user for *_, user in checks) else live_state
    for p in pending:
        allowed = run.allowed_tools(p.agent)
        ctx = CheckContext(p.agent, p.role, allowed, live_state, run.tools, p.json)
        user_ctx = CheckContext(p.agent, p.role, allowed, frozen_state, run.tools, p.json)
        names: list[str] = []
        refused = False
        for check, name, user in checks:
            verdict = (
                guard.attempt(check.check, p.proposal, user_ctx)
                if user
                else check.check(p.proposal, ctx)
            )
            if not isinstance(verdict, Verdict):
                why = (
                    f"the check failed ({verdict})"
                    if isinstance(verdict, Failed)  # pyright: ignore[reportUnnecessaryIsInstance]
                    else f"the check returned {type(verdict).__name__}, not a Verdict"
                )
                batch.reject(tick, p.agent, p.seq, name, why)
                refused = True
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
                )
                refused = True
                break
            names.append(name)
        if not refused:
            passed.append((p, names))

    # 4. exploration instead of low-confidence actions.
    threshold = policy.exploration_threshold
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
            mind = run.make_explorer(question, p.agent)
            if isinstance(mind, Failed):
                why = f"confidence {p.proposal.confidence:g} is below {threshold:g} and the explorer factory failed ({mind})"
                batch.reject(tick, p.agent, p.seq, "confidence", why)
                continue
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
            await run.spawn_explorer(batch, tick, explorer, question, p.agent, cause, mind)
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
        resolver = policy.resolver_for(resource)
        policy_name = _name(resolver)
        res = guard.attempt(resolver.resolve, resource, group, FrozenDict(run.fold.peek()))
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

    # 6. grounding.
    verifier = policy.verifier
    grounded: list[tuple[_Pending, list[str]]] = []
    hallucinated: list[str] = []
    for p, names in confident:
        if p.seq in losers:
            continue
        names.append("conflict")
        if verifier is not None and p.proposal.claims:
            bad = None
            broken: Failed | None = None
            for claim in p.proposal.claims:
                why = guard.attempt(verifier.unsupported, claim, run.lookup)
                if isinstance(why, Failed):
                    broken = why
                    break
                if why is not None:
                    bad = (claim, safe_text(str(why)))
                    break
            if broken is not None:
                batch.reject(tick, p.agent, p.seq, "grounding", f"the verifier failed ({broken})")
                continue
            if bad is not None:
                claim, why = bad
                # An invented citation is the finding, not a cause: only what exists is cited.
                cited = tuple(e for e in claim.evidence if 0 < e < batch.next_seq)
                batch.add(
                    HallucinationDetected(agent=p.agent, proposal=p.seq, claim=claim, reason=why),
                    tick=tick,
                    agent=p.agent,
                    causes=(p.seq, *cited),
                )
                batch.reject(tick, p.agent, p.seq, "grounding", why)
                hallucinated.append(p.agent)
                continue
            names.append(_name(verifier))
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
    spawned: dict[int, Mind] = {}
    for p, names in approved:
        if p.proposal.action == "spawn":
            mind = run.make_explorer(str(p.proposal.args["question"]), p.agent)
            if isinstance(mind, Failed):
                batch.reject(tick, p.agent, p.seq, "spawn", f"the explorer factory failed ({mind})")
                continue
            spawned[p.seq] = mind
        if p.proposal.action == "tool":
            ctx = CheckContext(
                p.agent, p.role, run.allowed_tools(p.agent), FrozenDict(run.fold.peek()), run.tools
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
                await run.spawn_explorer(
                    batch, tick, helper, str(args["question"]), p.agent, p.seq, spawned[p.seq]
                )
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
                        source=tool.source,
                        version=tool.version,
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
    measured = guard.attempt(_measure, run.config.progress, FrozenDict(run.fold.peek()))
    if isinstance(measured, Failed):
        run.fault = f"the progress function failed ({measured})"
        invalid, progress = True, before
    else:
        progress = max(0.0, min(1.0, measured))
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
        grace = run.config.policy.cancel_grace_s
        limit = max(t.timeout_s for t in tools) + 2 * grace + _SLACK_S
        outcomes = await _answers(futures, limit)
        again: list[tuple[_Pending, int, str, dict[str, Any], int]] = []
        backoff = 0.0
        for tool, (p, started, call_id, targs, attempt), outcome in zip(
            tools, attempts, outcomes, strict=True
        ):
            if isinstance(outcome, AgentCrash):  # the agent was stopped while it ran
                outcome = ToolOutcome("failed", error=outcome.error, message=outcome.message)
            elif not isinstance(outcome, ToolOutcome):
                why = f"no answer within {limit:g} s (the last-resort deadline of a tick)"
                outcome = ToolOutcome("timeout", error="ToolTimeout", message=why)
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


_OWN_CHECKS: Final = frozenset(
    {SchemaCheck, AllowlistCheck, ArgumentsCheck, BudgetCheck, LoopCheck}
)
"""telic's own checks (exact types: a subclass is user code): trusted with the live state."""

_SLACK_S: Final = 1.0
"""Seconds past a call's own deadline (and its cancellation grace) that a tick waits for an
answer before it gives up on the agent: the last resort, never reached while the agent
processes answer every request (they do, on every path)."""


class _Unanswered:
    """The answer of a request nobody answered by the tick's last-resort deadline."""


async def _answers(futures: list[asyncio.Future[Any]], limit: float) -> list[Any]:
    """Each future's result or exception, or :class:`_Unanswered` past ``limit`` seconds."""
    if not futures:
        return []
    try:
        async with asyncio.timeout(limit):
            await asyncio.gather(*futures, return_exceptions=True)
    except TimeoutError:
        pass  # gather cancelled the late ones; the process skips a request whose reply is done
    return [
        _Unanswered() if fut.cancelled() else (fut.exception() or fut.result()) for fut in futures
    ]


def _name(part: object) -> str:
    """The name a check, resolver or verifier gives itself (user code: read defensively)."""
    name = guard.attempt(getattr, part, "name", type(part).__name__)
    return safe_text(str(name) if isinstance(name, str) else type(part).__name__, 200)


def _measure(progress: Callable[[State], float], state: State) -> float:
    value = float(progress(state))
    if not math.isfinite(value):
        raise ValueError(f"progress must be a finite number, got {value!r}")
    return value


def _drop_stopped(run: Run, batch: Any, tick: int, pending: list[_Pending]) -> list[_Pending]:
    """A group restart (one_for_all, rest_for_one) stops temporary siblings for good, and a
    supervisor that gives up stops every agent, maybe after they proposed in this tick: their
    proposals are refused, never acted on (a tool call sent to a stopped agent would wait for
    it, and record a fault that never happened)."""
    kept: list[_Pending] = []
    for p in pending:
        if run.supervises(p.agent):
            kept.append(p)
        else:
            why = "its supervisor stopped the agent (a sibling's crash) before this was checked"
            batch.reject(tick, p.agent, p.seq, "supervision", why)
    return kept


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
