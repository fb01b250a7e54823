"""The event: a committed transition seen under one declared event type."""

from __future__ import annotations

from typing import Any, NamedTuple

from telic.kinds import Payload
from telic.transition import Transition

__all__ = ["Event"]


class Event(NamedTuple):
    """A transition delivered under an event type.

    For a transition kind the type is the kind itself; for a derived type (e.g.
    ``transition.committed``) it is the derived name and :attr:`transition` is the same
    transition.
    """

    type: str
    """The declared event type the subscriber receives this as."""
    transition: Transition
    """The committed transition (from the ledger) the event is or derives from."""

    @property
    def run(self) -> str:
        return self.transition.run

    @property
    def seq(self) -> int:
        return self.transition.seq

    @property
    def kind(self) -> str:
        return self.transition.kind

    @property
    def agent(self) -> str | None:
        return self.transition.agent

    @property
    def tick(self) -> int:
        return self.transition.tick

    @property
    def data(self) -> dict[str, Any]:
        """The payload as JSON."""
        return self.transition.data

    @property
    def payload(self) -> Payload:
        """The typed payload model (validated on access)."""
        return self.transition.payload
