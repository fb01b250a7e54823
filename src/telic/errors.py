"""Every error telic raises, in one place.

The hierarchy::

    TelicError
    ├── RecordError                 a transition or payload is not acceptable
    │   ├── UnknownKind             a kind outside the catalogue
    │   ├── PayloadInvalid          a payload that fails its kind's schema
    │   ├── PayloadTooLarge         a payload over the ledger's size limit
    │   ├── NotCanonical            a value JSON cannot carry exactly (NaN, bytes, ...)
    │   └── RecordInvalid           a record field of the wrong type or range (tick 1.5, ...)
    ├── LedgerError                 anything the ledger refuses or cannot do
    │   ├── UnknownScheme           a ledger URL whose scheme has no backend
    │   ├── LedgerUnavailable       a path or server that cannot be opened
    │   ├── LedgerOptionInvalid     a ledger option that is not what it must be
    │   ├── NotALedger              a file or database that is not a telic ledger
    │   ├── RunNotFound             a run id the ledger does not hold
    │   ├── RunExists               a run id already taken
    │   ├── SequenceError           a sequence number outside the run
    │   ├── SequenceConflict        optimistic concurrency: another writer got there first
    │   ├── ChainBroken             verification found a bad link (names the first bad seq)
    │   │   └── SnapshotBroken      a stored snapshot that does not match its digest or chain
    │   ├── BlobMissing             a referenced blob is absent or does not match its hash
    │   └── LeaseError              run ownership: a lease cannot be taken or kept
    │       ├── LeaseHeld           a live lease another holder owns
    │       └── LeaseLost           a lease taken over or released since it was granted
    │           └── Fenced          an append refused: its epoch is not the run's lease's
    ├── ReplayMismatch              a fold disagrees with a recorded state hash
    ├── EventError                  the event kernel refuses a request
    │   ├── UnknownEventType        publishing or subscribing to an undeclared type
    │   ├── BadPattern              a malformed subscription pattern
    │   ├── BadTTL                  a negative, zero or absurd time to live
    │   ├── BadSubscription         other bad subscription arguments (from_seq, maxsize, ...)
    │   ├── EventKernelClosed       subscribing after the event kernel was closed
    │   └── SubscriptionClosed      reading from a subscription that expired or was dropped
    ├── KernelError                 the kernel cannot do what was asked
    │   ├── RunNotResumable         a run that has ended, or a ledger without its boot
    │   ├── NotAwaitingApproval     a decision on a proposal that no approval waits for
    │   ├── RunNotHosted            a stop asked of a run that another process drives
    │   └── ConfigError             a bad agent, tool, policy or budget definition
    │       ├── TreeInvalid         teams that do not make one supervision tree
    │       └── SpecError           a run spec (TOML) that cannot be loaded or built
    ├── AccessError                 a request without the right to do what it asks
    │   ├── Unauthenticated         no token, or one that is unknown or revoked
    │   ├── Forbidden               a token without the scope the action needs
    │   └── TokenInvalid            a bad token name or scope, or a name already taken
    ├── ToolError                   defining or calling a tool went wrong
    │   ├── UnknownTool             a tool name that is not registered
    │   ├── ToolArgumentsInvalid    arguments that fail the tool's schema
    │   └── McpError                an MCP server or one of its tools failed
    │       ├── McpServerUnavailable    the server cannot be started, reached, or crashed
    │       ├── McpToolFailed           the server answered with an error (or unknown tool)
    │       └── McpMalformedResult      the server's answer is not a usable tool result
    ├── MindError                   a mind could not produce a proposal
    │   ├── ScriptExhausted         a scripted mind asked for more steps than it has
    │   ├── ScriptUnused            a scripted mind ended with steps left over
    │   ├── ModelRequestsForbidden  a real model request while they are switched off
    │   ├── MissingExtra            an optional SDK is not installed (names the extra)
    │   ├── MissingCredentials      no API key for a provider
    │   ├── UnknownProvider         a model string with an unknown prefix
    │   ├── ProviderError           the provider failed after retries
    │   │   └── EndpointUnreachable a model endpoint that cannot be connected to
    │   ├── MalformedOutput         the model's reply is not a valid proposal
    │   │   └── TokensExhausted     no tokens left in the budget for another model call
    │   └── ViewExpired             a view's state read after its mind had answered
    ├── SupervisionError            a supervisor's restart intensity was exceeded
    ├── ClusterError                hosting runs on a Ray cluster went wrong (telic.cluster)
    │   ├── ClusterNeedsPostgres    a cluster ledger that is not PostgreSQL
    │   ├── ClusterUnavailable      no Ray cluster at the address (or it refused us)
    │   └── NoClusterHosts          no live node of the cluster hosts runs
    └── ReadOnly                    a read-only view of a run's state was changed (also a TypeError)

Each error's message says what was wrong and what to do about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telic.kinds import ModelCalled


class TelicError(Exception):
    """Base class of every error telic raises."""


# -- records -----------------------------------------------------------------------------


class RecordError(TelicError):
    """A transition or payload is not acceptable."""


class UnknownKind(RecordError):
    def __init__(self, kind: str) -> None:
        super().__init__(
            f"unknown transition kind {kind!r}: only kinds in telic.kinds.CATALOGUE can be "
            "recorded (see docs/events.md)"
        )
        self.kind = kind


class PayloadInvalid(RecordError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"payload for {kind!r} does not match its schema: {detail}")
        self.kind = kind
        self.detail = detail


class PayloadTooLarge(RecordError):
    def __init__(self, kind: str, size: int, limit: int) -> None:
        super().__init__(
            f"payload for {kind!r} is {size} bytes, over the limit of {limit} bytes; "
            "store large data as an artifact or raise the ledger's max_payload"
        )
        self.kind = kind
        self.size = size
        self.limit = limit


class NotCanonical(RecordError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"value cannot be encoded canonically: {detail}; use JSON types with finite numbers"
        )


class RecordInvalid(RecordError):
    """A field of a transition's record (seq, tick, ts, v, agent, kind, causes) that the one
    record encoder (:func:`telic.transition.record_body`) cannot hash exactly."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"transition field {field!r} {detail}")
        self.field = field
        self.detail = detail


