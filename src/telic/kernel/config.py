"""What a run is made of: agents, budget, tools, policy, and the run's own functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, MinLen

from telic.errors import ConfigError
from telic.kernel.tree import Team, Tree, plan
from telic.kinds import StrategyName
from telic.minds.base import Mind
from telic.policy import Policy
from telic.state import RunState
from telic.tools import Tool, ToolRegistry, check_resources

__all__ = [
    "AgentBudget",
    "AgentSpec",
    "Approver",
    "Artifact",
    "Budget",
    "RunConfig",
    "Team",
    "is_own",
]

RestartType = Literal["permanent", "transient", "temporary"]


def _limits(owner: str, dims: Mapping[str, float | None]) -> dict[str, float]:
    for k, v in dims.items():
        if v is not None and v < 0:
            raise ConfigError(f"{owner} {k} must not be negative, got {v}")
    return {k: float(v) for k, v in dims.items() if v is not None}


@dataclass(frozen=True, slots=True)
class AgentBudget:
    """One agent's own limits, on top of the run's :class:`Budget`; None means unlimited.

    What this agent spends counts against both. The policy's budget check refuses a proposal
    of this agent once a dimension is spent (``proposal.rejected`` with check ``budget`` and
    the agent's ``limit``); other agents go on. A run spec's ``[agents.budget]`` table is
    validated against these fields (see :mod:`telic.spec`)."""

    tool_calls: Annotated[float, Ge(0)] | None = None
    """Tool calls started by this agent (MCP tools included; each retry counts)."""
    model_calls: Annotated[float, Ge(0)] | None = None
    """Model calls answered for this agent."""
    tokens: Annotated[float, Ge(0)] | None = None
    """Model tokens (input and output) of this agent's calls."""
    cost: Annotated[float, Ge(0)] | None = None
    """Money, in the run budget's currency: this agent's model calls and the costs its
    proposals state."""

    def limits(self, agent: str = "") -> dict[str, float]:
        return _limits(
            f"agent {agent!r} budget",
            {
                "tool_calls": self.tool_calls,
                "model_calls": self.model_calls,
                "tokens": self.tokens,
                "cost": self.cost,
            },
        )


@dataclass(frozen=True)
class AgentSpec:
    """One agent: a name, a role, a mind, the tools its role may call.

    A run spec's ``[[agents]]`` tables are validated against these fields (see
    :mod:`telic.spec`)."""

    name: Annotated[str, MinLen(1)]
    """Unique within the run."""
    role: Annotated[str, MinLen(1)]
    """Selects the role policy and, for a model mind, the role prompt."""
    mind: Mind
    tools: tuple[str, ...] = ()
    """Names of the tools this agent may call (registered with the run)."""
    restart: RestartType = "permanent"
    """OTP restart type: permanent (always), transient (after a crash), temporary (never)."""
    priority: int = 0
    """Higher is served first (model schedulers, conflict resolution by priority)."""
    budget: AgentBudget | None = None
    """This agent's own limits (tool calls, model calls, tokens, cost), on top of the run's."""

    resources: Mapping[str, float] = field(default_factory=dict[str, float], hash=False)
    """What this agent's model calls need where they run, in Ray's terms:
    ``{ model_gateway = 1 }``, or ``{ num_gpus = 1 }`` for a model served on the GPU node.
    On a Ray cluster each of its model requests is sent from a Ray task on a node that has
    them (explorers it spawns inherit them); elsewhere they are sent from the run's own
    process, as without them. Only a model mind takes them (see docs/distributed.md)."""

    def __post_init__(self) -> None:
        check_resources(self.name, self.resources, what="agent")


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits per dimension; None means unlimited. Spending is never rolled back.

    A run spec's ``[budget]`` table is validated against these fields (see :mod:`telic.spec`)."""

    tokens: Annotated[float, Ge(0)] | None = None
    """Model tokens, all agents together."""
    cost: Annotated[float, Ge(0)] | None = None
    """Money, in :attr:`currency`: model calls and the costs proposals state."""
    tool_calls: Annotated[float, Ge(0)] | None = None
    ticks: Annotated[float, Ge(0)] | None = None
    wall_s: Annotated[float, Ge(0)] | None = None
    """Seconds since the run booted."""
    currency: str = "USD"
    rates: Mapping[str, float] = field(default_factory=dict[str, float])
    """Units of ``currency`` per unit of another (model minds convert their prices)."""

    def limits(self) -> dict[str, float]:
        return _limits(
            "budget",
            {
                "tokens": self.tokens,
                "cost": self.cost,
                "tool_calls": self.tool_calls,
                "ticks": self.ticks,
                "wall_s": self.wall_s,
            },
        )


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    media_type: str
    content: Any


Approver = Callable[[str, str, Mapping[str, Any]], Awaitable[bool | None]]
"""``(agent, tool, args) -> True (approve) | False (deny) | None (no answer: deny)``."""


def _all_finished(state: RunState) -> bool:
    permanent = [a for a in state.agents.values() if not a.temporary]
    return bool(permanent) and all(a.status == "terminated" for a in permanent)


def _share_finished(state: RunState) -> float:
    permanent = [a for a in state.agents.values() if not a.temporary]
    if not permanent:
        return 0.0
    return sum(a.status == "terminated" for a in permanent) / len(permanent)


def _no_artifacts(state: RunState) -> Sequence[Artifact]:
    return ()


def is_own(fn: object) -> bool:
    """Whether ``fn`` is one of the run functions telic defines (the defaults): they only
    read, so they get the live state instead of a read-only view (as telic's own checks do).
    By identity: a user's callable may not be hashable, and its ``==`` is user code."""
    return fn is _all_finished or fn is _share_finished or fn is _no_artifacts


@dataclass
class RunConfig:
    """Everything :meth:`Kernel.boot` needs. Functions must be deterministic in the state
    (they read it typed: :class:`telic.state.RunState`)."""

    goal: str
    agents: Sequence[AgentSpec]
    tools: Sequence[Tool] = ()
    budget: Budget = field(default_factory=Budget)
    policy: Policy = field(default_factory=Policy)
    return_condition: Callable[[RunState], bool] = _all_finished
    """When it holds after a tick, the run produces its artifacts and completes."""
    return_description: str = "every permanent agent finished"
    progress: Callable[[RunState], float] = _share_finished
    """Progress toward the goal in [0, 1], measured after each tick."""
    artifacts: Callable[[RunState], Sequence[Artifact]] = _no_artifacts
    explorer: Callable[[str, AgentSpec], Mind] | None = None
    """Makes the mind of an explorer for ``(question, parent agent)``. Without one, a proposal
    below the exploration threshold and a spawn request are rejected."""
    approver: Approver | None = None
    strategy: StrategyName = "one_for_one"
    """The root supervisor's strategy: one_for_one, one_for_all or rest_for_one."""
    intensity: Annotated[int, Ge(0)] = 3
    """The root's restart intensity (more restarts than this within ``period_s`` fails the
    run)."""
    period_s: Annotated[float, Gt(0)] = 5.0
    """The window of the root's restart intensity, in seconds."""
    teams: Sequence[Team] = ()
    """Supervisors of their own for groups of agents (see :mod:`telic.kernel.tree`); without
    teams every agent is a child of the root."""
    seed: int | None = None
    record: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """Extra configuration to put on record in ``run.booted``."""

    def registry(self) -> ToolRegistry:
        return ToolRegistry(self.tools)

    def tree(self) -> Tree:
        """The supervision tree of the agents and teams (:class:`~telic.errors.TreeInvalid`
        if the teams do not make one)."""
        return plan(
            [(a.name, a.role) for a in self.agents],
            self.teams,
            strategy=self.strategy,
            intensity=self.intensity,
            period_s=self.period_s,
        )

    def validate(self) -> None:
        names = [a.name for a in self.agents]
        if not names:
            raise ConfigError("a run needs at least one agent")
        if len(set(names)) != len(names):
            raise ConfigError(f"agent names must be unique: {names}")
        self.tree()
        registry = self.registry()
        for a in self.agents:
            for t in a.tools:
                if t not in registry:
                    raise ConfigError(f"agent {a.name!r} lists tool {t!r}, which is not registered")
        self.budget.limits()
        for a in self.agents:
            if a.budget is not None:
                a.budget.limits(a.name)
            # A model mind records costs in the currency it was built for (ModelMind.currency).
            currency = getattr(a.mind, "currency", None)
            if isinstance(currency, str) and currency != self.budget.currency:
                raise ConfigError(
                    f"agent {a.name!r} counts model costs in {currency} but the budget is in "
                    f"{self.budget.currency}: build its mind with currency="
                    f"{self.budget.currency!r} and rates= (e.g. {{'USD': <rate>}})"
                )
