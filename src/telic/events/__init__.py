"""The event kernel: a typed, durable event catalogue with catch-up and TTL subscriptions.

Every event is a ledger transition, or derives from one (``transition.committed``), so the
history survives restarts and can be replayed. :class:`EventKernel` publishes what the kernel
committed; :class:`Subscription` follows it (by pattern, run and agent; catch-up from any
sequence number, then live); :class:`EventProcessor` is the seam for exporters. See
``docs/events.md`` for the catalogue and the semantics.

Module map: ``catalogue`` (the declared types and docs/events.md), ``patterns`` (globs
compiled to routes), ``event``, ``subscription`` (the public face of a subscription),
``state`` (its mutable state), ``hub`` (subscribing, publishing, catch-up, the system record),
``router`` (fan-out), ``ttl`` (the expiry timer), ``handlers`` (the callback API),
``processors`` and ``kernel`` (the facade).
"""

from __future__ import annotations

from telic.events.catalogue import CATALOGUE, SYSTEM_RUN, EventType, event_type
from telic.events.event import Event
from telic.events.handlers import Handler
from telic.events.kernel import EventKernel
from telic.events.patterns import matching_types
from telic.events.processors import EventProcessor, InMemoryProcessor, NoopProcessor
from telic.events.state import HandlerFailure
from telic.events.subscription import Subscription
from telic.events.ttl import MAX_TTL

__all__ = [
    "CATALOGUE",
    "MAX_TTL",
    "SYSTEM_RUN",
    "Event",
    "EventKernel",
    "EventProcessor",
    "EventType",
    "Handler",
    "HandlerFailure",
    "InMemoryProcessor",
    "NoopProcessor",
    "Subscription",
    "event_type",
    "matching_types",
]
