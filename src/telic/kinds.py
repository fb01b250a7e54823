"""The catalogue of transition kinds: one frozen payload model per kind.

A transition's ``kind`` names exactly one class here; :data:`CATALOGUE` maps each kind to its
payload model and nothing outside it can be recorded. Every kind is also an event type of the
event kernel (see ``docs/events.md``). Payloads hold JSON-safe values only.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "CATALOGUE",
    "Action",
    "AgentFailed",
    "AgentLimit",
    "AgentRecord",
    "AgentRestarted",
    "AgentSpawned",
    "AgentTerminated",
    "ApiCalled",
    "ApprovalDenied",
    "ApprovalGranted",
    "ApprovalRequested",
    "ArtifactRecorded",
    "BeliefUpdated",
    "BudgetExhausted",
    "BudgetWarning",
    "Claim",
    "ConflictDetected",
    "ConflictResolved",
    "ExplorationSpawned",
    "HallucinationDetected",
    "LoopDetected",
    "MemoryUpdated",
    "MessageSent",
    "ModelCalled",
    "ModelFailed",
    "ObservationRecorded",
    "Payload",
    "PlanUpdated",
    "ProposalAccepted",
    "ProposalMade",
    "ProposalRejected",
    "RunBooted",
    "RunCompleted",
    "RunFailed",
    "RunForked",
    "RunPaused",
    "RunResumed",
    "RunStopped",
    "StateRestored",
    "StrategyName",
    "SubscriberLagged",
    "SubscriptionCreated",
    "SubscriptionEnded",
    "SubscriptionExpired",
    "SupervisionTree",
    "SupervisorEscalated",
    "SupervisorRestarted",
    "TeamRecord",
    "TickCompleted",
    "TickStarted",
    "TokenCreated",
    "TokenRevoked",
    "ToolCompleted",
    "ToolFailed",
    "ToolStarted",
    "ToolTimeout",
    "ToolUnknownOutcome",
    "payload_model",
]

Action = Literal["tool", "remember", "plan", "message", "spawn", "finish"]
"""What a proposal asks the kernel to do."""


class Payload(BaseModel):
    """Base of every payload model. Subclasses set :attr:`kind`."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )
    kind: ClassVar[str]
    """The transition kind this payload belongs to."""
    summary: ClassVar[str] = ""
    """One line for docs/events.md."""


class Claim(BaseModel):
    """A statement a proposal relies on, with the observations that back it."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    key: str
    """What the claim is about, e.g. ``train_price``."""
    value: JsonValue
    """The claimed value; grounding looks for it in the cited observations."""
    evidence: tuple[int, ...] = ()
    """Sequence numbers of the observations that support the claim."""


class AgentRecord(BaseModel):
    """An agent as declared at boot."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    name: str
    """Unique agent name within the run."""
    role: str
    """The role, which selects the role policy (allowed tools, budget share)."""
    tools: tuple[str, ...] = ()
    """Tools this agent may call."""
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    """OTP restart type."""
    priority: int = 0
    """Priority for conflict resolution by role (higher wins)."""
    budget: dict[str, float] | None = Field(default=None, exclude_if=lambda v: v is None)
    """The agent's own limits by dimension (tool_calls, model_calls, tokens, cost), when it
    has any; absent, only the run's budget bounds it."""


StrategyName = Literal["one_for_one", "one_for_all", "rest_for_one"]
"""How a supervisor of a run restarts its children (see :mod:`telic.supervision`)."""


class TeamRecord(BaseModel):
    """A team: a supervisor of some of a run's agents (and teams), under another supervisor."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    name: str
    """Unique among the run's agents and teams; not ``root``."""
    supervisor: str = "root"
    """The supervisor the team runs under: ``root`` or another team."""
    strategy: StrategyName = "one_for_one"
    intensity: int = 1
    """More than this many restarts within ``period_s`` and the team gives up (escalates)."""
    period_s: float = 5.0
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    """When the team's supervisor restarts it after it gave up."""
    agents: tuple[str, ...] = ()
    """The agents it supervises directly (its roles resolved at boot), in start order."""


class SupervisionTree(BaseModel):
    """A run's supervision tree: the root supervisor's settings and its teams."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    strategy: StrategyName = "one_for_one"
    """The root's."""
    intensity: int = 3
    period_s: float = 5.0
    teams: tuple[TeamRecord, ...] = ()
    """Parents before children; an agent in no team is a child of the root."""


# -- runs --------------------------------------------------------------------------------


