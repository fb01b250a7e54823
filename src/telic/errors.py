"""Every error telic raises, in one place.

The hierarchy::

    TelicError
    ├── RecordError                 a transition or payload is not acceptable
    │   ├── UnknownKind             a kind outside the catalogue
    │   ├── PayloadInvalid          a payload that fails its kind's schema
    │   ├── PayloadTooLarge         a payload over the ledger's size limit
    │   └── NotCanonical            a value JSON cannot carry exactly (NaN, bytes, ...)
    ├── LedgerError                 anything the ledger refuses or cannot do
    │   ├── UnknownScheme           a ledger URL whose scheme has no backend
    │   ├── LedgerUnavailable       a path or server that cannot be opened
    │   ├── NotALedger              a file or database that is not a telic ledger
    │   ├── RunNotFound             a run id the ledger does not hold
    │   ├── RunExists               a run id already taken
    │   ├── SequenceError           a sequence number outside the run
    │   ├── SequenceConflict        optimistic concurrency: another writer got there first
    │   ├── ChainBroken             verification found a bad link (names the first bad seq)
    │   └── BlobMissing             a referenced blob is absent or does not match its hash
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
    │       └── SpecError           a run spec (TOML) that cannot be loaded or built
    ├── AccessError                 a request without the right to do what it asks
    │   ├── Unauthenticated         no token, or one that is unknown or revoked
    │   ├── Forbidden               a token without the scope the action needs
    │   └── TokenInvalid            a bad token name or scope, or a name already taken
    ├── ToolError                   defining or calling a tool went wrong
    │   ├── UnknownTool             a tool name that is not registered
    │   └── ToolArgumentsInvalid    arguments that fail the tool's schema
    ├── MindError                   a mind could not produce a proposal
    │   ├── ScriptExhausted         a scripted mind asked for more steps than it has
    │   ├── ScriptUnused            a scripted mind ended with steps left over
    │   ├── ModelRequestsForbidden  a real model request while they are switched off
    │   ├── MissingExtra            an optional SDK is not installed (names the extra)
    │   ├── MissingCredentials      no API key for a provider
    │   ├── UnknownProvider         a model string with an unknown prefix
    │   ├── ProviderError           the provider failed after retries
    │   ├── MalformedOutput         the model's reply is not a valid proposal
    │   └── ViewExpired             a view's state read after its mind had answered
    └── SupervisionError            a supervisor's restart intensity was exceeded

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


class BlobMissing(LedgerError):
    def __init__(self, digest: str, reason: str) -> None:
        super().__init__(f"blob {digest[:16]}... {reason}")
        self.digest = digest


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
            f"no API key for {provider}: set {env_var} or pass api_key= to the provider"
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


class MalformedOutput(MindError):
    """The reply is not a valid proposal even after the repair attempts.

    ``calls`` holds the model calls made (one per attempt, each with its ``error``), so the
    kernel can record them before recording the rejection.
    """

    def __init__(self, detail: str, calls: tuple[ModelCalled, ...] = ()) -> None:
        super().__init__(f"model output is not a valid proposal: {detail}")
        self.detail = detail
        self.calls = calls


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
