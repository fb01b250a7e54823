"""Stage 10, settle: kill hallucinating agents and restore the run, then close the tick.

Progress is measured by the run's progress function on the state read-only (one that fails
fails the run at the end of the tick), and ``tick.completed`` records it with the folded
state's hash and whether the tick was valid; the batch is committed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from telic.kernel import guard
from telic.kernel.config import is_own
from telic.kernel.guard import Failed
from telic.kernel.stages.records import Tick
from telic.kinds import TickCompleted
from telic.state import RunState

__all__ = ["settle"]


async def settle(t: Tick, *, invalid: bool, hallucinated: Sequence[str]) -> None:
    """Restore after ``hallucinated`` agents (if any), measure progress, close the tick."""
    run, batch, tick = t.run, t.batch, t.number
    if hallucinated:
        invalid = True
        await run.kill_and_restore(batch, tick, list(hallucinated))
    before = run.fold.live.progress
    progress_of = run.config.progress
    state = run.fold.live if is_own(progress_of) else run.state  # user code: read-only
    measured = guard.attempt(_measure, progress_of, state)
    if isinstance(measured, Failed):
        run.fault = f"the progress function failed ({measured})"
        invalid, progress = True, before
    else:
        progress = max(0.0, min(1.0, measured))
    batch.add(
        TickCompleted(
            tick=tick,
            progress=progress,
            delta=round(progress - before, 6),
            valid=not invalid and not run.tick_had_failures(tick),
            state_hash=run.fold.hash(),
        ),
        tick=tick,
    )
    await run.commit(batch)


def _measure(progress: Callable[[RunState], float], state: RunState) -> float:
    value = float(progress(state))
    if not math.isfinite(value):
        raise ValueError(f"progress must be a finite number, got {value!r}")
    return value
