"""Grounding: every claim must be supported by the observations it cites.

The rule-based verifier looks for the claimed value inside the payloads of the cited
transitions (tool results, observations, beliefs). A claim that cites nothing, cites something
that is not an observation, or whose value is not found, is a hallucination. An LLM verifier
can plug into the same :class:`Verifier` seam.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from telic.kinds import Claim
from telic.transition import Transition

__all__ = ["OBSERVATION_KINDS", "RuleVerifier", "Verifier"]

OBSERVATION_KINDS = frozenset(
    {"tool.completed", "observation.recorded", "belief.updated", "message.sent"}
)
"""Kinds whose payloads count as observations."""

Lookup = Callable[[int], Transition | None]


@runtime_checkable
class Verifier(Protocol):
    @property
    def name(self) -> str:
        """The verifier's name, recorded as a passed check (read-only: verifiers are frozen dataclasses)."""
        ...

    def unsupported(self, claim: Claim, lookup: Lookup) -> str | None:
        """Why ``claim`` is not supported, or None if it is."""
        ...


def _leaves(value: Any) -> Iterator[Any]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())  # pyright: ignore[reportUnknownArgumentType,reportUnknownMemberType]
        elif isinstance(item, list):
            stack.extend(item)  # pyright: ignore[reportUnknownArgumentType]
        else:
            yield item


def _matches(claimed: Any, seen: Any, rel_tol: float) -> bool:
    if isinstance(claimed, bool) or isinstance(seen, bool):
        return claimed is seen
    if isinstance(claimed, (int, float)) and isinstance(seen, (int, float)):
        return abs(claimed - seen) <= rel_tol * max(abs(claimed), abs(seen), 1e-9)
    if isinstance(claimed, str) and isinstance(seen, str):
        return claimed.strip().casefold() == seen.strip().casefold()
    return claimed == seen


@dataclass(frozen=True, slots=True)
class RuleVerifier:
    """Claims must cite observations that contain the claimed value (numbers within ``rel_tol``)."""

    rel_tol: float = 0.005
    name: str = "grounding"

    def unsupported(self, claim: Claim, lookup: Lookup) -> str | None:
        if not claim.evidence:
            return f"claim {claim.key}={claim.value!r} cites no observation"
        targets = (
            list(_leaves(claim.value)) if isinstance(claim.value, (dict, list)) else [claim.value]
        )
        for seq in claim.evidence:
            t = lookup(seq)
            if t is None:
                return f"claim {claim.key}={claim.value!r} cites seq {seq}, which does not exist"
            if t.kind not in OBSERVATION_KINDS:
                return f"claim {claim.key}={claim.value!r} cites seq {seq}, a {t.kind}, not an observation"
        seen = [leaf for seq in claim.evidence for leaf in _leaves((lookup(seq) or _never()).data)]
        missing = [v for v in targets if not any(_matches(v, s, self.rel_tol) for s in seen)]
        if missing:
            cited = ", ".join(map(str, claim.evidence))
            return f"claim {claim.key}={claim.value!r}: {missing[0]!r} appears in none of the cited observations ({cited})"
        return None


def _never() -> Transition:  # pragma: no cover - lookups were checked just above
    raise AssertionError("cited transition vanished")
