"""What one seed of the simulator runs: a swarm and a fault plan, as frozen, typed records.

A :class:`Scenario` is plain data (JSON both ways), so that a failing seed can be printed,
minimised and replayed: ``python -m telic.sim --seed S --plan '<faults as JSON>'`` runs the
swarm of seed ``S`` under exactly those faults.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "AgentPlan",
    "Answer",
    "BudgetPlan",
    "CrashFault",
    "Fault",
    "FaultPlan",
    "MindEffect",
    "MindFault",
    "PolicyPlan",
    "Scenario",
    "StorageFault",
    "SubscriberEffect",
    "SubscriberFault",
    "SwarmPlan",
    "TeamPlan",
    "ToolEffect",
    "ToolFault",
    "ToolPlan",
    "fault_plan",
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# -- the swarm -------------------------------------------------------------------------------


class ToolPlan(_Record):
    """One simulated tool: it records its effect in the world, waits, and answers."""

    name: str
    idempotent: bool = False
    high_impact: bool = False
    """Its calls need the scripted approver's yes."""
    timeout_s: float = 5.0
    attempts: int = 1
    """Total attempts (retries apply to idempotent tools only)."""
    latency_s: float = 0.5
    """Virtual seconds a healthy call takes."""


class AgentPlan(_Record):
    """One agent: its role, its allowlist and how it tends to behave."""

    name: str
    role: str
    tools: tuple[str, ...] = ()
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    priority: int = 0
    finish_after: int = 3
    """From this tick on the agent tends to finish."""
    think_s: float = 0.1
    """Virtual seconds its mind takes to answer."""


class BudgetPlan(_Record):
    ticks: int
    """Always set: a simulated run must end."""
    tool_calls: int | None = None
    tokens: int | None = None
    cost: float | None = None


class PolicyPlan(_Record):
    resolver: Literal["first", "priority", "budgeter"] = "first"
    plan_resolver: Literal["first", "priority", "budgeter"] | None = None
    """The resolver for ``plan:*`` resources, if not the default."""
    exploration_threshold: float = 0.3
    stall_ticks: int = 5
    loop_repeats: int = 3
    approval_timeout_s: float = 10.0
    mind_timeout_s: float = 10.0
    fail_agent_on_tool_error: bool = True
    grounding: bool = True


Answer = Literal["yes", "no", "none", "hang", "raise"]
"""What the scripted approver answers to one request (``none``: no answer, which means deny)."""


class TeamPlan(_Record):
    """A team of the swarm's supervision tree (see :class:`telic.kernel.Team`)."""

    name: str
    agents: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one"
    intensity: int = 1
    period_s: float = 5.0
    restart: Literal["permanent", "transient", "temporary"] = "permanent"


class SwarmPlan(_Record):
    goal: str
    agents: tuple[AgentPlan, ...]
    tools: tuple[ToolPlan, ...]
    budget: BudgetPlan
    policy: PolicyPlan = Field(default_factory=PolicyPlan)
    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one"
    intensity: int = 3
    period_s: float = 5.0
    teams: tuple[TeamPlan, ...] = ()
    """The supervision tree's teams; an agent in none is a child of the root."""
    approvals: tuple[Answer, ...] = ("yes",)
    """The approver's answers, in request order (cycled)."""
    explorers: bool = True
    """Whether the run has an explorer factory (low confidence and spawn need one)."""
    backend: Literal["memory", "sqlite"] = "memory"
    snapshot_every: int = 1000


# -- the faults ------------------------------------------------------------------------------

MindEffect = Literal[
    "junk",  # returns something that is not a Proposal
    "raise",  # an ordinary exception
    "base_exception",  # a BaseException subclass
    "cancelled",  # asyncio.CancelledError, not from a cancellation
    "bad_str",  # an exception whose __str__ raises
    "hang",  # never answers
    "oversized",  # a 20 MB proposal
    "bigint",  # an integer beyond 64 bits
    "surrogate",  # a lone surrogate in a string
    "deep",  # nesting deeper than the encoder takes
    "unvalidated",  # a Proposal built with model_construct, args not matching the action
]
ToolEffect = Literal[
    "fail",
    "base_exception",
    "cancelled",
    "bad_str",
    "hang",
    "swallow_cancel",  # ignores cancellation for a while, then answers
    "huge_result",  # 50 MB
    "huge_error",  # an exception with a 50 MB message
    "bigint",
    "surrogate",
]
SubscriberEffect = Literal["raise", "hang", "mutate", "bad_str"]


class MindFault(_Record):
    """Agent ``agent``'s mind misbehaves when asked in tick ``tick``."""

    seam: Literal["mind"] = "mind"
    agent: str
    tick: int
    effect: MindEffect


class ToolFault(_Record):
    """The ``call``-th call of ``tool`` (1-based, counted over the whole seed) misbehaves."""

    seam: Literal["tool"] = "tool"
    tool: str
    call: int
    effect: ToolEffect


class StorageFault(_Record):
    """The ledger's ``op``-th write of the run fails inside SQLite (the disk is full, or an
    I/O error); the process then dies and the run is resumed from a reopened ledger."""

    seam: Literal["storage"] = "storage"
    op: int
    error: Literal["disk_full", "io_error"] = "disk_full"


class CrashFault(_Record):
    """The process dies at the run's ``op``-th append, before or after it is written: the
    kernel is dropped, the ledger reopened and the run resumed."""

    seam: Literal["crash"] = "crash"
    op: int
    when: Literal["before", "after"] = "before"


class SubscriberFault(_Record):
    """An event subscriber (on every event of the run) that misbehaves."""

    seam: Literal["subscriber"] = "subscriber"
    effect: SubscriberEffect


Fault = Annotated[
    MindFault | ToolFault | StorageFault | CrashFault | SubscriberFault,
    Field(discriminator="seam"),
]
FaultPlan = tuple[Fault, ...]

_PLAN: TypeAdapter[tuple[Fault, ...]] = TypeAdapter(tuple[Fault, ...])


def fault_plan(text: str | bytes) -> FaultPlan:
    """A fault plan from JSON (a list of faults); pydantic's ValidationError if it is not one."""
    return _PLAN.validate_json(text)


class Scenario(_Record):
    """One seed: the swarm, and the faults it runs under."""

    seed: int
    swarm: SwarmPlan
    faults: FaultPlan = ()

    def with_faults(self, faults: FaultPlan) -> Scenario:
        return self.model_copy(update={"faults": tuple(faults)})

    def plan_json(self) -> str:
        """The fault plan as one line of JSON (what ``--plan`` takes)."""
        return _PLAN.dump_json(self.faults).decode()
