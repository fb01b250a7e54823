"""Per-proposal policy checks, applied in a fixed order; each returns a verdict.

A check sees one proposal, its agent, the read-only state and the tools; never a ledger or the
bus. Users add their own by implementing :class:`Check` and passing it to :class:`Policy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from telic.canonical import encode_validated
from telic.errors import ToolArgumentsInvalid, UnknownTool
from telic.proposal import Proposal
from telic.reducer import fingerprint
from telic.state import AgentSpent, RunState
from telic.tools import ToolRegistry

__all__ = [
    "AllowlistCheck",
    "ArgumentsCheck",
    "BudgetCheck",
    "Check",
    "CheckContext",
    "LoopCheck",
    "SchemaCheck",
    "Verdict",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's answer: ``ok``, or the reason it refuses."""

    check: str
    ok: bool
    reason: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """Details for the record (e.g. the loop guard's repeat count)."""


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check may look at."""

    agent: str
    role: str
    allowed_tools: frozenset[str]
    state: RunState
    """The run's working state, typed (read-only for any check but telic's own)."""
    tools: ToolRegistry
    proposal_json: Mapping[str, Any] | None = None
    """The proposal as JSON, when the caller has it already (the kernel does)."""

    def as_json(self, proposal: Proposal) -> Mapping[str, Any]:
        if self.proposal_json is not None:
            return self.proposal_json
        return proposal.model_dump(mode="json")


@runtime_checkable
class Check(Protocol):
    @property
    def name(self) -> str:
        """The check's name, recorded in verdicts (read-only: checks are frozen dataclasses)."""
        ...

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict: ...


def _ok(name: str) -> Verdict:
    return Verdict(name, True)


_NEEDS: dict[str, tuple[str, ...]] = {
    "tool": ("tool",),
    "remember": ("key",),
    "plan": ("key",),
    "message": ("to",),
    "spawn": ("question",),
}
"""The arguments each action needs."""


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """The proposal is JSON-safe and within ``max_bytes`` once encoded."""

    max_bytes: int = 64 * 1024
    name: str = "schema"

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        # A Proposal is validated (finite numbers, JSON values) when it is built.
        size = len(encode_validated(ctx.as_json(proposal)))
        if size > self.max_bytes:
            return Verdict(
                self.name, False, f"proposal is {size} bytes, over the limit of {self.max_bytes}"
            )
        missing = [k for k in _NEEDS.get(proposal.action, ()) if k not in proposal.args]
        if missing:
            return Verdict(self.name, False, f"action {proposal.action!r} needs args {missing}")
        return _ok(self.name)


@dataclass(frozen=True, slots=True)
class AllowlistCheck:
    """Tool calls only for tools the agent's role allows."""

    name: str = "allowlist"

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        if proposal.action != "tool":
            return _ok(self.name)
        tool = str(proposal.args.get("tool"))
        if tool not in ctx.allowed_tools:
            allowed = ", ".join(sorted(ctx.allowed_tools)) or "none"
            return Verdict(
                self.name,
                False,
                f"{ctx.role} {ctx.agent!r} may not call {tool!r} (allowed: {allowed})",
            )
        if tool not in ctx.tools:
            return Verdict(self.name, False, str(UnknownTool(tool, ctx.tools.names())))
        return _ok(self.name)


@dataclass(frozen=True, slots=True)
class ArgumentsCheck:
    """Tool arguments validate against the tool's schema; a message goes to an agent of the run."""

    name: str = "arguments"

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        if proposal.action == "message":
            agents = ctx.state.agents
            to = proposal.args["to"]
            if not isinstance(to, str) or to not in agents:
                known = ", ".join(sorted(agents)) or "none"
                return Verdict(
                    self.name,
                    False,
                    f"message to {to!r}, which is not an agent of this run (agents: {known})",
                )
            return _ok(self.name)
        if proposal.action != "tool":
            return _ok(self.name)
        t = ctx.tools.get(str(proposal.args["tool"]))
        raw = proposal.args.get("args", {})
        if not isinstance(raw, dict):
            return Verdict(self.name, False, f"arguments for {t.name!r} must be an object")
        try:
            t.validate(raw)
        except ToolArgumentsInvalid as exc:
            return Verdict(self.name, False, str(exc))
        return _ok(self.name)


