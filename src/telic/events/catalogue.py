"""The event catalogue: every event type, declared once.

An event type is either a **transition kind** (one of :data:`telic.kinds.CATALOGUE`; the event
carries that transition) or **derived** from a set of kinds (``transition.committed`` is
delivered for every committed transition; the event carries the same transition). Nothing
else can be published or subscribed to: an undeclared name is
:class:`~telic.errors.UnknownEventType`.

``docs/events.md`` is generated from this module (``python -m telic.events``) and a
test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from telic import kinds
from telic.kinds import Payload

__all__ = [
    "CATALOGUE",
    "DERIVED",
    "SYSTEM_RUN",
    "EventType",
    "event_type",
    "render_markdown",
]

SYSTEM_RUN: Final = "telic-events"
"""The run of the ledger where the event kernel records its own transitions (subscriptions)."""


@dataclass(frozen=True, slots=True)
class EventType:
    """One declared event type."""

    name: str
    """What subscribers match patterns against, e.g. ``tool.failed``."""
    doc: str
    """One line for ``docs/events.md``."""
    section: str
    """The part of the lifecycle it belongs to (for the docs)."""
    sources: frozenset[str]
    """The transition kinds this event is delivered for: its own kind, or those it derives from."""
    payload: type[Payload] | None = None
    """The payload model, for a transition kind; None for a derived type."""

    @property
    def derived(self) -> bool:
        return self.payload is None


def _kind(model: type[Payload], section: str) -> EventType:
    return EventType(model.kind, model.summary, section, frozenset((model.kind,)), model)


def _derived(name: str, doc: str, section: str, sources: frozenset[str]) -> EventType:
    return EventType(name, doc, section, sources, None)


_ALL_KINDS: Final = frozenset(kinds.CATALOGUE)

_DECLARED: Final[tuple[EventType, ...]] = (
    # runs
    _kind(kinds.RunBooted, "runs"),
    _kind(kinds.RunResumed, "runs"),
    _kind(kinds.RunForked, "runs"),
    _kind(kinds.RunPaused, "runs"),
    _kind(kinds.RunCompleted, "runs"),
    _kind(kinds.RunFailed, "runs"),
    _kind(kinds.RunStopped, "runs"),
    _derived(
        "run.ended",
        "The run reached an end: completed, failed or stopped (the same transition).",
        "runs",
        frozenset(("run.completed", "run.failed", "run.stopped")),
    ),
    # ticks
    _kind(kinds.TickStarted, "ticks"),
    _kind(kinds.TickCompleted, "ticks"),
    # agents and supervision
    _kind(kinds.AgentSpawned, "agents and supervision"),
    _kind(kinds.AgentRestarted, "agents and supervision"),
    _kind(kinds.AgentFailed, "agents and supervision"),
    _kind(kinds.AgentTerminated, "agents and supervision"),
    _kind(kinds.SupervisorEscalated, "agents and supervision"),
    _kind(kinds.SupervisorRestarted, "agents and supervision"),
    # proposals and policy
    _kind(kinds.ProposalMade, "proposals and policy"),
    _kind(kinds.ProposalAccepted, "proposals and policy"),
    _kind(kinds.ProposalRejected, "proposals and policy"),
    _kind(kinds.BudgetWarning, "proposals and policy"),
    _kind(kinds.BudgetExhausted, "proposals and policy"),
    _kind(kinds.LoopDetected, "proposals and policy"),
    _kind(kinds.ConflictDetected, "proposals and policy"),
    _kind(kinds.ConflictResolved, "proposals and policy"),
    _kind(kinds.ApprovalRequested, "proposals and policy"),
    _kind(kinds.ApprovalGranted, "proposals and policy"),
    _kind(kinds.ApprovalDenied, "proposals and policy"),
    _kind(kinds.HallucinationDetected, "proposals and policy"),
    _kind(kinds.ExplorationSpawned, "proposals and policy"),
    # tools
    _kind(kinds.ToolStarted, "tools"),
    _kind(kinds.ToolCompleted, "tools"),
    _kind(kinds.ToolFailed, "tools"),
    _kind(kinds.ToolTimeout, "tools"),
    _kind(kinds.ToolUnknownOutcome, "tools"),
    _derived(
        "tool.finished",
        "A tool call ended: completed, failed, timed out or unknown (the same transition).",
        "tools",
        frozenset(("tool.completed", "tool.failed", "tool.timeout", "tool.unknown")),
    ),
    # knowledge and models
    _kind(kinds.ObservationRecorded, "knowledge and models"),
    _kind(kinds.MemoryUpdated, "knowledge and models"),
    _kind(kinds.BeliefUpdated, "knowledge and models"),
    _kind(kinds.PlanUpdated, "knowledge and models"),
    _kind(kinds.MessageSent, "knowledge and models"),
    _kind(kinds.StateRestored, "knowledge and models"),
    _kind(kinds.ArtifactRecorded, "knowledge and models"),
    _kind(kinds.ModelCalled, "knowledge and models"),
    _kind(kinds.ModelFailed, "knowledge and models"),
    # subscriptions (recorded by the event kernel in its system run)
    _kind(kinds.SubscriptionCreated, "subscriptions"),
    _kind(kinds.SubscriptionExpired, "subscriptions"),
    _kind(kinds.SubscriptionEnded, "subscriptions"),
    _kind(kinds.SubscriberLagged, "subscriptions"),
    # access (recorded by the server and `telic token` in their system run)
    _kind(kinds.TokenCreated, "access"),
    _kind(kinds.TokenRevoked, "access"),
    _kind(kinds.ApiCalled, "access"),
    # every transition
    _derived(
        "transition.committed",
        "Any transition was committed to a ledger (the same transition, whatever its kind).",
        "every transition",
        _ALL_KINDS,
    ),
)


def _build() -> dict[str, EventType]:
    out: dict[str, EventType] = {}
    for et in _DECLARED:
        if et.name in out:  # pragma: no cover - a programming error caught at import
            raise RuntimeError(f"event type {et.name} is declared twice")
        unknown = et.sources - _ALL_KINDS
        if unknown:  # pragma: no cover - a programming error caught at import
            raise RuntimeError(f"event type {et.name} derives from unknown kinds {unknown}")
        out[et.name] = et
    missing = _ALL_KINDS - out.keys()
    if missing:  # pragma: no cover - a programming error caught at import
        raise RuntimeError(f"transition kinds without an event type: {sorted(missing)}")
    return out


CATALOGUE: Final[dict[str, EventType]] = _build()
"""Every event type by name, in declaration order."""

DERIVED: Final[tuple[EventType, ...]] = tuple(et for et in _DECLARED if et.derived)
"""The derived types, in the order a subscription prefers them (after the transition's kind)."""


def event_type(name: str) -> EventType:
    """The declared type ``name``, or :class:`~telic.errors.UnknownEventType`."""
    try:
        return CATALOGUE[name]
    except KeyError:
        from telic.errors import UnknownEventType

        raise UnknownEventType(name) from None


# -- docs/events.md ----------------------------------------------------------------------

_INTRO: Final = """\
# Events

<!-- Generated by `python -m telic.events > docs/events.md`; a test keeps it equal
     to the code. Edit src/telic/events/catalogue.py, not this file. -->

Everything that happens in telic is a transition appended to a run's ledger; the event kernel
(`telic.events.EventKernel`) lets code outside the tick loop follow those transitions. Every
event is a ledger transition or derives from one, so the history survives restarts and can be
replayed. The catalogue below is the complete list of event types: publishing or subscribing to
anything else raises `UnknownEventType`.

## Using it

```python
import asyncio

from telic.events import EventKernel
from telic.kinds import TickStarted
from telic.ledger import open_ledger
from telic.transition import draft


async def main() -> None:
    ledger = open_ledger("memory://")
    ledger.create_run("r1")
    async with EventKernel(ledger) as events:
        # what the kernel does after every ledger append
        events.publish(ledger.append("r1", [draft(TickStarted(tick=1), ts=0, tick=1)]))

        # an async iterator: catch up on run "r1" from sequence 1, then follow it live
        async with events.subscribe("tick.*", run="r1", from_seq=1, ttl=30.0) as sub:
            async for event in sub:
                print(event.seq, event.type, event.payload)
                break

        # a callback, run in a task the event kernel owns, with a timeout per call
        events.on("*.failed", lambda event: print("failed:", event.data), timeout=1.0)
    # leaving `async with` awaits aclose(): it cancels and awaits every task it owns


asyncio.run(main())
```

## Semantics

- **Patterns** are globs over event type names: `*` matches any run of characters, so
  `tool.*`, `*.failed`, `run.completed` and `*` all work; several patterns may be joined with
  `,` (`tool.failed,tool.timeout`). A malformed pattern (empty, upper case, characters other
  than `a-z 0-9 _ . * ,`, empty segments) or a glob that matches no declared type raises
  `BadPattern`; an exact name that is not declared raises `UnknownEventType`.
- **One event per transition per subscription.** A transition has its own kind as event type
  and may also derive other types (`transition.committed` for every transition). A subscription
  receives each matching transition once: as its own kind when the pattern matches that,
  otherwise as the first derived type (in the order of the table) that it matches. So `*`
  delivers every transition once, under its own kind; `transition.committed` delivers every
  transition once, typed `transition.committed`.
- **Filters**: `run=` (one run), `agent=` (the transition's agent).
- **Catch-up, then live**: with `run=` and `from_seq=`, the subscription first reads the
  ledger from `from_seq` in pages, then switches to live delivery without a gap or a duplicate
  at the seam, also while transitions keep being published. `from_seq` may be at most the run's
  head + 1 (`SequenceError` otherwise); an unknown run raises `RunNotFound`; `from_seq`
  without `run`, a bad `maxsize` or `overflow` raise `BadSubscription`. Publish only what the
  ledger has already committed, in the order it was appended (the seam relies on both);
  `publish` from another thread than the loop's (after an append in a worker) is handed to
  the loop in order. Subscribe and read on the loop's thread. Catch-up is pulled by the reader: a subscription that is never read costs
  nothing while it catches up.
- **Ending**: `close()` (or leaving `with`/`async with`) ends iteration and records
  `subscription.ended`. Expiry, disconnection and `EventKernel.aclose()` make the reader raise
  `SubscriptionClosed`; subscribing after `aclose()` raises `EventKernelClosed`. One task at a
  time may read a subscription (a second one gets `RuntimeError`, not a hang).
- **Bounded queues**: each subscription has a queue of `maxsize` events. On overflow,
  `drop_oldest` drops the oldest queued event; the first drop of a *lag episode* records one
  `subscriber.lagged` transition (its `dropped` counts the events dropped by the publish that
  began the episode; `Subscription.dropped` keeps the running total), which the lagging
  subscription receives before its next event whatever its pattern. The episode ends when the
  reader has drained its queue. `disconnect` closes the subscription instead (recording
  `subscription.ended`); its reader then gets `SubscriptionClosed`. Publishing never waits on
  a subscriber and never appends to the ledger itself: what it has to record is appended right
  after, as one group, by a callback of the running loop (at once if no loop is running).
- **TTL**: a subscription with `ttl=` seconds is renewed by every event its reader takes and by
  `renew()`. When it lapses, a timer task of the event kernel (driven by the injected clock,
  not by publishing) removes it, frees its queue, and records `subscription.expired`; its
  reader gets `SubscriptionClosed`. A TTL must be positive, finite and at most a week
  (`BadTTL`).
- **Callbacks**: `on(pattern, handler, timeout=...)` runs sync or async handlers one event at a
  time in a task the event kernel owns. A handler that raises is logged and counted
  (`Subscription.failures`); an async handler that runs past `timeout` is cancelled; either way
  the subscription goes on. Handlers may publish and subscribe. Sync handlers cannot be
  interrupted, so they must not block.
- **The system run**: the event kernel records its own transitions (`subscription.*`,
  `subscriber.lagged`) in the ledger run `telic-events`, created on first use. It holds no
  `run.booted`: it is not a run of agents, only the record of subscriptions. These
  transitions are published like any other. A subscription's id is `sub-<seq>`, the sequence
  number of its `subscription.created` in that run: unique in the ledger, also with several
  processes on one file, and deterministic.
- **Processors** (`EventProcessor`: `on_event`, `shutdown`) see every published transition
  once, under its own kind, synchronously; they must be quick (queue work elsewhere). A
  processor that raises is logged and skipped. `NoopProcessor` and `InMemoryProcessor` ship
  with telic; exporters (OpenTelemetry, the dashboard) plug in here.
"""


def render_markdown() -> str:
    """The text of ``docs/events.md``."""
    lines = [_INTRO, "## The catalogue", ""]
    section = ""
    for et in _DECLARED:
        if et.section != section:
            section = et.section
            lines += [f"### {section.capitalize()}", ""]
            lines += ["| Event type | Source | Description |", "| --- | --- | --- |"]
        if et.payload is not None:
            source = f"transition, payload `{et.payload.__name__}`"
        elif et.sources == _ALL_KINDS:
            source = "derived from every kind"
        else:
            source = "derived from " + ", ".join(f"`{k}`" for k in sorted(et.sources))
        lines.append(f"| `{et.name}` | {source} | {et.doc} |")
        nxt = _DECLARED.index(et) + 1
        if nxt == len(_DECLARED) or _DECLARED[nxt].section != section:
            lines.append("")
    return "\n".join(lines)
