"""One seed, judged: run it, check every invariant, run it again for determinism, and, when
it fails, minimise its fault plan and say how to reproduce it."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from telic.sim.generate import generate
from telic.sim.invariants import Violation, check
from telic.sim.runner import Escape, Outcome, run_scenario
from telic.sim.scenario import FaultPlan, Scenario
from telic.state import RunState

__all__ = ["SeedReport", "head_hash", "judge", "reproducer", "shrink", "signature", "simulate"]


@dataclass(frozen=True, slots=True)
class SeedReport:
    seed: int
    scenario: Scenario
    violations: tuple[Violation, ...]
    status: str
    head_hash: str
    minimal: FaultPlan | None = None
    """The smallest fault plan found that still breaks the same invariant (when shrunk)."""
    escapes: tuple[Escape, ...] = field(default=())
    fired: tuple[str, ...] = ()
    """The faults that took effect, in order."""
    real_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def cause(self) -> str:
        """The first broken invariant (what a failing seed is grouped under)."""
        return self.violations[0].invariant if self.violations else ""

    def reproducer(self) -> str:
        plan = self.scenario if self.minimal is None else self.scenario.with_faults(self.minimal)
        return reproducer(plan)


def reproducer(scenario: Scenario) -> str:
    """The one-line command that runs exactly ``scenario``."""
    return f"python -m telic.sim --seed {scenario.seed} --plan {shlex.quote(scenario.plan_json())}"


def head_hash(outcome: Outcome) -> tuple[str, str]:
    """The run's status and head hash in its ledger ("" if it has none)."""
    ledger = outcome.machine.reader()
    try:
        info = ledger.run(outcome.run_id)
        status = RunState(ledger.state_at(outcome.run_id)).status
        return status, info.head_hash.hex()
    except Exception as exc:  # a ledger the run broke: the checks say how
        return f"unreadable ({type(exc).__name__})", ""
    finally:
        ledger.close()


def judge(scenario: Scenario, *, twice: bool = True, real_timeout_s: float = 30.0) -> SeedReport:
    """Run ``scenario`` (twice, for determinism, unless ``twice`` is False) and check it."""
    first = run_scenario(scenario, real_timeout_s=real_timeout_s)
    try:
        violations = check(first)
        status, head = head_hash(first)
    finally:
        first.close()
    if twice and first.hang is None:
        second = run_scenario(scenario, real_timeout_s=real_timeout_s)
        try:
            status2, head2 = head_hash(second)
        finally:
            second.close()
        if (status2, head2) != (status, head):
            violations.append(
                Violation(
                    "deterministic",
                    f"the same seed ended {status} with head {head[:12]}, then {status2} "
                    f"with head {head2[:12]}",
                )
            )
    return SeedReport(
        scenario.seed,
        scenario,
        tuple(violations),
        status,
        head,
        escapes=tuple(first.escapes),
        fired=tuple(first.machine.injected),
        real_s=first.real_s,
    )


def shrink(
    report: SeedReport, *, attempt: Callable[[Scenario], SeedReport] | None = None
) -> FaultPlan:
    """The smallest fault plan (by removing faults one at a time, to a fixpoint) under which
    the seed still fails as it failed first (the same :func:`signature`)."""
    twice = report.cause == "deterministic"

    def again(s: Scenario) -> SeedReport:
        return judge(s, twice=twice)

    run = attempt or again
    target = signature(report.violations[0])
    faults = list(report.scenario.faults)
    changed = True
    while changed and faults:
        changed = False
        for i in range(len(faults)):
            fewer = faults[:i] + faults[i + 1 :]
            trial = run(report.scenario.with_faults(tuple(fewer)))
            if any(signature(v) == target for v in trial.violations):
                faults = fewer
                changed = True
                break
    return tuple(faults)


def signature(v: Violation) -> str:
    """What makes two violations the same failure: the invariant and what it says, numbers
    aside (so that a shrunk plan reproduces this failure, not another of the same invariant)."""
    return f"{v.invariant}: {re.sub(r'[0-9a-f]{8,}|[0-9]+', '#', v.detail)}"


def simulate(
    seed: int,
    *,
    faults: FaultPlan | None = None,
    minimise: bool = True,
    real_timeout_s: float = 30.0,
) -> SeedReport:
    """Generate, run and judge ``seed`` (under ``faults`` instead of its own, if given)."""
    scenario = generate(seed)
    if faults is not None:
        scenario = scenario.with_faults(faults)
    report = judge(scenario, real_timeout_s=real_timeout_s)
    if report.ok or not minimise or not scenario.faults:
        return report
    minimal = shrink(report)
    return SeedReport(
        report.seed,
        report.scenario,
        report.violations,
        report.status,
        report.head_hash,
        minimal=minimal,
        escapes=report.escapes,
        fired=report.fired,
        real_s=report.real_s,
    )
