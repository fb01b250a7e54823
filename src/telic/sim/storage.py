"""The simulated machine's storage: ledgers that die or fail on cue.

:class:`Machine` is what outlives a simulated process: the ledger's store (a memory store or
an SQLite file), the count of the run's appends, and whether the process is down. Each process
lifetime opens its own ledger on it (:meth:`Machine.open`), so a crash drops the kernel and
everything it held in memory, and the next lifetime reads only what was committed.

Two faults live here (see :mod:`telic.sim.scenario`): a crash at the run's k-th append, before
or after it is written (:class:`~telic.errors.SimulatedCrash`), and a storage failure inside
SQLite at the k-th append (``database or disk is full`` at COMMIT, after which SQLite has
rolled the transaction back itself, as it does; or ``disk I/O error`` at the INSERT).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from telic.errors import SimulatedCrash
from telic.ledger.base import BaseLedger
from telic.ledger.memory import MemoryLedger, MemoryStore
from telic.ledger.sqlite import SQLiteLedger
from telic.sim.scenario import CrashFault, StorageFault
from telic.transition import Draft, Transition

__all__ = ["Machine"]


class Machine:
    """Storage and process state that survive a simulated crash."""

    def __init__(
        self,
        run_id: str,
        *,
        backend: str,
        directory: Path | None,
        snapshot_every: int,
        crashes: Sequence[CrashFault] = (),
        storage: Sequence[StorageFault] = (),
    ) -> None:
        self.run_id = run_id
        self.backend = backend
        self.path = None if directory is None else directory / "ledger.db"
        self.snapshot_every = snapshot_every
        self.store = MemoryStore()
        self.appends = 0
        """Appends of the run attempted so far, over every lifetime."""
        self.down = False
        """The current process has died: nothing it does from now on takes effect."""
        self.lifetimes = 0
        self.crashes = {c.op: c for c in crashes}
        self.storage = {s.op: s for s in storage}
        self.injected: list[str] = []
        """What was injected, in order (for reports)."""
        self.storage_failed: set[int] = set()
        """The lifetimes in which a storage fault was injected."""

    def open(self) -> BaseLedger:
        """A fresh process opens the ledger (the process is up again)."""
        self.down = False
        self.lifetimes += 1
        if self.backend == "sqlite" and self.path is not None:
            return _SimSQLite(
                self, self.path, synchronous="normal", snapshot_every=self.snapshot_every
            )
        return _SimMemory(self, store=self.store, snapshot_every=self.snapshot_every)

    def reader(self) -> BaseLedger:
        """A plain ledger on the same storage, for the checks after the seed."""
        if self.backend == "sqlite" and self.path is not None:
            return SQLiteLedger(self.path, synchronous="normal", create=False)
        return MemoryLedger(store=self.store)

    def die(self, why: str) -> SimulatedCrash:
        self.down = True
        self.injected.append(why)
        return SimulatedCrash(why)


class _Faulty(BaseLedger):
    """The fault points, shared by both simulated backends (a mixin before the backend)."""

    machine: Machine

    def append(
        self,
        run_id: str,
        drafts: Sequence[Draft],
        *,
        expected: int | None = None,
        create: bool = False,
        fork_of: tuple[str, int] | None = None,
        states: Mapping[int, tuple[bytes, str]] | None = None,
    ) -> list[Transition]:
        m = self.machine
        if m.down:
            raise SimulatedCrash("the process is down")
        if run_id != m.run_id or not drafts:
            return super().append(
                run_id, drafts, expected=expected, create=create, fork_of=fork_of, states=states
            )
        m.appends += 1
        op = m.appends
        crash = m.crashes.pop(op, None)
        if crash is not None and crash.when == "before":
            raise m.die(f"crash before append {op}")
        storage = m.storage.pop(op, None)
        if storage is not None:
            m.injected.append(f"{storage.error} at append {op}")
            m.storage_failed.add(m.lifetimes)
            self._arm(storage)
        out = super().append(
            run_id, drafts, expected=expected, create=create, fork_of=fork_of, states=states
        )
        if crash is not None:
            raise m.die(f"crash after append {op}")
        return out

    def _arm(self, fault: StorageFault) -> None:
        raise NotImplementedError  # only SQLite seeds get storage faults (the generator's rule)


class _SimMemory(_Faulty, MemoryLedger):
    def __init__(self, machine: Machine, *, store: MemoryStore, snapshot_every: int) -> None:
        self.machine = machine
        super().__init__(store=store, snapshot_every=snapshot_every)


class _SimSQLite(_Faulty, SQLiteLedger):
    def __init__(self, machine: Machine, path: Path, **options: Any) -> None:
        self.machine = machine
        super().__init__(path, **options)
        self._conn = _FailingConnection(self._db)
        # The backend talks to its connection through execute/executemany only.
        self._db = cast(sqlite3.Connection, self._conn)

    def _arm(self, fault: StorageFault) -> None:
        self._conn.armed = fault.error


class _FailingConnection:
    """An SQLite connection that fails the next write the way a full or failing disk does."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.armed: str | None = None

    def _maybe_fail(self, sql: str) -> None:
        if self.armed == "disk_full" and sql.startswith("COMMIT"):
            self.armed = None
            self.db.execute("ROLLBACK")  # SQLite rolls back by itself on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")
        if self.armed == "io_error" and sql.startswith("INSERT INTO transitions"):
            self.armed = None
            raise sqlite3.OperationalError("disk I/O error")

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self._maybe_fail(sql)
        return self.db.execute(sql, params)

    def executemany(self, sql: str, params: Any) -> sqlite3.Cursor:
        self._maybe_fail(sql)
        return self.db.executemany(sql, params)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        return self.db.executescript(sql)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def close(self) -> None:
        self.db.close()
