"""The in-memory backend (``memory://``): for tests and throwaway runs."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from telic.errors import RunExists, SequenceConflict
from telic.ledger.base import BaseLedger, RawRow, Row, RunInfo, Snapshot
from telic.ledger.lease import LeaseRow, Leases, check_fence, free, taken

__all__ = ["MemoryLeases", "MemoryLedger", "MemoryStore"]


class MemoryStore:
    """What a memory ledger holds. Several :class:`MemoryLedger` instances may share one, as
    several SQLite ledgers may open one file (the shared tests use this for conflicts)."""

    def __init__(self) -> None:
        self.runs: dict[str, RunInfo] = {}
        self.rows: dict[str, list[Row]] = {}
        self.snapshots: dict[str, dict[int, Snapshot]] = {}
        self.blobs: dict[str, bytes] = {}
        self.leases: dict[str, LeaseRow] = {}
        self.order = itertools.count(1)
        self.lock = threading.Lock()


class MemoryLedger(BaseLedger):
    """Keeps everything in Python lists and dicts; nothing survives the process."""

    def __init__(
        self,
        url: str = "memory://",
        *,
        store: MemoryStore | None = None,
        readonly: bool = False,
        **options: int,
    ) -> None:
        super().__init__(readonly=readonly, **options)
        self.url = url
        self.store = MemoryStore() if store is None else store
        self._runs = self.store.runs
        self._rows = self.store.rows
        self._snapshots = self.store.snapshots
        self._blobs = self.store.blobs
        self.leases = MemoryLeases(self.store)

    def _insert_run(
        self, run_id: str, parent: str | None, fork_seq: int, head_hash: bytes
    ) -> RunInfo:
        with self.store.lock:
            if run_id in self._runs:
                raise RunExists(run_id)
            info = RunInfo(run_id, parent, fork_seq, fork_seq, head_hash, next(self.store.order))
            self._runs[run_id] = info
            self._rows[run_id] = []
            self._snapshots[run_id] = {}
            return info

    def _load_run(self, run_id: str) -> RunInfo | None:
        return self._runs.get(run_id)

    def _list_runs(self) -> list[RunInfo]:
        return sorted(self._runs.values(), key=lambda r: r.created)

    def _write(
        self,
        run_id: str,
        expected_head: int,
        rows: list[Row],
        snapshots: list[Snapshot],
        blobs: list[tuple[str, bytes]],
        *,
        create: bool = False,
        parent: str | None = None,
        epoch: int | None = None,
    ) -> None:
        with self.store.lock:
            lease = self.store.leases.get(run_id)
            if lease is not None or epoch is not None:
                check_fence(
                    run_id, epoch, None if lease is None else (lease[3], lease[8], lease[1]), rows
                )
            if create:
                if run_id in self._runs:
                    raise RunExists(run_id)
                info = RunInfo(
                    run_id,
                    parent,
                    expected_head,
                    expected_head,
                    rows[0].hash,
                    next(self.store.order),
                )
                self._rows[run_id] = []
                self._snapshots[run_id] = {}
            else:
                info = self._runs[run_id]
                if info.head != expected_head:
                    raise SequenceConflict(run_id, expected_head + 1, info.head + 1)
            self._blobs.update(blobs)
            self._rows[run_id].extend(rows)
            snaps = self._snapshots[run_id]
            for snap in snapshots:
                snaps[snap.seq] = snap
            last = rows[-1]
            self._runs[run_id] = RunInfo(
                run_id, info.parent, info.fork_seq, last.seq, last.hash, info.created
            )

    def _index(self, run_id: str, seq: int) -> int:
        # Rows are dense from fork_seq + 1; bisect would be needed only after tampering.
        return seq - self._runs[run_id].fork_seq - 1

    def _scan(self, run_id: str, lo: int, hi: int) -> Iterator[RawRow]:
        rows = self._rows[run_id]
        i = max(0, self._index(run_id, lo))
        if i >= len(rows) or rows[i].seq != lo:
            i = 0  # not dense any more (only after tampering): scan from the start
        for row in itertools.islice(rows, i, None):
            if row.seq > hi:
                break
            if row.seq >= lo:
                yield row

    def _row_hash(self, run_id: str, seq: int) -> bytes | None:
        rows = self._rows[run_id]
        i = self._index(run_id, seq)
        if 0 <= i < len(rows) and rows[i].seq == seq:
            return rows[i].hash
        for row in rows:
            if row.seq == seq:
                return row.hash
        return None

    def _get_snapshot(self, run_id: str, lo: int, hi: int) -> Snapshot | None:
        best = self._snapshot_seqs(run_id, lo, hi)
        return self._snapshots[run_id][max(best)] if best else None

    def _snapshot_seqs(self, run_id: str, lo: int, hi: int) -> list[int]:
        return [s for s in self._snapshots[run_id] if lo <= s <= hi]

    def _get_blob(self, blob_id: str) -> bytes | None:
        return self._blobs.get(blob_id)

    def _snapshot_size(self, run_id: str, lo: int, hi: int) -> tuple[int, int] | None:
        snap = self._get_snapshot(run_id, lo, hi)
        return None if snap is None else (snap.seq, len(snap.state))

    def _payload_bytes(self, run_id: str, lo: int, hi: int) -> int:
        return sum(len(row[7]) for row in self._scan(run_id, lo, hi))

    # -- damage, for the shared test suite -----------------------------------------------

    def raw_rows(self, run_id: str) -> list[Row]:
        """The run's own stored rows, mutable: for tamper tests only."""
        self._forget()
        return self._rows[run_id]

    def raw_blobs(self) -> dict[str, bytes]:
        """The stored blobs, mutable: for tamper tests only."""
        return self._blobs


class MemoryLeases(Leases):
    """Leases in a :class:`MemoryStore`, under its lock; the lease clock is :attr:`clock`."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    def _acquire(
        self, run_id: str, holder: str, node: str, ttl: int, expect_epoch: int | None
    ) -> tuple[LeaseRow | None, int, bool]:
        with self._store.lock:
            now = self.now_us()
            row = self._store.leases.get(run_id)
            if not free(row, holder, now, expect_epoch):
                return row, now, False
            new = self._store.leases[run_id] = taken(row, run_id, holder, node, ttl, now)
            return new, now, True

    def _renew(self, run_id: str, holder: str, epoch: int, ttl: int) -> LeaseRow | None:
        with self._store.lock:
            row = self._store.leases.get(run_id)
            if row is None or row[1] != holder or row[3] != epoch or row[8]:
                return None
            now = self.now_us()
            new = self._store.leases[run_id] = (*row[:4], ttl, row[5], now, now + ttl, False)
            return new

    def _release(self, run_id: str, holder: str, epoch: int) -> bool:
        with self._store.lock:
            row = self._store.leases.get(run_id)
            if row is None or row[1] != holder or row[3] != epoch or row[8]:
                return False
            self._store.leases[run_id] = (*row[:8], True)
            return True

    def _get(self, run_id: str) -> LeaseRow | None:
        return self._store.leases.get(run_id)

    def _all(self) -> list[LeaseRow]:
        with self._store.lock:
            return [self._store.leases[k] for k in sorted(self._store.leases)]
