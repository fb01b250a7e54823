"""The shared ledger suite against the in-memory backend."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from telic.ledger import BaseLedger, MemoryLedger, Row, open_ledger

from .suite import LedgerSuite


def _memory(ledger: BaseLedger) -> MemoryLedger:
    assert isinstance(ledger, MemoryLedger)
    return ledger


class TestMemoryLedger(LedgerSuite):
    @contextlib.contextmanager
    def fresh(self, **options: Any) -> Iterator[BaseLedger]:
        with open_ledger("memory://", **options) as ledger:
            yield ledger

    def second(self, ledger: BaseLedger) -> BaseLedger:
        first = _memory(ledger)
        return MemoryLedger(
            first.url,
            store=first.store,
            snapshot_every=first.snapshot_every,
            snapshot_bytes=first.snapshots.min_bytes,
            snapshot_percent=first.snapshots.percent,
        )

    def stored_rows(self, ledger: BaseLedger, run: str) -> list[Row]:
        return list(_memory(ledger).raw_rows(run))

    def store_rows(self, ledger: BaseLedger, run: str, rows: list[Row]) -> None:
        _memory(ledger).raw_rows(run)[:] = rows

    def tamper_blob(self, ledger: BaseLedger, blob_id: str, data: bytes) -> None:
        _memory(ledger).raw_blobs()[blob_id] = data

    def age(self, ledger: BaseLedger, seconds: float) -> None:
        leases = _memory(ledger).store.leases
        d = round(seconds * 1e6)
        for run, (r, h, n, e, t, a, w, x, rel) in list(leases.items()):
            leases[run] = (r, h, n, e, t, a - d, w - d, x - d, rel)

    def tamper_snapshot(self, ledger: BaseLedger, run: str, seq: int, **fields: Any) -> None:
        snaps = _memory(ledger).store.snapshots[run]
        snaps[seq] = snaps[seq]._replace(**fields)
        _memory(ledger).raw_rows(run)  # forgets the cached head fold


def test_memory_url_and_options() -> None:
    with open_ledger("memory://?snapshot_every=7") as ledger:
        assert isinstance(ledger, MemoryLedger)
        assert ledger.snapshot_every == 7
        assert ledger.url.startswith("memory://")


def test_separate_memory_ledgers_share_nothing() -> None:
    with open_ledger("memory://") as a, open_ledger("memory://") as b:
        a.create_run("r")
        assert b.runs() == []
