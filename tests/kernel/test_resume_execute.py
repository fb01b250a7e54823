"""Resume and parked approvals run their tool calls through the tick's execute stage.

An idempotent call a stop interrupted, and a parked high-impact call granted after a resume,
run in their agent's process with the tool's retries, and a call that fails for good crashes
its agent, whose supervisor restarts it: the same records as a call made in a tick.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telic.clock import VirtualClock
from telic.kernel import Kernel, RunConfig
from telic.policy import Policy
from telic.proposal import Proposal
from telic.tools import RetryPolicy, Tool, tool

from .kit import Calls, Played, agent, call, config, finish, new_ledger, on_virtual_time, stuck_tool


def _flaky(name: str, failures: int, *, attempts: int, high_impact: bool = False) -> Tool:
    """An idempotent tool that fails ``failures`` times, then answers."""
    tries = 0

    @tool(
        name=name,
        timeout=5.0,
        idempotent=True,
        high_impact=high_impact,
        retry=RetryPolicy(attempts=attempts, backoff_s=0.5),
    )
    async def flaky(x: int) -> dict[str, int]:
        nonlocal tries
        tries += 1
        if tries <= failures:
            raise ConnectionError(f"try {tries}")
        return {"x": x}

    return flaky


def _interrupted(ledger: Any) -> int:
    """Run ``r`` until its idempotent ``fetch`` call hangs, then stop the process; the head."""
    started = asyncio.Event()
    cfg = config(
        agent("a", call("fetch", x=2), tools=["fetch"]),
        tools=[stuck_tool(Calls(), started, name="fetch", idempotent=True, timeout=3600)],
    )

    async def scenario(clock: VirtualClock) -> None:
        run = await Kernel(ledger, clock=clock).boot(cfg, run_id="r")
        task = asyncio.create_task(run.until_done())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    on_virtual_time(scenario)
    return ledger.run("r").head


def _resume(ledger: Any, cfg: RunConfig) -> str:
    async def scenario(clock: VirtualClock) -> str:
        run = await Kernel(ledger, clock=clock).resume("r", cfg)
        return (await run.until_done()).status

    return on_virtual_time(scenario)


def _trail(played: Played, head: int) -> list[tuple[str, Any]]:
    return [
        (t.kind, t.data.get("attempt") if t.kind == "tool.started" else None)
        for t in played.transitions()[head:]
        if t.kind.startswith(("tool.", "agent.failed", "agent.restarted"))
    ]


def test_a_call_rerun_on_resume_is_retried_as_its_tool_allows() -> None:
    ledger = new_ledger()
    head = _interrupted(ledger)
    cfg = config(
        agent("a", finish("done"), tools=["fetch"]),
        tools=[_flaky("fetch", 1, attempts=3)],
    )
    assert _resume(ledger, cfg) == "completed"
    assert _trail(Played(ledger, "r"), head) == [
        ("tool.started", 2),
        ("tool.failed", None),
        ("tool.started", 3),
        ("tool.completed", None),
    ]


def test_a_call_rerun_on_resume_that_fails_for_good_crashes_its_agent_under_its_supervisor() -> (
    None
):
    ledger = new_ledger()
    head = _interrupted(ledger)
    cfg = config(
        agent("a", finish("done"), tools=["fetch"]),
        tools=[_flaky("fetch", 5, attempts=2)],
    )
    assert _resume(ledger, cfg) == "completed"
    played = Played(ledger, "r")
    assert _trail(played, head) == [
        ("tool.started", 2),
        ("tool.failed", None),
        ("agent.failed", None),
        ("agent.restarted", None),
    ]
    assert played.state()["agents"]["a"]["restarts"] == 1


def test_a_parked_call_granted_after_a_resume_is_retried_in_its_agent() -> None:
    ledger = new_ledger()
    asked = asyncio.Event()

    async def slow(agent_name: str, tool_name: str, args: Any) -> bool | None:
        asked.set()
        await asyncio.sleep(10 * 24 * 3600)
        return True

    async def yes(agent_name: str, tool_name: str, args: Any) -> bool | None:
        return True

    def launching(*steps: Proposal, approver: Any, launch: Tool) -> RunConfig:
        return config(
            agent("a", *steps, tools=["launch"]),
            tools=[launch],
            approver=approver,
            policy=Policy(approval_timeout_s=30 * 24 * 3600),
        )

    async def crash(clock: VirtualClock) -> None:
        first = launching(
            call("launch", x=1),
            approver=slow,
            launch=_flaky("launch", 0, attempts=1, high_impact=True),
        )
        run = await Kernel(ledger, clock=clock).boot(first, run_id="r")
        task = asyncio.create_task(run.until_done())
        await asked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    on_virtual_time(crash)
    head = ledger.run("r").head
    again = launching(
        finish(), approver=yes, launch=_flaky("launch", 1, attempts=2, high_impact=True)
    )
    assert _resume(ledger, again) == "completed"
    played = Played(ledger, "r")
    assert _trail(played, head) == [
        ("tool.started", 1),
        ("tool.failed", None),
        ("tool.started", 2),
        ("tool.completed", None),
    ]
    assert played.one("tool.completed").data["result"] == {"x": 1}
