"""Shared pieces of the simulator's tests: a clean run to break on purpose."""

from __future__ import annotations

from telic.kinds import Payload
from telic.sim import Outcome, generate, run_scenario
from telic.transition import draft

CLEAN_SEED = 3
"""Its swarm, without faults, keeps every invariant: two agents, a high-impact tool (tool0)
and a non-idempotent one (tool1) that really runs, on the memory backend."""


def clean_outcome() -> Outcome:
    return run_scenario(generate(CLEAN_SEED).with_faults(()))


def append(outcome: Outcome, payload: Payload, *, tick: int, agent: str | None = None) -> int:
    """Append ``payload`` to the outcome's run behind the kernel's back; returns its seq."""
    ledger = outcome.machine.reader()
    try:
        [t] = ledger.append(outcome.run_id, [draft(payload, ts=0, tick=tick, agent=agent)])
        return t.seq
    finally:
        ledger.close()
