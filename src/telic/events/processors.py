"""Event processors: the seam where exporters (OpenTelemetry, the dashboard) plug in.

The event kernel calls :meth:`EventProcessor.on_event` synchronously for every published
transition, once, under its own kind; a processor must therefore be quick and never block
(hand work to a queue or a task of its own). One that raises is logged and skipped.
:meth:`EventProcessor.shutdown` is called once by :meth:`EventKernel.aclose`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from telic.events.event import Event

__all__ = ["EventProcessor", "InMemoryProcessor", "NoopProcessor"]


@runtime_checkable
class EventProcessor(Protocol):
    """Receives every published event; see the module docstring for the contract."""

    def on_event(self, event: Event) -> None: ...

    def shutdown(self) -> None: ...


class NoopProcessor:
    """Does nothing (the default seam when no exporter is configured)."""

    def on_event(self, event: Event) -> None:
        return None

    def shutdown(self) -> None:
        return None


class InMemoryProcessor:
    """Collects every event in a list: for tests and for inspection."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        """Every event received, in order."""
        self.shut_down = False
        """True once :meth:`shutdown` was called."""

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def shutdown(self) -> None:
        self.shut_down = True

    def clear(self) -> None:
        self.events.clear()

    def types(self) -> list[str]:
        """The event types received, in order."""
        return [e.type for e in self.events]
