"""Any mix of faults from minds and tools: the run returns within its deadlines, every fault is
on record, the state is never changed from outside, and the ledger verifies and replays."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telic.kernel import AgentSpec
from telic.kernel.intake import MAX_DEPTH
from telic.minds.base import FunctionMind, View
from telic.policy import Policy
from telic.proposal import Proposal
from telic.tools import Tool, tool

from .kit import call, config, new_ledger, remember
from .test_faults import run_bounded

MIND_FAULTS = [
    "raise",
    "cancelled",
    "interrupt",
    "exit",
    "bad_str",
    "hang",
    "swallow",
    "junk",
    "big_int",
    "surrogate",
    "deep",
    "constructed",
    "huge",
    "mutate_view",
]
MIND_OK = ["remember", "tool", "finish"]
TOOL_FAULTS = ["raise", "cancelled", "interrupt", "bad_str", "hang", "swallow", "huge", "bad"]


class _BadStr(Exception):
    def __str__(self) -> str:
        raise ValueError("no str")


def _deep(n: int) -> Any:
    v: Any = 0
    for _ in range(n):
        v = [v]
    return v


async def _swallow() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(5)  # ignores the cancellation for a while, then ends


class _Plan:
    """What one agent's mind does at each call, and what it did."""

    def __init__(self, name: str, steps: list[str]) -> None:
        self.name = name
        self.steps = steps
        self.done: list[str] = []

    async def propose(self, view: View) -> Proposal:
        step = self.steps[len(self.done) % len(self.steps)]
        self.done.append(step)
        match step:
            case "raise":
                raise RuntimeError("boom")
            case "cancelled":
                raise asyncio.CancelledError
            case "interrupt":
                raise KeyboardInterrupt
            case "exit":
                raise SystemExit(1)
            case "bad_str":
                raise _BadStr
            case "hang":
                await asyncio.sleep(3600)
            case "swallow":
                await _swallow()
            case "junk":
                return {"action": "finish"}  # type: ignore[return-value]  # pyright: ignore[reportReturnType]
            case "big_int":
                return remember("k", 2**64)
            case "surrogate":
                return remember("k", "\ud800")
            case "deep":
                return remember("k", _deep(MAX_DEPTH + 5))
            case "constructed":
                return Proposal.model_construct(action="remember", args="not a dict")
            case "huge":
                return remember("k", "x" * 300_000)
            case "mutate_view":
                memory: Any = view.state.memory
                memory["vandal"] = 1
            case "tool":
                return call("t", x=len(self.done))
            case "finish":
                return Proposal(action="finish", args={"result": self.name})
            case _:
                pass
        return remember(f"k{len(self.done)}", view.tick)


def _tool(steps: list[str], done: list[str]) -> Tool:
    @tool(name="t", timeout=2.0)
    async def t(x: int) -> Any:
        step = steps[len(done) % len(steps)]
        done.append(step)
        match step:
            case "raise":
                raise ValueError("tool broke")
            case "cancelled":
                raise asyncio.CancelledError
            case "interrupt":
                raise KeyboardInterrupt
            case "bad_str":
                raise _BadStr
            case "hang":
                await asyncio.sleep(3600)
            case "swallow":
                await _swallow()
            case "huge":
                return "y" * 300_000
            case "bad":
                return {"n": 2**70}
            case _:
                pass
        return {"x": x}

    return t


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    minds=st.lists(
        st.lists(st.sampled_from(MIND_FAULTS + MIND_OK), min_size=1, max_size=6),
        min_size=1,
        max_size=3,
    ),
    tool_steps=st.lists(st.sampled_from([*TOOL_FAULTS, "ok", "ok"]), min_size=1, max_size=5),
    crash_on_tool_error=st.booleans(),
    intensity=st.integers(0, 50),
)
def test_any_mix_of_faults_ends_on_record(
    minds: list[list[str]], tool_steps: list[str], crash_on_tool_error: bool, intensity: int
) -> None:
    plans = [_Plan(f"a{i}", steps) for i, steps in enumerate(minds)]
    tool_done: list[str] = []
    cfg = config(
        *[
            AgentSpec(p.name, "worker", FunctionMind(p.propose, name=p.name), tools=("t",))
            for p in plans
        ],
        tools=[_tool(tool_steps, tool_done)],
        policy=Policy(
            mind_timeout_s=2.0,
            cancel_grace_s=0.5,
            fail_agent_on_tool_error=crash_on_tool_error,
            loop_repeats=1000,
        ),
        intensity=intensity,
        period_s=3600.0,
    )
    played, _ = run_bounded(cfg, max_ticks=6, ledger=new_ledger("memory://?max_payload=200000"))
    assert played.result is not None
    state = played.state()
    assert "vandal" not in str(state["memory"])
    # A supervisor that gives up stops every agent: a call it cut short has no fault on record
    # of its own (the run's failure is the record).
    cut = 1 if str(state["reason"]).startswith("supervisor gave up") else 0
    for plan in plans:
        faults = sum(1 for step in plan.done if step in MIND_FAULTS) - cut
        recorded = len(played.of("agent.failed", plan.name)) + sum(
            1 for check, _ in played.rejections(plan.name) if check == "schema"
        )
        assert recorded >= faults, (plan.name, plan.done, played.kinds())
    tool_faults = sum(1 for step in tool_done if step != "ok")
    tool_recorded = len(played.of("tool.failed")) + len(played.of("tool.timeout"))
    assert tool_faults - cut <= tool_recorded <= tool_faults, (tool_done, played.kinds())
