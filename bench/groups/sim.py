"""The simulator's figures (issue 16): how many seeds a second it judges.

A seed is run twice (determinism is an invariant) and checked; failing seeds are not shrunk
here, as in CI. The CI test runs 200 seeds and must stay within 60 s: the target is that rate,
200 / 60 = 3.3 seeds/s of wall time. Timed also in CPU seconds of this process
(``time.process_time``), because the benchmark machine is shared; the nightly 10,000 seeds
take ``10,000 / rate`` seconds.
"""

from __future__ import annotations

import logging
import time

from harness import Figure, median
from telic.sim.cli import run_seeds

GROUP = "sim"

SEEDS = 100


def _rates(start: int) -> tuple[float, float, int]:
    """Seeds per wall second and per CPU second over SEEDS seeds from ``start``; failures."""
    t0, c0 = time.perf_counter(), time.process_time()
    reports = run_seeds(range(start, start + SEEDS), minimise=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return SEEDS / wall, SEEDS / cpu, sum(not r.ok for r in reports)


def collect(repeats: int) -> list[Figure]:
    logging.getLogger("telic").addHandler(logging.NullHandler())
    logging.getLogger("telic").propagate = False
    runs = [_rates(i * SEEDS) for i in range(max(1, min(repeats, 3)))]
    failed = sum(r[2] for r in runs)
    note = f"{len(runs) * SEEDS} seeds, {failed} failed; each run twice and checked"
    return [
        Figure(
            GROUP,
            "seeds judged per second (wall)",
            median([r[0] for r in runs]),
            "seeds/s",
            200 / 60,
            ">=",
            note=note,
        ),
        Figure(
            GROUP,
            "seeds judged per CPU second",
            median([r[1] for r in runs]),
            "seeds/s",
            None,
            note="time.process_time of this process",
        ),
    ]
