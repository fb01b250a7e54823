"""The CI's share of the simulator: 200 seeds, every invariant kept.

Until the fixes of issue 16's holes (hangs, crashes, isolation, storage errors) are merged,
seeds fail on this branch (see docs/simulation.md for the causes); the test is then an
expected failure, strictly, so that it turns red the day it passes and the marker must go.
"""

from __future__ import annotations

import pytest

from telic.sim.cli import run_seeds

SEEDS = 200


@pytest.mark.xfail(
    strict=True,
    reason="issue 16's holes (hangs on BaseException/CancelledError, PayloadTooLarge and "
    "unencodable values escaping Kernel.run, subscribers mutating state, disk-full errors "
    "hidden by ROLLBACK) are fixed on other branches; remove this marker once they are merged",
)
def test_200_seeds_keep_every_invariant() -> None:
    reports = run_seeds(range(SEEDS), minimise=False)
    failed = [r for r in reports if not r.ok]
    assert not failed, "\n".join(
        f"seed {r.seed}: {r.violations[0]}\n  {r.reproducer()}" for r in failed
    )
