"""Conflicts: proposals of one tick that claim the same exclusive resource.

A resolution policy is named (the name goes on record in ``conflict.resolved``) and picks one
winner among the candidates, with a reason. Three ship: the budgeter's (cheapest that fits what
is left of the budget; where a candidate's cost is read from is its configuration), priority
by role, and first by order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from telic.errors import ConfigError
from telic.proposal import Proposal
from telic.state import RunState

__all__ = [
    "COST_FIELDS",
    "Budgeter",
    "Candidate",
    "FirstByOrder",
    "PriorityByRole",
    "Resolution",
    "Resolver",
    "find_conflicts",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One proposal in a conflict, with where it stands in the tick's order."""

    seq: int
    """Sequence number of the recorded proposal."""
    agent: str
    role: str
    order: int
    proposal: Proposal


@dataclass(frozen=True, slots=True)
class Resolution:
    winner: Candidate
    why: str


@runtime_checkable
class Resolver(Protocol):
    @property
    def name(self) -> str:
        """The policy's name, recorded in ``conflict.resolved`` (read-only: resolvers are
        frozen dataclasses)."""
        ...

    def resolve(
        self, resource: str, candidates: Sequence[Candidate], state: RunState
    ) -> Resolution: ...


COST_FIELDS = ("total", "price", "cost")
"""Where :class:`Budgeter` looks for a candidate's cost in its proposed value, by default."""


def _cost(c: Candidate, fields: Sequence[str]) -> float | None:
    if c.proposal.cost is not None:
        return c.proposal.cost
    value = c.proposal.args.get("value")
    if isinstance(value, dict):
        for key in fields:
            v = value.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
    return None


def _field_names(value: object) -> bool:
    """Whether ``value`` is a non-empty tuple of non-empty strings (checked at run time: a
    caller may pass anything)."""
    if not isinstance(value, tuple) or not value:
        return False
    items: tuple[object, ...] = value  # pyright: ignore[reportUnknownVariableType]
    return all(isinstance(f, str) and f for f in items)


@dataclass(frozen=True, slots=True)
class Budgeter:
    """The budgeter's policy: the cheapest candidate that fits what is left of the budget."""

    name: str = "budgeter"
    dimension: str = "cost"
    """The budget dimension that bounds the choice."""
    left: Callable[[RunState], float] | None = None
    """What is left, from the state (e.g. a trip budget minus what the plan already spends);
    by default the run's own budget in :attr:`dimension` minus what was spent."""
    cost_fields: tuple[str, ...] = COST_FIELDS
    """A candidate without a stated ``cost`` costs the first of these fields of its proposed
    value that holds a number (the reference run's plans state ``total_chf``)."""

    def __post_init__(self) -> None:
        if not _field_names(self.cost_fields):
            raise ConfigError(
                f"Budgeter cost_fields must be a tuple of field names, not {self.cost_fields!r}"
            )

    def resolve(
        self, resource: str, candidates: Sequence[Candidate], state: RunState
    ) -> Resolution:
        left = None if self.left is None else self.left(state)
        if left is None and self.dimension in state.budget:
            left = state.budget[self.dimension] - state.spent.of(self.dimension)
        priced = [(c, _cost(c, self.cost_fields)) for c in candidates]
        known = sorted(
            ((cost, c.order, c) for c, cost in priced if cost is not None),
            key=lambda x: (x[0], x[1]),
        )
        if not known:
            first = min(candidates, key=lambda c: c.order)
            return Resolution(first, "no candidate states a cost; first by order")
        fitting = [k for k in known if left is None or k[0] <= left]
        cost, _, best = fitting[0] if fitting else known[0]
        others = ", ".join(f"{c.agent} {x:g}" for c, x in priced if c is not best and x is not None)
        if fitting:
            why = f"cheapest that fits: {best.agent} at {cost:g}" + (
                f" (vs {others})" if others else ""
            )
            if left is not None:
                why += f", {left:g} left"
        else:
            why = f"none fits {left:g}; cheapest is {best.agent} at {cost:g}"
        return Resolution(best, why)


@dataclass(frozen=True, slots=True)
class PriorityByRole:
    """The candidate whose role ranks highest; ties go to the first by order."""

    ranks: Mapping[str, int] = field(default_factory=dict[str, int])
    name: str = "priority"

    def resolve(
        self, resource: str, candidates: Sequence[Candidate], state: RunState
    ) -> Resolution:
        best = min(candidates, key=lambda c: (-self.ranks.get(c.role, 0), c.order))
        return Resolution(best, f"{best.role} ranks highest ({self.ranks.get(best.role, 0)})")


@dataclass(frozen=True, slots=True)
class FirstByOrder:
    """The first candidate in the tick's deterministic order."""

    name: str = "first"

    def resolve(
        self, resource: str, candidates: Sequence[Candidate], state: RunState
    ) -> Resolution:
        best = min(candidates, key=lambda c: c.order)
        return Resolution(best, f"{best.agent} came first in the tick's order")


def find_conflicts(candidates: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    """Resources claimed by more than one candidate, in first-claim order."""
    by_resource: dict[str, list[Candidate]] = {}
    for c in candidates:
        resource = c.proposal.claimed_resource()
        if resource is not None:
            by_resource.setdefault(resource, []).append(c)
    return {r: cs for r, cs in by_resource.items() if len(cs) > 1}