# -- ledger ------------------------------------------------------------------------------


class LedgerError(TelicError):
    """The ledger refused a request or could not carry it out."""


class UnknownScheme(LedgerError):
    def __init__(self, url: str) -> None:
        super().__init__(
            f"no ledger backend for {url!r}: use memory://, sqlite:///path/to/file.db, "
            "a plain file path, or postgresql://user@host/db"
        )
        self.url = url


class LedgerUnavailable(LedgerError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"cannot open ledger at {where}: {reason}")
        self.where = where


class LedgerOptionInvalid(LedgerError):
    def __init__(self, option: str, value: object, expected: str) -> None:
        super().__init__(f"ledger option {option}={value!r:.40} is invalid: it must be {expected}")
        self.option = option


class NotALedger(LedgerError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where} is not a telic ledger: {reason}")
        self.where = where


class RunNotFound(LedgerError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} in this ledger; `telic runs` lists the runs")
        self.run_id = run_id


class RunExists(LedgerError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} already exists; choose another id")
        self.run_id = run_id


class SequenceError(LedgerError):
    def __init__(self, run_id: str, seq: int, head: int) -> None:
        super().__init__(f"sequence number {seq} is outside run {run_id!r}, which holds 1..{head}")
        self.run_id = run_id
        self.seq = seq
        self.head = head


class SequenceConflict(LedgerError):
    def __init__(self, run_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"append to run {run_id!r} expected next sequence {expected} but the run is at "
            f"{actual}: another writer appended first; reload the run and retry"
        )
        self.run_id = run_id
        self.expected = expected
        self.actual = actual


class ChainBroken(LedgerError):
    def __init__(self, run_id: str, seq: int, reason: str) -> None:
        super().__init__(
            f"run {run_id!r} fails verification at sequence {seq}: {reason}; the ledger "
            "was edited or damaged after it was written"
        )
        self.run_id = run_id
        self.seq = seq
        self.reason = reason


class SnapshotBroken(ChainBroken):
    """A stored snapshot of the folded state that cannot be trusted: its bytes do not match
    its digest, it is not at the chain position it claims, or (``verify``) it differs from
    the fold of the transitions before it. ``seq`` is the snapshot's sequence number."""


