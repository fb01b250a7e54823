"""Deterministic simulation of the whole runtime: seeded swarms under faults at every seam.

For each seed the simulator builds a random swarm (agents, roles, tools, budgets, policies,
conflict resolvers, a scripted approver) and a random fault plan (minds, tools, storage,
process crashes, event subscribers), runs it on the virtual clock, and checks the invariants
of :mod:`telic.sim.invariants`. A failing seed is a one-line reproducer with a minimised
fault plan. See docs/simulation.md.

Layout: ``scenario`` (the records), ``generate`` (seed to scenario), ``world`` (minds, tools,
approver, subscribers and the log of what happened), ``storage`` (ledgers that crash or fail),
``loop`` (the virtual clock's loop with hang detection), ``runner`` (process lifetimes,
crash and resume), ``invariants``, ``seeds`` (judge, shrink, reproduce), ``cli``.
"""

from __future__ import annotations

from telic.sim.generate import generate
from telic.sim.invariants import INVARIANTS, Violation, check
from telic.sim.runner import Outcome, run_scenario
from telic.sim.scenario import FaultPlan, Scenario, fault_plan
from telic.sim.seeds import SeedReport, judge, reproducer, shrink, simulate

__all__ = [
    "INVARIANTS",
    "FaultPlan",
    "Outcome",
    "Scenario",
    "SeedReport",
    "Violation",
    "check",
    "fault_plan",
    "generate",
    "judge",
    "reproducer",
    "run_scenario",
    "shrink",
    "simulate",
]
