"""Helpers for the kernel's tests: proposals, scripted agents, counting tools, a runner on
virtual time, and readers of what the ledger recorded.

Every ledger made with :func:`new_ledger` is checked after each test (``conftest.py``): each
of its runs must verify and replay (its recorded tick state hashes must match the fold).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from telic.clock import VirtualClock
from telic.kernel import AgentSpec, Kernel, RunConfig, RunResult
from telic.kinds import Claim, ModelCalled
from telic.ledger import BaseLedger, open_ledger
from telic.minds.base import ScriptedMind, Step
from telic.proposal import Proposal
from telic.tools import Tool, tool
from telic.transition import Transition

T = TypeVar("T")

OPENED: list[BaseLedger] = []
"""Ledgers opened by this test (emptied by the conftest fixture)."""

EFFECT_KINDS = frozenset({"tool.started", "memory.updated", "plan.updated", "message.sent"})
"""Transitions that commit what a proposal asked for."""


def new_ledger(url: str = "memory://") -> BaseLedger:
    ledger = open_ledger(url)
    OPENED.append(ledger)
    return ledger


# -- proposals ---------------------------------------------------------------------------


def call(
    tool_name: str, confidence: float = 1.0, claims: Sequence[Claim] = (), **args: Any
) -> Proposal:
    return Proposal(
        action="tool",
        args={"tool": tool_name, "args": args},
        confidence=confidence,
        claims=tuple(claims),
    )


def remember(
    key: str, value: Any, confidence: float = 1.0, claims: Sequence[Claim] = ()
) -> Proposal:
    return Proposal(
        action="remember",
        args={"key": key, "value": value},
        confidence=confidence,
        claims=tuple(claims),
    )


def plan(key: str, value: Any, *, cost: float | None = None) -> Proposal:
    return Proposal(action="plan", args={"key": key, "value": value}, cost=cost)


def message(to: str, content: Any) -> Proposal:
    return Proposal(action="message", args={"to": to, "content": content})


def finish(result: Any = None) -> Proposal:
    return Proposal(action="finish", args={"result": result})


def spent(proposal: Proposal, agent: str, *, tokens: int = 0, cost: float = 0.0) -> Proposal:
    """``proposal`` as if a model call of ``tokens`` and ``cost`` had produced it."""
    usage = ModelCalled(
        agent=agent,
        model="test-model",
        request_digest=f"d-{agent}-{tokens}-{cost}",
        response={},
        input_tokens=tokens,
        cost=cost,
    )
    return proposal.model_copy(update={"model_calls": (usage,)})


def agent(
    name: str,
    *steps: Step,
    role: str = "worker",
    tools: Sequence[str] = (),
    restart: Literal["permanent", "transient", "temporary"] = "permanent",
    priority: int = 0,
    repeat_last: bool = False,
) -> AgentSpec:
    """An agent with a strict scripted mind."""
    return AgentSpec(
        name=name,
        role=role,
        mind=ScriptedMind(list(steps), name=name, repeat_last=repeat_last),
        tools=tuple(tools),
        restart=restart,
        priority=priority,
    )


# -- tools -------------------------------------------------------------------------------


@dataclass
class Calls:
    """Arguments each counting tool was called with, by tool name."""

    by_tool: dict[str, list[dict[str, Any]]] = field(
        default_factory=dict[str, list[dict[str, Any]]]
    )

    def count(self, name: str) -> int:
        return len(self.by_tool.get(name, []))

    def note(self, name: str, **args: Any) -> None:
        self.by_tool.setdefault(name, []).append(args)


def echo_tool(
    calls: Calls, *, name: str = "echo", idempotent: bool = True, high_impact: bool = False
) -> Tool:
    """``echo(x: int) -> {"x": x}``, counting its calls."""

    @tool(name=name, idempotent=idempotent, high_impact=high_impact, timeout=5.0)
    async def echo(x: int) -> dict[str, int]:
        calls.note(name, x=x)
        return {"x": x}

    return echo


def stuck_tool(
    calls: Calls, started: asyncio.Event | None = None, *, name: str = "stuck", **options: Any
) -> Tool:
    """A tool that never returns (until its timeout or a cancellation)."""

    @tool(name=name, **options)
    async def stuck(x: int) -> dict[str, int]:
        calls.note(name, x=x)
        if started is not None:
            started.set()
        await asyncio.sleep(10 * 24 * 3600)
        return {"x": x}

    return stuck


# -- running -----------------------------------------------------------------------------


@dataclass
class Played:
    """A run as its ledger holds it."""

    ledger: BaseLedger
    run_id: str
    result: RunResult | None = None

    def transitions(self) -> list[Transition]:
        return list(self.ledger.read(self.run_id))

    def kinds(self) -> list[str]:
        return [t.kind for t in self.transitions()]

    def of(self, kind: str, agent: str | None = None) -> list[Transition]:
        return [
            t for t in self.transitions() if t.kind == kind and (agent is None or t.agent == agent)
        ]

    def one(self, kind: str, agent: str | None = None) -> Transition:
        found = self.of(kind, agent)
        assert len(found) == 1, f"expected one {kind}, got {[t.data for t in found]}"
        return found[0]

    def state(self) -> dict[str, Any]:
        return self.ledger.state_at(self.run_id)

    def rejections(self, agent: str | None = None) -> list[tuple[str, str]]:
        """``(check, reason)`` of each recorded rejection."""
        return [(t.data["check"], t.data["reason"]) for t in self.of("proposal.rejected", agent)]

    def observations(self, agent: str) -> list[dict[str, Any]]:
        return list(self.state()["agents"][agent]["observations"])

    def effects_of(self, proposal: int) -> list[Transition]:
        return [t for t in self.transitions() if t.kind in EFFECT_KINDS and proposal in t.causes]


def on_virtual_time(scenario: Callable[[VirtualClock], Coroutine[Any, Any, T]]) -> T:
    """Run ``scenario(clock)`` on a fresh virtual clock; fail if it leaves a task behind."""
    clock = VirtualClock()

    async def main() -> T:
        result = await scenario(clock)
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"orphan tasks: {leftover}"
        return result

    return clock.run(main())


def play(
    config: RunConfig,
    *,
    max_ticks: int | None = None,
    ledger: BaseLedger | None = None,
    run_id: str = "run",
) -> Played:
    """Boot ``config`` on virtual time and drive it to its end (or ``max_ticks``)."""
    led = ledger or new_ledger()

    async def scenario(clock: VirtualClock) -> RunResult:
        return await Kernel(led, clock=clock).run(config, max_ticks=max_ticks, run_id=run_id)

    result = on_virtual_time(scenario)
    return Played(led, run_id, result)


def config(*agents: AgentSpec, **options: Any) -> RunConfig:
    return RunConfig(goal="test the kernel", agents=agents, **options)