class BlobMissing(LedgerError):
    def __init__(self, digest: str, reason: str) -> None:
        super().__init__(f"blob {digest[:16]}... {reason}")
        self.digest = digest


class LeaseError(LedgerError):
    """Run ownership: a lease cannot be taken, kept or written under."""


class LeaseHeld(LeaseError):
    def __init__(
        self, run_id: str, holder: str, node: str, epoch: int, seconds_left: float
    ) -> None:
        where = f" on {node}" if node else ""
        super().__init__(
            f"run {run_id!r} is owned by {holder}{where} (lease epoch {epoch}, "
            f"{max(seconds_left, 0.0):.1f} s left before it expires unless renewed): stop it "
            "there, or wait for the lease to expire and take the run over"
        )
        self.run_id = run_id
        self.holder = holder
        self.node = node
        self.epoch = epoch
        self.seconds_left = seconds_left


class LeaseLost(LeaseError):
    def __init__(
        self, run_id: str, epoch: int, current: int | None, holder: str | None, reason: str
    ) -> None:
        super().__init__(
            f"the lease of run {run_id!r} at epoch {epoch} is lost: {reason}; this process no "
            "longer owns the run and must not write to it (its owner now drives it)"
        )
        self.run_id = run_id
        self.epoch = epoch
        self.current = current
        """The run's lease epoch now (None: no lease row)."""
        self.holder = holder
        """Who holds the run's lease now (None: nobody)."""
        self.reason = reason


class Fenced(LeaseLost):
    """An append refused by the fence: nothing of it was written."""

    def __init__(
        self, run_id: str, epoch: int | None, current: int | None, holder: str | None, why: str
    ) -> None:
        LeaseError.__init__(
            self,
            f"append to run {run_id!r} refused by its lease: {why}; nothing was written "
            "(only the lease's holder writes to a leased run: `telic leases` shows it)",
        )
        self.run_id = run_id
        self.epoch = epoch if epoch is not None else 0
        self.current = current
        self.holder = holder
        self.reason = why


class ReplayMismatch(TelicError):
    def __init__(self, run_id: str, seq: int, expected: str, actual: str) -> None:
        super().__init__(
            f"replay of run {run_id!r} disagrees at sequence {seq}: recorded state hash "
            f"{expected[:16]}..., folded {actual[:16]}..."
        )
        self.run_id = run_id
        self.seq = seq


# -- events ------------------------------------------------------------------------------


class EventError(TelicError):
    """The event kernel refused a request."""


class UnknownEventType(EventError):
    def __init__(self, event_type: str) -> None:
        super().__init__(
            f"undeclared event type {event_type!r}; see telic.events.CATALOGUE or docs/events.md"
        )
        self.event_type = event_type


class BadPattern(EventError):
    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(f"bad event pattern {pattern!r}: {reason}")
        self.pattern = pattern


class BadTTL(EventError):
    def __init__(self, ttl: float, reason: str) -> None:
        super().__init__(f"bad subscription TTL {ttl!r}: {reason}")
        self.ttl = ttl


class BadSubscription(EventError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"bad subscription: {detail}")
        self.detail = detail


class EventKernelClosed(EventError):
    def __init__(self) -> None:
        super().__init__(
            "the event kernel is closed (aclose() was called); create a new EventKernel"
        )


class SubscriptionClosed(EventError):
    def __init__(self, sub_id: str, reason: str) -> None:
        super().__init__(f"subscription {sub_id} is closed: {reason}")
        self.sub_id = sub_id
        self.reason = reason


# -- kernel ------------------------------------------------------------------------------


class KernelError(TelicError):
    """The kernel cannot do what was asked."""


class RunNotResumable(KernelError):
    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"run {run_id!r} cannot be resumed: {reason}")
        self.run_id = run_id


class NotAwaitingApproval(KernelError):
    def __init__(self, run_id: str, proposal: int, why: str) -> None:
        super().__init__(
            f"run {run_id!r} has no approval waiting for proposal {proposal}: {why}; "
            "`telic approvals` lists those that wait"
        )
        self.run_id = run_id
        self.proposal = proposal


class RunNotHosted(KernelError):
    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"run {run_id!r}: {reason}")
        self.run_id = run_id
        self.reason = reason


class ConfigError(KernelError):
    """A bad agent, tool, policy or budget definition."""