class RunBooted(Payload):
    kind: ClassVar[str] = "run.booted"
    summary: ClassVar[str] = "A run started: its goal, agents, budget, policy and return condition."
    goal: str
    """What the run is for."""
    agents: tuple[AgentRecord, ...]
    """The agents in start order."""
    budget: dict[str, float]
    """Limits by dimension (tokens, cost, tool_calls, ticks, wall_s); absent means unlimited."""
    currency: str = "USD"
    """Currency of the cost dimension."""
    policy: dict[str, JsonValue] = Field(default_factory=dict)
    """A description of the policy configuration, for the record."""
    return_condition: str = ""
    """A description of the return condition."""
    seed: int | None = None
    """Seed of the injected random source, if any."""
    config: dict[str, JsonValue] = Field(default_factory=dict)
    """Anything else the booting code wants on record (e.g. the demo's fault plan)."""
    supervision: SupervisionTree | None = Field(default=None, exclude_if=lambda v: v is None)
    """The supervision tree, when the run has teams (a resumed or forked run rebuilds it from
    here); absent, every agent is a child of one root supervisor."""


class RunResumed(Payload):
    kind: ClassVar[str] = "run.resumed"
    summary: ClassVar[str] = "A kernel took over a run again after a crash, a stop or a fork."
    reason: str
    """Why the run was resumed."""
    head: int
    """The sequence number the run stood at."""
    counterfactual: dict[str, JsonValue] | None = None
    """What the run goes on with that differs from how it was booted (``model``,
    ``instructions``, ``policy``): a fork resumed this way is a counterfactual of its parent."""
    by: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """Who asked for it (an operator, e.g. ``user@host via mcp``), when someone did."""


class RunForked(Payload):
    kind: ClassVar[str] = "run.forked"
    summary: ClassVar[str] = "This run was forked from another at a sequence number."
    parent: str
    """The run forked from."""
    at: int
    """The last parent sequence number the fork shares."""
    by: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """Who asked for it (an operator, e.g. ``user@host via mcp``), when someone did."""


class RunPaused(Payload):
    kind: ClassVar[str] = "run.paused"
    summary: ClassVar[str] = "The run waits (for an approval)."
    reason: str


class RunCompleted(Payload):
    kind: ClassVar[str] = "run.completed"
    summary: ClassVar[str] = "The return condition held; the run produced its artifacts."
    reason: str
    artifacts: tuple[str, ...] = ()
    """Names of the recorded artifacts."""


class RunFailed(Payload):
    kind: ClassVar[str] = "run.failed"
    summary: ClassVar[str] = "The run ended in failure."
    reason: str


class RunStopped(Payload):
    kind: ClassVar[str] = "run.stopped"
    summary: ClassVar[str] = "The run was stopped (budget exhausted, loop, or by request)."
    reason: str


# -- ticks -------------------------------------------------------------------------------


class TickStarted(Payload):
    kind: ClassVar[str] = "tick.started"
    summary: ClassVar[str] = "A tick began: every live agent is asked for a proposal."
    tick: int


class TickCompleted(Payload):
    kind: ClassVar[str] = "tick.completed"
    summary: ClassVar[str] = "A tick ended, with measured progress and the folded state's hash."
    tick: int
    progress: float
    """Progress toward the goal after the tick, in [0, 1]."""
    delta: float
    """Progress gained in this tick."""
    valid: bool
    """False when an agent or tool failed or a hallucination was found during the tick."""
    state_hash: str
    """Hash of the state folded up to (not including) this transition."""


# -- agents and supervision ---------------------------------------------------------------


class AgentSpawned(Payload):
    kind: ClassVar[str] = "agent.spawned"
    summary: ClassVar[str] = "An agent process started under a supervisor."
    agent: str
    role: str
    supervisor: str = "root"
    temporary: bool = False
    """True for helpers such as explorers, which end with their task."""
    parent: str | None = None
    """The agent that caused the spawn, if any."""
    question: str | None = None
    """The question an explorer works on."""
    tools: tuple[str, ...] = ()


class AgentRestarted(Payload):
    kind: ClassVar[str] = "agent.restarted"
    summary: ClassVar[str] = (
        "A supervisor restarted an agent; its state was rebuilt from the ledger."
    )
    agent: str
    supervisor: str
    attempt: int
    reason: str


class AgentFailed(Payload):
    kind: ClassVar[str] = "agent.failed"
    summary: ClassVar[str] = "An agent crashed (mind error, tool failure, timeout)."
    agent: str
    error: str
    """The error type."""
    message: str


class AgentTerminated(Payload):
    kind: ClassVar[str] = "agent.terminated"
    summary: ClassVar[str] = "An agent stopped: normal end, shutdown, or killed."
    agent: str
    reason: str
    """normal, shutdown, killed, hallucination, ..."""


