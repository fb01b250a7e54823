"""The CI's share of the simulator: 200 seeds, every invariant kept."""

from __future__ import annotations

from telic.sim.cli import run_seeds

SEEDS = 200


def test_200_seeds_keep_every_invariant() -> None:
    reports = run_seeds(range(SEEDS), minimise=False)
    failed = [r for r in reports if not r.ok]
    assert not failed, "\n".join(
        f"seed {r.seed}: {r.violations[0]}\n  {r.reproducer()}" for r in failed
    )