class TreeInvalid(ConfigError):
    """Teams that do not arrange a run's agents in one supervision tree: an unknown role, agent
    or team, an agent or team in two teams, a cycle, a bad strategy or intensity."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"supervision tree: {problem}")
        self.problem = problem


class SpecError(ConfigError):
    """A run spec (``telic run SPEC``) that cannot be loaded or built; the message names the
    spec file and what to fix, on one line."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"spec {where}: {' '.join(problem.split())}")
        self.where = where
        self.problem = problem


# -- access --------------------------------------------------------------------------------


class AccessError(TelicError):
    """A request without the right to do what it asks."""


class Unauthenticated(AccessError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            f"{reason}; send `Authorization: Bearer <token>` with a token from `telic token create`"
        )


class Forbidden(AccessError):
    def __init__(self, identity: str, scope: str) -> None:
        super().__init__(
            f"token {identity!r} lacks the {scope!r} scope this action needs; "
            f"create one with `telic token create NAME --scope {scope}`"
        )
        self.identity = identity
        self.scope = scope


class TokenInvalid(AccessError):
    """A token name or scope that cannot be used (the message says which and why)."""


# -- tools -------------------------------------------------------------------------------


class ToolError(TelicError):
    """Defining or calling a tool went wrong."""


class UnknownTool(ToolError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown tool {name!r}; registered tools: {', '.join(known) or 'none'}")
        self.name = name


class ToolArgumentsInvalid(ToolError):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"arguments for tool {name!r} are invalid: {detail}")
        self.name = name
        self.detail = detail


class McpError(ToolError):
    """An MCP server or one of its tools failed; the call is recorded as ``tool.failed``."""

    def __init__(self, server: str, message: str) -> None:
        super().__init__(f"MCP server {server!r}: {message}")
        self.server = server


class McpServerUnavailable(McpError):
    """The server could not be started or reached, or it crashed; the next call restarts it."""


class McpToolFailed(McpError):
    """The server answered the call with an error (a tool error, an unknown tool)."""


class McpMalformedResult(McpError):
    """The server's answer is not a tool result telic can record."""


# -- minds -------------------------------------------------------------------------------


class MindError(TelicError):
    """A mind could not produce a proposal."""


class ScriptExhausted(MindError):
    def __init__(self, mind: str, calls: int) -> None:
        super().__init__(
            f"scripted mind {mind!r} was asked for step {calls + 1} but has only {calls} steps"
        )


class ScriptUnused(MindError):
    def __init__(self, mind: str, left: int) -> None:
        super().__init__(f"scripted mind {mind!r} ended with {left} unused step(s)")


class ModelRequestsForbidden(MindError):
    def __init__(self, model: str) -> None:
        super().__init__(
            f"a real request to {model!r} was attempted while model requests are forbidden "
            "(telic.minds.ALLOW_MODEL_REQUESTS is False); use a scripted or function mind, "
            "or point the provider at a local test server"
        )


class MissingExtra(MindError):
    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"the {package!r} package is not installed; install it with "
            f"pip install 'telic[{extra}]'"
        )
        self.extra = extra


class MissingCredentials(MindError):
    def __init__(self, provider: str, env_var: str) -> None:
        super().__init__(
            f"no API key for {provider}: set {env_var} in the environment "
            f"(export {env_var}=...), or pass api_key= in Python"
        )


class UnknownProvider(MindError):
    def __init__(self, model: str, known: list[str]) -> None:
        super().__init__(
            f"unknown provider in model string {model!r}; use one of: {', '.join(known)} "
            "(for example 'openai:gpt-4.1-mini')"
        )


class ProviderError(MindError):
    """The provider failed after retries (network, 5xx, or an unusable response).

    ``calls`` holds the model calls that did succeed before (earlier repair attempts), so
    their usage can still be recorded.
    """

    def __init__(self, message: str, calls: tuple[ModelCalled, ...] = ()) -> None:
        super().__init__(message)
        self.calls = calls


class EndpointUnreachable(ProviderError):
    """Nothing answers at a model endpoint's address (connection refused, unknown host)."""

    def __init__(self, url: str, hint: str) -> None:
        super().__init__(f"cannot reach {url} ({hint})")
        self.url = url