class SupervisorEscalated(Payload):
    kind: ClassVar[str] = "supervisor.escalated"
    summary: ClassVar[str] = (
        "A supervisor exceeded its restart intensity and gave up to its parent."
    )
    supervisor: str
    restarts: int
    period_s: float
    reason: str


class SupervisorRestarted(Payload):
    kind: ClassVar[str] = "supervisor.restarted"
    summary: ClassVar[str] = (
        "A team's supervisor gave up and its parent restarted it, with the team's agents."
    )
    supervisor: str
    """The team restarted."""
    parent: str
    """The supervisor that restarted it (``root`` or another team)."""
    attempt: int
    """How many times ``parent`` has restarted it."""
    reason: str


# -- proposals and policy ----------------------------------------------------------------


class ProposalMade(Payload):
    kind: ClassVar[str] = "proposal.made"
    summary: ClassVar[str] = "An agent's mind proposed an action; nothing is committed yet."
    agent: str
    action: Action
    args: dict[str, JsonValue] = Field(default_factory=dict)
    """Tool arguments, memory key/value, plan key/value, message, spawn question, result."""
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str = ""
    claims: tuple[Claim, ...] = ()
    resource: str | None = None
    """An exclusive resource the proposal claims (plan key, tool lock); used for conflicts."""
    cost: float | None = None
    """The cost of what is proposed, when it has one (used by the budgeter policy)."""


class ProposalAccepted(Payload):
    kind: ClassVar[str] = "proposal.accepted"
    summary: ClassVar[str] = "Policy accepted a proposal; its effect is committed next."
    proposal: int
    """Sequence number of the proposal."""
    agent: str
    checks: tuple[str, ...]
    """The checks it passed, in order."""


class AgentLimit(BaseModel):
    """An agent's own budget limit, as a rejection records it."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    agent: str
    """The agent whose budget it is."""
    dimension: str
    """tool_calls, model_calls, tokens or cost."""
    limit: float
    spent: float
    """What the agent had spent in that dimension when the proposal was checked."""


class ProposalRejected(Payload):
    kind: ClassVar[str] = "proposal.rejected"
    summary: ClassVar[str] = "Policy rejected a proposal (or the mind's output was malformed)."
    agent: str
    check: str
    """The check that refused it."""
    reason: str
    proposal: int | None = None
    """Sequence number of the proposal, or None when no valid proposal could be recorded."""
    limit: AgentLimit | None = Field(default=None, exclude_if=lambda v: v is None)
    """The agent's own budget limit that refused it (check ``budget``), when it was one."""


class BudgetWarning(Payload):
    kind: ClassVar[str] = "budget.warning"
    summary: ClassVar[str] = "A budget dimension passed its warning threshold."
    dimension: str
    spent: float
    limit: float


class BudgetExhausted(Payload):
    kind: ClassVar[str] = "budget.exhausted"
    summary: ClassVar[str] = "A budget dimension ran out; the run wraps up."
    dimension: str
    spent: float
    limit: float


class LoopDetected(Payload):
    kind: ClassVar[str] = "loop.detected"
    summary: ClassVar[str] = "The loop guard saw repeated proposals or no progress."
    agent: str | None
    pattern: Literal["repeat", "stall"]
    count: int
    proposal: int | None = None


class ConflictDetected(Payload):
    kind: ClassVar[str] = "conflict.detected"
    summary: ClassVar[str] = "Proposals of one tick claim the same resource."
    resource: str
    proposals: tuple[int, ...]
    agents: tuple[str, ...]


class ConflictResolved(Payload):
    kind: ClassVar[str] = "conflict.resolved"
    summary: ClassVar[str] = "A named resolution policy chose one proposal of a conflict."
    resource: str
    policy: str
    winner: int
    losers: tuple[int, ...]
    why: str


class ApprovalRequested(Payload):
    kind: ClassVar[str] = "approval.requested"
    summary: ClassVar[str] = "A high-impact tool call waits for approval."
    proposal: int
    agent: str
    tool: str


class ApprovalGranted(Payload):
    kind: ClassVar[str] = "approval.granted"
    summary: ClassVar[str] = "A pending high-impact call was approved."
    proposal: int
    by: str
    """Who decided: the authenticated identity (a token's name), or ``approver``."""
    reason: str = ""
    """Why, in the approver's words."""


class ApprovalDenied(Payload):
    kind: ClassVar[str] = "approval.denied"
    summary: ClassVar[str] = "A pending high-impact call was denied (or got no answer)."
    proposal: int
    by: str
    """Who decided: the authenticated identity, ``approver`` or ``kernel`` (no answer)."""
    reason: str


