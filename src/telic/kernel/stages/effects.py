"""Stage 8, commit effects: what the surviving proposals asked for, recorded before it runs.

The budget is checked again for tool calls: the calls accepted before them in this tick are
spent by now, and together they must not overrun it. Each accepted proposal gets
``proposal.accepted`` (with the checks it passed), ``belief.updated`` for its claims, and its
effect: ``memory.updated``, ``plan.updated``, ``message.sent``, an explorer spawned, the agent
finished, or ``tool.started`` for a call the execute stage runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telic.kernel.guard import Failed
from telic.kernel.stages.records import Passing, Tick, ToolCall
from telic.kernel.stages.shared import agent_limit
from telic.kinds import (
    BeliefUpdated,
    MemoryUpdated,
    MessageSent,
    Payload,
    PlanUpdated,
    ProposalAccepted,
    ToolStarted,
)
from telic.minds.base import Mind
from telic.policy import BudgetCheck, CheckContext
from telic.tools import Tool

__all__ = ["commit_effects", "start_call"]


async def commit_effects(t: Tick, passing: Sequence[Passing]) -> tuple[ToolCall, ...]:
    """Accept and record the effects of ``passing``; the tool calls to run, in agent order."""
    run, batch, tick = t.run, t.batch, t.number
    calls: list[ToolCall] = []
    budget = BudgetCheck()
    spawned: dict[int, Mind] = {}
    for each in passing:
        p = each.made
        if p.proposal.action == "spawn":
            mind = run.make_explorer(str(p.proposal.args["question"]), p.agent)
            if isinstance(mind, Failed):
                batch.reject(tick, p.agent, p.seq, "spawn", f"the explorer factory failed ({mind})")
                continue
            spawned[p.seq] = mind
        if p.proposal.action == "tool":
            ctx = CheckContext(p.agent, p.role, run.allowed_tools(p.agent), run.state, run.tools)
            verdict = budget.check(p.proposal, ctx)
            if not verdict.ok:
                limit = agent_limit(budget, verdict)
                batch.reject(tick, p.agent, p.seq, verdict.check, verdict.reason, limit=limit)
                continue
        batch.add(
            ProposalAccepted(proposal=p.seq, agent=p.agent, checks=each.checks),
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
                calls.append(start_call(t, p.agent, tool, dict(raw_args), p.seq))
        if effect is not None:
            batch.add(effect, tick=tick, agent=p.agent, causes=(p.seq,))
    return tuple(calls)


def start_call(t: Tick, agent: str, tool: Tool, raw_args: dict[str, Any], cause: int) -> ToolCall:
    """Record ``tool.started`` for ``agent``'s call of ``tool`` (its arguments validated),
    caused by the proposal at ``cause``: the call the execute stage runs."""
    args = tool.validate(raw_args)
    call_id = f"c{t.batch.next_seq}"
    started = t.batch.add(
        ToolStarted(
            call_id=call_id,
            agent=agent,
            tool=tool.name,
            args=args,
            idempotent=tool.idempotent,
            source=tool.source,
            version=tool.version,
        ),
        tick=t.number,
        agent=agent,
        causes=(cause,),
    )
    return ToolCall(agent, tool, call_id, args, started)
