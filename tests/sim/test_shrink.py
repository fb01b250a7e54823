"""Minimising a failing seed's fault plan."""

from __future__ import annotations

from telic.sim import Scenario, SeedReport, Violation, generate, reproducer, shrink
from telic.sim.scenario import CrashFault, MindFault, SubscriberFault, ToolFault

CULPRIT = ToolFault(tool="tool0", call=2, effect="hang")
PLAN = (
    MindFault(agent="a0", tick=1, effect="raise"),
    CrashFault(op=3, when="after"),
    CULPRIT,
    SubscriberFault(effect="raise"),
    MindFault(agent="a0", tick=2, effect="junk"),
)


def _report(scenario: Scenario) -> SeedReport:
    """A stand-in for running a seed: it hangs exactly when the culprit is in the plan, and
    breaks another invariant when the crash is."""
    violations: list[Violation] = []
    if CULPRIT in scenario.faults:
        violations.append(Violation("ended", "hung"))
    if CrashFault(op=3, when="after") in scenario.faults:
        violations.append(Violation("once", "twice"))
    return SeedReport(scenario.seed, scenario, tuple(violations), "running", "")


def test_shrinking_keeps_only_what_breaks_the_same_invariant() -> None:
    scenario = generate(0).with_faults(PLAN)
    calls: list[Scenario] = []

    def attempt(s: Scenario) -> SeedReport:
        calls.append(s)
        return _report(s)

    assert shrink(_report(scenario), attempt=attempt) == (CULPRIT,)
    assert len(calls) < 20


def test_shrinking_a_plan_that_needs_two_faults_keeps_both() -> None:
    a, b = PLAN[0], PLAN[3]

    def attempt(s: Scenario) -> SeedReport:
        both = a in s.faults and b in s.faults
        v = (Violation("replay", "x"),) if both else ()
        return SeedReport(s.seed, s, v, "", "")

    scenario = generate(0).with_faults(PLAN)
    # Frozen pydantic records are hashable at run time; pydantic's stubs do not say so.
    assert set(shrink(attempt(scenario), attempt=attempt)) == {a, b}  # pyright: ignore[reportUnhashable]


def test_the_reproducer_is_one_line_that_names_seed_and_plan() -> None:
    scenario = generate(5).with_faults((CULPRIT,))
    line = reproducer(scenario)
    assert "\n" not in line
    assert line.startswith("python -m telic.sim --seed 5 --plan '")
    assert '"effect":"hang"' in line


def test_shrinking_keeps_the_same_failure_not_just_the_same_invariant() -> None:
    """Without the surrogate the seed still crashes, but with another error: that plan is
    not a reproducer of the first failure."""
    surrogate = MindFault(agent="a0", tick=1, effect="surrogate")
    huge = ToolFault(tool="tool0", call=1, effect="huge_result")

    def attempt(s: Scenario) -> SeedReport:
        if surrogate in s.faults:
            v = Violation("no-crash", "TypeError escaped the kernel (process 1): surrogates")
        elif huge in s.faults:
            v = Violation("no-crash", "PayloadTooLarge escaped the kernel (process 1): 52428866")
        else:
            return SeedReport(s.seed, s, (), "completed", "")
        return SeedReport(s.seed, s, (v,), "running", "")

    scenario = generate(0).with_faults((huge, surrogate))
    assert shrink(attempt(scenario), attempt=attempt) == (surrogate,)