class HallucinationDetected(Payload):
    kind: ClassVar[str] = "hallucination.detected"
    summary: ClassVar[str] = "A claim is not supported by the observations it cites."
    agent: str
    proposal: int
    claim: Claim
    reason: str


class ExplorationSpawned(Payload):
    kind: ClassVar[str] = "exploration.spawned"
    summary: ClassVar[str] = "A low-confidence proposal made the kernel spawn an explorer."
    proposal: int
    agent: str
    explorer: str
    question: str
    confidence: float
    threshold: float


# -- tools -------------------------------------------------------------------------------


class ToolStarted(Payload):
    kind: ClassVar[str] = "tool.started"
    summary: ClassVar[str] = "A tool call began."
    call_id: str
    agent: str
    tool: str
    args: dict[str, JsonValue]
    idempotent: bool = False
    attempt: int = 1
    source: str = Field(default="", exclude_if=lambda v: v == "")
    """Where the tool comes from: ``mcp:<server>`` for an MCP server's tool; empty for the
    run's own."""
    version: str = Field(default="", exclude_if=lambda v: v == "")
    """What identifies the version called (an MCP tool's schema hash), so a replay knows
    what was called; empty when the tool has none."""


class ToolCompleted(Payload):
    kind: ClassVar[str] = "tool.completed"
    summary: ClassVar[str] = "A tool call returned; its result is an observation."
    call_id: str
    agent: str
    tool: str
    result: JsonValue


class ToolFailed(Payload):
    kind: ClassVar[str] = "tool.failed"
    summary: ClassVar[str] = "A tool call raised or returned something unserialisable."
    call_id: str
    agent: str
    tool: str
    error: str
    message: str


class ToolTimeout(Payload):
    kind: ClassVar[str] = "tool.timeout"
    summary: ClassVar[str] = "A tool call ran past its timeout and was cancelled."
    call_id: str
    agent: str
    tool: str
    timeout_s: float


class ToolUnknownOutcome(Payload):
    kind: ClassVar[str] = "tool.unknown"
    summary: ClassVar[str] = (
        "A non-idempotent tool started before a crash with no recorded result; not retried."
    )
    call_id: str
    agent: str
    tool: str


# -- knowledge ---------------------------------------------------------------------------


class ObservationRecorded(Payload):
    kind: ClassVar[str] = "observation.recorded"
    summary: ClassVar[str] = "Something an agent learned (an explorer's findings, a reason)."
    agent: str
    source: str
    content: JsonValue


class MemoryUpdated(Payload):
    kind: ClassVar[str] = "memory.updated"
    summary: ClassVar[str] = "An agent's memory key was set."
    agent: str
    key: str
    value: JsonValue


class BeliefUpdated(Payload):
    kind: ClassVar[str] = "belief.updated"
    summary: ClassVar[str] = "A grounded claim became a belief of the run."
    agent: str
    key: str
    value: JsonValue
    evidence: tuple[int, ...] = ()


class PlanUpdated(Payload):
    kind: ClassVar[str] = "plan.updated"
    summary: ClassVar[str] = "A plan item (an exclusive choice) was set."
    agent: str
    key: str
    value: JsonValue


class MessageSent(Payload):
    kind: ClassVar[str] = "message.sent"
    summary: ClassVar[str] = "An agent sent a message to another."
    sender: str
    to: str
    content: JsonValue


class StateRestored(Payload):
    kind: ClassVar[str] = "state.restored"
    summary: ClassVar[str] = (
        "Beliefs, plan and memory were reset to an earlier point; spending is not rolled back."
    )
    target: int
    """The sequence number restored to."""
    tick: int
    """The tick that sequence number ended."""
    reason: str
    memory: dict[str, dict[str, JsonValue]]
    beliefs: dict[str, JsonValue]
    plan: dict[str, JsonValue]
    progress: float


class ArtifactRecorded(Payload):
    kind: ClassVar[str] = "artifact.recorded"
    summary: ClassVar[str] = "The run produced an artifact (a document, a JSON result)."
    name: str
    media_type: str
    content: JsonValue