class MalformedOutput(MindError):
    """The reply is not a valid proposal even after the repair attempts.

    ``calls`` holds the model calls made (one per attempt, each with its ``error``), so the
    kernel can record them before recording the rejection. ``check`` names the policy check
    the rejection is recorded under.
    """

    check: str = "schema"

    def __init__(self, detail: str, calls: tuple[ModelCalled, ...] = ()) -> None:
        super().__init__(f"model output is not a valid proposal: {detail}")
        self.detail = detail
        self.calls = calls


class TokensExhausted(MalformedOutput):
    """The run's token budget has no room for the prompt of another call: the mind asks
    nothing, and the agent's turn is a rejection under the budget check."""

    check = "budget"

    def __init__(self, model: str, left: int, prompt: int) -> None:
        MindError.__init__(
            self,
            f"{model}: {left} token(s) of the budget are left (the tick's other calls hold "
            f"the rest), not enough for a prompt of about {prompt}; no request was sent",
        )
        self.detail = str(self)
        self.calls = ()


class ViewExpired(MindError):
    """A mind read its view's state after it had answered (the view was of one tick)."""

    def __init__(self, tick: int) -> None:
        super().__init__(
            f"a view of tick {tick} was first read after the minds had answered; a view holds "
            "the state for one proposal: read what you need while proposing"
        )
        self.tick = tick


# -- supervision -------------------------------------------------------------------------


class SupervisionError(TelicError):
    """A supervisor exceeded its restart intensity and gave up (escalation)."""

    def __init__(self, supervisor: str, restarts: int, period: float) -> None:
        super().__init__(
            f"supervisor {supervisor!r} exceeded its restart intensity "
            f"({restarts} restarts in {period:g} s) and escalates to its parent"
        )
        self.supervisor = supervisor


# -- isolation ---------------------------------------------------------------------------


class ReadOnly(TelicError, TypeError):
    """Code outside the kernel tried to change a read-only view of a run's state.

    Minds, policy checks and resolvers read the state through :mod:`telic.frozen` views; to
    work on a changeable copy, call ``.thaw()`` on the view (or ``telic.frozen.thaw``).
    """

    def __init__(self, what: str, operation: str) -> None:
        super().__init__(
            f"{what} is a read-only view of the run's state: {operation} is refused; change the "
            "state by proposing an action, or call .thaw() for a private changeable copy"
        )
        self.what = what
        self.operation = operation


# -- the cluster (telic.cluster) ------------------------------------------------------------


class ClusterError(TelicError):
    """Hosting runs on a Ray cluster went wrong."""


class ClusterNeedsPostgres(ClusterError):
    def __init__(self, url: str) -> None:
        super().__init__(
            f"runs hosted on a Ray cluster need a PostgreSQL ledger that every node reaches, not "
            f"{url}: pass --db postgresql://user@host/db"
        )
        self.url = url


class ClusterUnavailable(ClusterError):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the Ray cluster at {address}: {reason}; start one (`ray start --head`) "
            "or pass the address of a running one (host:port, or auto)"
        )
        self.address = address


class NoClusterHosts(ClusterError):
    def __init__(self, address: str) -> None:
        super().__init__(
            f"the Ray cluster at {address} has no live node that can host a run: add a node, or "
            "check `telic cluster status`"
        )
        self.address = address


# -- simulation (telic.sim) ----------------------------------------------------------------
# The faults the simulator injects are errors of their own, so that a report names them and
# nothing else can be mistaken for one. ``SimulatedCrash`` and ``InjectedAbort`` derive from
# BaseException on purpose: the first stands for a process that dies, the second for the
# BaseException subclasses user code may raise (telic must survive them).


class SimError(TelicError):
    """The simulator was asked something it cannot do (a bad fault plan, bad arguments)."""


class InjectedFault(Exception):
    """An error a simulated mind, tool or subscriber raises on purpose."""


class UnprintableFault(InjectedFault):
    """An injected error whose ``str()`` itself raises (as some libraries' errors do)."""

    def __str__(self) -> str:
        raise InjectedFault("this error cannot be printed")


class InjectedAbort(BaseException):
    """A BaseException subclass (not an Exception) raised by simulated user code."""


class SimulatedCrash(BaseException):
    """The simulated process died: nothing after this point happened."""