_AGENT_DIMENSIONS: dict[str, str] = {
    "tool_calls": "tool call",
    "model_calls": "model call",
    "tokens": "token",
    "cost": "cost",
}
"""An agent budget's dimensions, and how a rejection names them."""


def _agent_verdict(
    name: str, agent: str, dimension: str, limit: float, spent: float, why: str
) -> Verdict:
    extra = {"agent": agent, "dimension": dimension, "limit": limit, "spent": spent}
    return Verdict(name, False, f"agent {agent!r} {why}", extra)


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """Refuses what would overrun an exhausted dimension (tool calls, cost) of the run's
    budget, or of the proposing agent's own (``state["agent_budgets"]``: tool calls, model
    calls, tokens, cost). An agent's refusal carries ``extra`` = its agent, dimension, limit
    and spent, which the rejection records."""

    name: str = "budget"

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        verdict = self._run(proposal, ctx)
        if verdict.ok:
            own = ctx.state.agent_budgets.get(ctx.agent)
            if own is not None:
                return self._agent(proposal, ctx.agent, own.limits, own.spent)
        return verdict

    def _agent(
        self, proposal: Proposal, agent: str, limits: Mapping[str, float], spent: AgentSpent
    ) -> Verdict:
        if proposal.action == "tool" and "tool_calls" in limits:
            limit, used = limits["tool_calls"], spent.tool_calls
            if used >= limit:
                why = f"has spent its tool call budget of {limit:g}"
                return _agent_verdict(self.name, agent, "tool_calls", limit, used, why)
        if proposal.cost is not None and "cost" in limits:
            limit, used = limits["cost"], spent.cost
            if used + proposal.cost > limit:
                why = f"states cost {proposal.cost:g}, over what is left of its budget of {limit:g} ({limit - used:g})"
                return _agent_verdict(self.name, agent, "cost", limit, used, why)
        if proposal.action != "finish":
            for dim in ("model_calls", "tokens", "cost"):
                if dim in limits and spent.of(dim) >= limits[dim]:
                    limit, used = limits[dim], spent.of(dim)
                    why = f"has spent its {_AGENT_DIMENSIONS[dim]} budget of {limit:g}"
                    return _agent_verdict(self.name, agent, dim, limit, used, why)
        return _ok(self.name)

    def _run(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        budget = ctx.state.budget
        spent = ctx.state.spent
        if (
            proposal.action == "tool"
            and "tool_calls" in budget
            and spent.tool_calls >= budget["tool_calls"]
        ):
            return Verdict(
                self.name, False, f"tool call budget of {budget['tool_calls']:g} is spent"
            )
        if (
            proposal.cost is not None
            and "cost" in budget
            and spent.cost + proposal.cost > budget["cost"]
        ):
            left = budget["cost"] - spent.cost
            return Verdict(
                self.name, False, f"cost {proposal.cost:g} is over what is left ({left:g})"
            )
        for dim in ("tokens", "cost", "wall_s"):
            if dim in budget and spent.of(dim) >= budget[dim] and proposal.action != "finish":
                return Verdict(self.name, False, f"the {dim} budget is exhausted")
        return _ok(self.name)


@dataclass(frozen=True, slots=True)
class LoopCheck:
    """The same proposal (action and arguments) ``repeats`` times in a row is a loop.

    The kernel records a proposal (``proposal.made``) before it checks it, so the agent's
    recent fingerprints already end with the one under check.
    """

    repeats: int = 3
    name: str = "loop"

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        if proposal.action == "finish":
            return _ok(self.name)
        agent = ctx.state.agents.get(ctx.agent)
        recent: Sequence[str] = agent.recent if agent is not None else ()
        fp = fingerprint(proposal.action, ctx.as_json(proposal)["args"])
        run = 0
        for prior in reversed(recent):
            if prior != fp:
                break
            run += 1
        run = max(run, 1)
        if run >= self.repeats:
            return Verdict(
                self.name, False, f"the same proposal {run} times in a row", {"count": run}
            )
        return _ok(self.name)
