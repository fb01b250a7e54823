"""What the stages of a tick hand each other: frozen records, one per hand-over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telic.proposal import Proposal
from telic.tools import Tool

if TYPE_CHECKING:
    from telic.kernel.batch import Batch
    from telic.kernel.run import Run

__all__ = [
    "Asked",
    "Executed",
    "Grounded",
    "Passing",
    "Proposed",
    "Recorded",
    "Tick",
    "ToolCall",
]


@dataclass(frozen=True, slots=True)
class Tick:
    """The tick a stage works on: the run, the batch its records go to, the tick's number."""

    run: Run
    batch: Batch
    number: int


@dataclass(frozen=True, slots=True)
class Asked:
    """What the ask stage got: one reply per live agent, in agent order."""

    tick: Tick
    agents: tuple[str, ...]
    replies: tuple[object, ...]
    """Each agent's :class:`~telic.kernel.intake.Admitted` or
    :class:`~telic.kernel.intake.Refused`, the :class:`~telic.kernel.process.AgentCrash` or
    :class:`~telic.errors.MalformedOutput` it answered with, or
    :class:`~telic.kernel.stages.shared.Unanswered` past :attr:`limit`."""
    limit: float
    """The last-resort deadline the replies were waited for (seconds)."""


@dataclass(frozen=True, slots=True)
class Proposed:
    """A proposal recorded as ``proposal.made`` in this tick."""

    agent: str
    role: str
    order: int
    """The agent's place in the run's agent order (conflicts are settled by it)."""
    proposal: Proposal
    seq: int
    """The seq of its ``proposal.made``."""
    json: Mapping[str, Any]
    """The proposal as JSON, computed once for every check."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """The record stage's result: the proposals to check, the agents that crashed."""

    proposed: tuple[Proposed, ...]
    crashed: tuple[str, ...]
    invalid: bool
    """An agent crashed or did not answer: the tick is not valid."""


@dataclass(frozen=True, slots=True)
class Passing:
    """A proposal no stage has refused yet, with the checks it has passed so far."""

    made: Proposed
    checks: tuple[str, ...] = ()

    def passed(self, check: str) -> Passing:
        """This proposal having passed ``check`` too."""
        return Passing(self.made, (*self.checks, check))


@dataclass(frozen=True, slots=True)
class Grounded:
    """The grounding stage's result: the grounded proposals and the agents that made claims
    nothing supports (killed and the run restored at the end of the tick)."""

    passing: tuple[Passing, ...]
    hallucinated: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call whose ``tool.started`` is in the batch: what the execute stage runs."""

    agent: str
    tool: Tool
    call_id: str
    args: dict[str, Any]
    started: int
    """The seq of its (latest) ``tool.started``: the cause of its outcome."""
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Executed:
    """The execute stage's result: the agents whose calls failed for good (in call order)."""

    failed: tuple[str, ...]
