"""A tool's retry policy: idempotent tools are tried again, each attempt on record."""

from __future__ import annotations

from tests.kernel.kit import new_ledger

from telic.clock import VirtualClock
from telic.kernel import AgentSpec, Budget, Kernel, RunConfig
from telic.minds.base import ScriptedMind
from telic.proposal import Proposal
from telic.tools import RetryPolicy, tool


def _run(idempotent: bool, failures: int, attempts: int) -> tuple[list[tuple[str, int]], str, int]:
    calls = 0

    @tool(timeout=1.0, idempotent=idempotent, retry=RetryPolicy(attempts=attempts, backoff_s=0.5))
    async def flaky(x: int) -> dict[str, int]:
        """Fails ``failures`` times, then answers."""
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise ConnectionError(f"attempt {calls} failed")
        return {"x": x, "calls": calls}

    mind = ScriptedMind(
        [
            Proposal(action="tool", args={"tool": "flaky", "args": {"x": 1}}),
            Proposal(action="finish"),
        ],
        repeat_last=True,
    )
    ledger = new_ledger()
    clock = VirtualClock()
    config = RunConfig(
        goal="g",
        agents=[AgentSpec("a", "worker", mind, tools=("flaky",))],
        tools=[flaky],
        budget=Budget(ticks=6),
    )
    result = clock.run(Kernel(ledger, clock=clock).run(config))
    trail = [
        (t.kind, int(t.data.get("attempt", 0)))
        for t in ledger.read(result.run_id)
        if t.kind.startswith("tool.") or t.kind in ("agent.failed", "agent.restarted")
    ]
    return trail, result.status, calls


def test_an_idempotent_tool_is_retried_until_it_answers() -> None:
    trail, status, calls = _run(idempotent=True, failures=2, attempts=3)
    assert calls == 3
    assert trail == [
        ("tool.started", 1),
        ("tool.failed", 0),
        ("tool.started", 2),
        ("tool.failed", 0),
        ("tool.started", 3),
        ("tool.completed", 0),
    ]
    assert status == "completed"  # no crash: the call succeeded within its policy


def test_retries_run_out_and_the_last_failure_crashes_the_agent() -> None:
    trail, _, calls = _run(idempotent=True, failures=5, attempts=2)
    assert [k for k, _ in trail[:4]] == [
        "tool.started",
        "tool.failed",
        "tool.started",
        "tool.failed",
    ]
    assert ("agent.failed", 0) in trail
    assert calls >= 2


def test_a_tool_that_is_not_idempotent_is_never_retried() -> None:
    trail, _, _ = _run(idempotent=False, failures=1, attempts=3)
    assert trail[:3] == [("tool.started", 1), ("tool.failed", 0), ("agent.failed", 0)]
