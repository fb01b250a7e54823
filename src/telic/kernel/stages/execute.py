"""Stage 9, execute: tool calls run in their agents' processes, under supervision.

The batch (with each call's ``tool.started``) is committed first, then the calls run
concurrently, each in its agent's process under the tool's timeout; the results are recorded
in call order (``tool.completed``, ``tool.failed``, ``tool.timeout``). An idempotent tool with
a retry policy is tried again after a failure or timeout: the failure is recorded, then a new
``tool.started`` (``attempt`` + 1) is committed before the call runs again, after the policy's
back-off. Only the last failure crashes the agent (when the policy says a tool failure fails
its agent), and the supervisor's reactions to those crashes are recorded here.

The tick runs its calls through this stage, and so do :meth:`Kernel.resume
<telic.kernel.Kernel.resume>` (an idempotent call a stop interrupted) and a parked approval
granted after a resume (:func:`telic.kernel.approval.finish_parked`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from telic.kernel.process import AgentCrash, ToolOutcome
from telic.kernel.stages.records import Executed, Tick, ToolCall
from telic.kernel.stages.shared import SLACK_S, answers
from telic.kinds import Payload, ToolCompleted, ToolFailed, ToolStarted, ToolTimeout
from telic.tools import Tool

__all__ = ["execute", "outcome_record"]


async def execute(t: Tick, calls: Sequence[ToolCall]) -> Executed:
    """Commit the batch, run ``calls`` (retrying as their tools allow), record the outcomes
    and the supervisor's reactions; nothing is committed when there are no calls."""
    if not calls:
        return Executed(())
    run, batch, tick = t.run, t.batch, t.number
    await run.commit(batch)
    crash = run.config.policy.fail_agent_on_tool_error
    grace = run.config.policy.cancel_grace_s
    failed: list[str] = []
    attempts: list[ToolCall] = list(calls)
    while attempts:
        futures = [
            run.process(c.agent).execute(
                c.tool, c.args, crash_on_failure=crash and not retries(c.tool, c.attempt)
            )
            for c in attempts
        ]
        limit = max(c.tool.timeout_s for c in attempts) + 2 * grace + SLACK_S
        outcomes = await answers(futures, limit)
        again: list[ToolCall] = []
        backoff = 0.0
        for c, outcome in zip(attempts, outcomes, strict=True):
            if isinstance(outcome, AgentCrash):  # the agent was stopped while it ran
                outcome = ToolOutcome("failed", error=outcome.error, message=outcome.message)
            elif not isinstance(outcome, ToolOutcome):
                why = f"no answer within {limit:g} s (the last-resort deadline of a tick)"
                outcome = ToolOutcome("timeout", error="ToolTimeout", message=why)
            ended = batch.add(
                outcome_record(c, outcome), tick=tick, agent=c.agent, causes=(c.started,)
            )
            if outcome.status == "completed":
                continue
            if retries(c.tool, c.attempt):
                backoff = max(backoff, c.tool.retry.backoff_s * 2 ** (c.attempt - 1))
                again.append(dataclasses.replace(c, started=ended, attempt=c.attempt + 1))
            elif c.agent not in failed:
                failed.append(c.agent)
        attempts = []
        if again:
            await run.commit(batch)
            await asyncio.sleep(backoff)
            for c in again:
                started = batch.add(
                    ToolStarted(
                        call_id=c.call_id,
                        agent=c.agent,
                        tool=c.tool.name,
                        args=c.args,
                        idempotent=c.tool.idempotent,
                        attempt=c.attempt,
                        source=c.tool.source,
                        version=c.tool.version,
                    ),
                    tick=tick,
                    agent=c.agent,
                    causes=(c.started,),
                )
                attempts.append(dataclasses.replace(c, started=started))
            await run.commit(batch)
    if crash:  # the supervisor's reactions to the crashes of the calls that failed for good
        await run.settle(batch, tick, failed)
    return Executed(tuple(failed))


def retries(tool: Tool, attempt: int) -> bool:
    """Whether a failed ``attempt`` of ``tool`` is tried again."""
    return tool.idempotent and attempt < tool.retry.attempts


def outcome_record(call: ToolCall, outcome: ToolOutcome) -> Payload:
    """The record of ``call``'s ``outcome``."""
    tool = call.tool
    if outcome.status == "completed":
        return ToolCompleted(
            call_id=call.call_id, agent=call.agent, tool=tool.name, result=outcome.result
        )
    if outcome.status == "timeout":
        return ToolTimeout(
            call_id=call.call_id, agent=call.agent, tool=tool.name, timeout_s=tool.timeout_s
        )
    return ToolFailed(
        call_id=call.call_id,
        agent=call.agent,
        tool=tool.name,
        error=outcome.error,
        message=outcome.message,
    )
