"""telic: a kernel for LLM agents.

Layering (dependencies point down only)::

    cli, demo                 use only the public API below
    kernel                    wires everything: ticks, effects, restore, resume
    policy, supervision,      see records and read-only state, never a ledger or the bus
    minds, tools
    events                    the event kernel: catalogue, subscriptions, TTL
    ledger                    append-only, hash-chained; memory / SQLite / PostgreSQL
    reducer                   the pure fold of transitions into state
    kinds, transition,        the records, their canonical encoding and hashing
    canonical, errors, clock
"""

from __future__ import annotations

from telic.clock import Clock, ContinuedClock, SystemClock, VirtualClock
from telic.errors import TelicError
from telic.events import Event, EventKernel, Subscription
from telic.kernel import (
    AgentBudget,
    AgentSpec,
    Artifact,
    Budget,
    Kernel,
    Run,
    RunConfig,
    RunResult,
    Sweeper,
    Team,
)
from telic.kinds import CATALOGUE, Claim
from telic.ledger import Lease, Ledger, open_ledger
from telic.minds import FunctionMind, Mind, ScriptedMind, View
from telic.policy import Budgeter, FirstByOrder, Policy, PriorityByRole, RuleVerifier
from telic.proposal import Proposal
from telic.reducer import apply, fold, state_hash
from telic.state import RunState
from telic.supervision import ChildSpec, Supervisor
from telic.tools import RetryPolicy, Tool, tool
from telic.transition import Draft, Transition, draft

__version__ = "0.1.0"

__all__ = [
    "CATALOGUE",
    "AgentBudget",
    "AgentSpec",
    "Artifact",
    "Budget",
    "Budgeter",
    "ChildSpec",
    "Claim",
    "Clock",
    "ContinuedClock",
    "Draft",
    "Event",
    "EventKernel",
    "FirstByOrder",
    "FunctionMind",
    "Kernel",
    "Lease",
    "Ledger",
    "Mind",
    "Policy",
    "PriorityByRole",
    "Proposal",
    "RetryPolicy",
    "RuleVerifier",
    "Run",
    "RunConfig",
    "RunResult",
    "RunState",
    "ScriptedMind",
    "Subscription",
    "Supervisor",
    "Sweeper",
    "SystemClock",
    "Team",
    "TelicError",
    "Tool",
    "Transition",
    "View",
    "VirtualClock",
    "__version__",
    "apply",
    "draft",
    "fold",
    "open_ledger",
    "state_hash",
    "tool",
]
