"""Seeds the 10,000-seed run found failing (issue 16), kept as regressions with their plans.

661 and 1656 failed before their fix with a ``KeyError`` escaping ``Kernel.run``: the kernel
killed an agent a group restart had already stopped for good in the same tick (661: a
hallucinating temporary agent; 1656: an explorer that never answered, at the tick's
last-resort deadline). 3519: a call parked for approval across a crash, granted, ran a tool
returning 50 MB outside the guarded path, and ``PayloadTooLarge`` escaped.
"""

from __future__ import annotations

import pytest

from telic.sim import check, fault_plan, generate, run_scenario

FOUND = {
    661: '[{"seam":"mind","agent":"a1","tick":3,"effect":"bigint"},'
    '{"seam":"tool","tool":"tool1","call":1,"effect":"surrogate"}]',
    1656: '[{"seam":"tool","tool":"tool2","call":4,"effect":"huge_error"},'
    '{"seam":"tool","tool":"tool3","call":1,"effect":"bad_str"},'
    '{"seam":"storage","op":12,"error":"io_error"},{"seam":"subscriber","effect":"hang"}]',
    3519: '[{"seam":"mind","agent":"a0","tick":2,"effect":"oversized"},'
    '{"seam":"mind","agent":"a0","tick":1,"effect":"surrogate"},'
    '{"seam":"mind","agent":"a0","tick":2,"effect":"hang"},'
    '{"seam":"tool","tool":"tool2","call":1,"effect":"huge_result"},'
    '{"seam":"crash","op":2,"when":"after"}]',
}


@pytest.mark.parametrize("seed", sorted(FOUND))
def test_a_seed_the_nightly_run_found_keeps_every_invariant(seed: int) -> None:
    outcome = run_scenario(generate(seed).with_faults(fault_plan(FOUND[seed])))
    try:
        assert check(outcome) == []
    finally:
        outcome.close()
