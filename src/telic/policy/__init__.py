"""Policy: what the kernel checks before it commits anything a mind proposes.

The order is fixed: schema and size, tool allowlist, arguments, budget, loop guard (these are
:class:`Check` objects, run per proposal; add your own with ``Policy(extra=...)``), then
conflicts between the tick's proposals, grounding of claims, and approval for high-impact tools.
Every verdict is recorded, accepted or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le

from telic.policy.checks import (
    AllowlistCheck,
    ArgumentsCheck,
    BudgetCheck,
    Check,
    CheckContext,
    LoopCheck,
    SchemaCheck,
    Verdict,
)
from telic.policy.conflicts import (
    Budgeter,
    Candidate,
    FirstByOrder,
    PriorityByRole,
    Resolution,
    Resolver,
    find_conflicts,
)
from telic.policy.grounding import RuleVerifier, Verifier

__all__ = [
    "AllowlistCheck",
    "ArgumentsCheck",
    "BudgetCheck",
    "Budgeter",
    "Candidate",
    "Check",
    "CheckContext",
    "FirstByOrder",
    "LoopCheck",
    "Policy",
    "PriorityByRole",
    "Resolution",
    "Resolver",
    "RuleVerifier",
    "SchemaCheck",
    "Verdict",
    "Verifier",
    "find_conflicts",
]


@dataclass(frozen=True)
class Policy:
    """The kernel's rules for one run.

    The bounds in the field types (``Ge``, ``Gt``, ``Le``) are what a run spec's ``[policy]``
    table is validated against (:mod:`telic.spec` derives its entries from this class)."""

    max_proposal_bytes: Annotated[int, Ge(256)] = 64 * 1024
    """The largest proposal (its JSON) a mind may make."""
    loop_repeats: Annotated[int, Ge(2)] = 3
    """The same proposal this many times in a row is a loop."""
    stall_ticks: Annotated[int, Ge(0)] = 5
    """No progress for this many ticks stops the run; 0 never stops it."""
    extra: tuple[Check, ...] = ()
    """User checks, run after the built-in per-proposal checks."""
    resolver: Resolver = field(default_factory=FirstByOrder)
    """Default conflict resolution."""
    resolvers: Mapping[str, Resolver] = field(default_factory=dict[str, Resolver])
    """Resolution by resource (exact name, or a prefix ending in ``*``, e.g. ``plan:*``)."""
    verifier: Verifier | None = field(default_factory=RuleVerifier)
    """Grounding of claims; None turns it off."""
    exploration_threshold: Annotated[float, Ge(0), Le(1)] = 0.5
    """Proposals less confident than this spawn an explorer instead of being executed."""
    warn_at: Annotated[float, Gt(0), Le(1)] = 0.8
    """Fraction of a budget dimension that records a warning."""
    approval_timeout_s: Annotated[float, Gt(0)] | None = None
    """How long a high-impact call waits for a decision; then no answer means deny. None
    (the default): the run stays parked, durably, until someone decides."""
    fail_agent_on_tool_error: bool = True
    """A tool failure or timeout crashes the calling agent (its supervisor restarts it)."""
    mind_timeout_s: Annotated[float, Gt(0)] = 60.0
    """A mind that takes longer is treated as failed."""
    cancel_grace_s: Annotated[float, Ge(0)] = 1.0
    """How long a mind, tool or approver past its deadline has to end once cancelled; one
    that swallows the cancellation is then abandoned (see ``Kernel.abandoned``)."""

    def checks(self) -> tuple[Check, ...]:
        return (
            SchemaCheck(self.max_proposal_bytes),
            AllowlistCheck(),
            ArgumentsCheck(),
            BudgetCheck(),
            LoopCheck(self.loop_repeats),
            *self.extra,
        )

    def resolver_for(self, resource: str) -> Resolver:
        if resource in self.resolvers:
            return self.resolvers[resource]
        for key, resolver in self.resolvers.items():
            if key.endswith("*") and resource.startswith(key[:-1]):
                return resolver
        return self.resolver

    def describe(self) -> dict[str, Any]:
        """The policy as JSON, for the run's record."""
        return {
            "checks": [c.name for c in self.checks()],
            "resolver": self.resolver.name,
            "resolvers": {k: v.name for k, v in self.resolvers.items()},
            "verifier": self.verifier.name if self.verifier else None,
            "exploration_threshold": self.exploration_threshold,
            "warn_at": self.warn_at,
            "loop_repeats": self.loop_repeats,
            "stall_ticks": self.stall_ticks,
            "approval_timeout_s": self.approval_timeout_s,
        }