class ModelCalled(Payload):
    kind: ClassVar[str] = "model.called"
    summary: ClassVar[str] = "A model request and its response, usage, latency and cost."
    agent: str
    model: str
    request_digest: str
    response: JsonValue
    input_tokens: int = 0
    """All input tokens, cached ones included."""
    output_tokens: int = 0
    """All output tokens, reasoning ones included."""
    cached_input_tokens: int = 0
    """Of the input, read from the provider's prompt cache (billed at the cache-read price)."""
    cache_write_tokens: int = 0
    """Of the input, written to the provider's prompt cache (billed at the cache-write price)."""
    reasoning_tokens: int = 0
    """Of the output, spent on reasoning the reply does not show."""
    latency_ms: float = 0.0
    """Of the attempt that answered (each failed attempt is a ``model.failed`` of its own)."""
    cost: float = 0.0
    """In ``currency``, the run's budget currency (converted from the price list's at
    ``rate``)."""
    currency: str = "USD"
    cost_known: bool = True
    """False when no price is known for the model: ``cost`` is 0 but the call was not free."""
    rate: float = 1.0
    """Budget currency per unit of the price list's currency (1 when they are the same)."""
    attempt: int = 1
    """1 for the first request of the proposal, 2 and on for repairs of unusable replies."""
    retries: int = 0
    """Failed tries of this request before this answer (each is a ``model.failed``)."""
    error: str | None = None
    """Why this attempt's output was unusable, when it was."""
    node: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """The cluster node the request was sent from, when it ran as a Ray task (absent
    otherwise)."""


class ModelFailed(Payload):
    kind: ClassVar[str] = "model.failed"
    summary: ClassVar[str] = (
        "A model request that got no usable answer (429, 5xx, timeout, connection reset)."
    )
    agent: str
    model: str
    request_digest: str
    attempt: int
    """The try of this request: 1 for the first."""
    error: str
    status: int | None = None
    """The HTTP status, when the endpoint answered."""
    latency_ms: float = 0.0
    retry_after_s: float | None = None
    """What the provider asked to wait, if it said."""
    wait_s: float | None = None
    """The wait before the next try; None when no try followed (retries used up)."""
    node: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """The cluster node the try was sent from, when it ran as a Ray task and that is known
    (absent otherwise)."""


# -- subscriptions -----------------------------------------------------------------------


class SubscriptionCreated(Payload):
    kind: ClassVar[str] = "subscription.created"
    summary: ClassVar[str] = "A subscription was opened."
    subscription: str
    pattern: str
    ttl_s: float | None = None


class SubscriptionExpired(Payload):
    kind: ClassVar[str] = "subscription.expired"
    summary: ClassVar[str] = "A subscription's TTL lapsed unrenewed; it was removed."
    subscription: str
    pattern: str
    ttl_s: float


class SubscriptionEnded(Payload):
    kind: ClassVar[str] = "subscription.ended"
    summary: ClassVar[str] = "A subscription was closed by its owner or disconnected for lagging."
    subscription: str
    reason: str


class SubscriberLagged(Payload):
    kind: ClassVar[str] = "subscriber.lagged"
    summary: ClassVar[str] = "A subscriber's queue overflowed; events were dropped."
    subscription: str
    dropped: int


# -- access (recorded by ``telic serve`` and ``telic token`` in the system run telic-access) --


class TokenCreated(Payload):
    kind: ClassVar[str] = "token.created"
    summary: ClassVar[str] = "An access token was created (only its hash is stored)."
    name: str
    """The identity the token authenticates as."""
    scopes: tuple[str, ...]
    """What it may do: read, operate, approve, admin."""
    digest: str
    """SHA-256 of the token, hex; the token itself is shown once and never stored."""


class TokenRevoked(Payload):
    kind: ClassVar[str] = "token.revoked"
    summary: ClassVar[str] = "An access token was revoked; it authenticates no more."
    name: str
    by: str
    """Who revoked it."""


class ApiCalled(Payload):
    kind: ClassVar[str] = "api.called"
    summary: ClassVar[str] = "A mutating HTTP request to `telic serve`, with who made it."
    identity: str
    """The authenticated identity (a token's name)."""
    method: str
    path: str
    status: int
    """The HTTP status of the response."""
    run: str | None = None
    """The run it concerned, if any."""


def _catalogue() -> dict[str, type[Payload]]:
    out: dict[str, type[Payload]] = {}
    for cls in Payload.__subclasses__():
        if cls.kind in out:  # pragma: no cover - a programming error caught at import
            raise RuntimeError(f"duplicate kind {cls.kind}")
        out[cls.kind] = cls
    return dict(sorted(out.items()))


CATALOGUE: dict[str, type[Payload]] = _catalogue()
"""Every transition kind and its payload model, sorted by kind."""


def payload_model(kind: str) -> type[Payload]:
    """The payload model of ``kind``, or :class:`~telic.errors.UnknownKind`."""
    try:
        return CATALOGUE[kind]
    except KeyError:
        from telic.errors import UnknownKind

        raise UnknownKind(kind) from None
