"""When the ledger snapshots a run's folded state: by count and by bytes.

``state_at`` decodes the nearest snapshot at or before the seq asked for and folds the
transitions after it; each of those is read, decoded and applied, so what it folds costs in
proportion to their bytes. A snapshot is taken after a transition when either

- its seq is a multiple of ``every`` (by count: a fold never walks ``every`` transitions), or
- the payload bytes appended since the run's last snapshot reach ``percent`` % of that
  snapshot's size, and at least ``min_bytes`` (by bytes: a fold walks at most a fixed share of
  the state's own size, so reading a state anywhere costs a bounded multiple of decoding it,
  however large each step makes it), while the state grows: by bytes only after a snapshot
  that found the state grown by at least 1/``GROWTH`` of the payload bytes before it (or the
  first). A state that stays about the same size (a window of observations, entries rewritten
  in place) is left to the count, so its snapshots cost no more than they did by count alone.

Storage stays linear in the transitions: a snapshot of ``S`` bytes taken by bytes follows at
least ``percent`` % of ``S`` in payload bytes, so snapshots taken by bytes add at most
``100 / percent`` bytes per payload byte, whatever the state does; a state that only grows
(each step adds to it) takes a geometric series of sizes, about ``100 / percent`` times its
final size over the growth rate. ``min_bytes`` keeps a small state (whose decode costs
microseconds) from being snapshotted after nearly every step.

Bytes are counted as stored: a payload moved to a blob counts as its reference. The count is
kept per run by the instance that appends and rebuilt from the store
(:meth:`~telic.ledger.base.BaseLedger._snapshot_size`,
:meth:`~telic.ledger.base.BaseLedger._payload_bytes`) when it has none, so another instance
continuing a run snapshots where this one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = [
    "DEFAULT_SNAPSHOT_BYTES",
    "DEFAULT_SNAPSHOT_EVERY",
    "DEFAULT_SNAPSHOT_PERCENT",
    "Since",
    "SnapshotPolicy",
]

DEFAULT_SNAPSHOT_EVERY: Final = 1000
DEFAULT_SNAPSHOT_BYTES: Final = 16 * 1024
DEFAULT_SNAPSHOT_PERCENT: Final = 25
GROWTH: Final = 16
"""A state counts as growing when it grew by at least 1/16 of the payload bytes since the
snapshot before (a state that takes 1 KB a step from 2.5 KB of records grows by 0.4)."""


class Since(NamedTuple):
    """A run's bytes since its last snapshot, and how many make the next one due (None: not by
    bytes, the state was not growing), and that snapshot's size."""

    bytes: int
    due: int | None
    size: int


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    every: int = DEFAULT_SNAPSHOT_EVERY
    """Snapshot after every seq that is a multiple of this."""
    min_bytes: int = DEFAULT_SNAPSHOT_BYTES
    """Never snapshot by bytes before this many payload bytes since the last snapshot."""
    percent: int = DEFAULT_SNAPSHOT_PERCENT
    """Snapshot once the payload bytes since the last snapshot reach this share of its size."""

    def first(self) -> Since:
        """Where a run stands before its first snapshot."""
        return Since(0, self.min_bytes, 0)

    def after(self, size: int, before: Since) -> Since:
        """Where a run stands just after a snapshot of ``size`` bytes, taken ``before.bytes``
        payload bytes after one of ``before.size`` bytes (0: the first)."""
        grew = before.size == 0 or (size - before.size) * GROWTH >= before.bytes
        due = max(self.min_bytes, size * self.percent // 100) if grew else None
        return Since(0, due, size)

    def due(self, seq: int, since: int, due: int | None) -> bool:
        """Whether a snapshot is due after ``seq``, ``since`` payload bytes past the last."""
        return seq % self.every == 0 or (due is not None and since >= due)
