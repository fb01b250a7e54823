"""Follow a ledger that other processes write to, and feed what they commit to an event kernel.

A :class:`LedgerFollower` publishes every transition committed to the ledger, once and in
order per run, whoever committed it: this process's kernel hands its batches to
:meth:`LedgerFollower.publish` (delivered at once), and a watcher notices commits by other
processes:

- **SQLite**: a second connection polls ``PRAGMA data_version`` (which changes when any other
  connection commits) every ``interval`` seconds (50 ms by default): the latency is that
  interval plus the read, typically under 60 ms.
- **PostgreSQL**: a trigger on the ``runs`` table sends ``NOTIFY`` on every append; a
  dedicated connection ``LISTEN``\\s (a few milliseconds), and also polls every second in case
  a notification was missed while it reconnected.
- **memory**: only this process writes to it, so only :meth:`publish` delivers.

The follower keeps, per run, the last sequence number it delivered; whatever arrives below
it is dropped, whatever is missing above it is read from the ledger first. So the event
kernel sees each transition once, in order, with no gap, which is what its catch-up seam
needs. The event kernel's own system run is skipped (it publishes its own transitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from telic.events.catalogue import SYSTEM_RUN
from telic.events.kernel import EventKernel
from telic.ledger.base import BaseLedger
from telic.ledger.sqlite import SQLiteLedger
from telic.transition import Transition

__all__ = ["LedgerFollower"]

log = logging.getLogger(__name__)

_FALLBACK_POLL_S: Final = 1.0


class _Watcher(Protocol):
    async def changed(self) -> None:
        """Return when the ledger may have changed (spurious returns are fine)."""
        ...

    async def aclose(self) -> None: ...


class LedgerFollower:
    """Publishes each committed transition of ``ledger`` to ``events`` exactly once.

    Wire the local kernel's ``publish`` to :meth:`publish` and run :meth:`run` in a task.
    ``events`` may be None when only the :attr:`sinks` want the transitions (a stream worker).
    """

    def __init__(
        self,
        ledger: BaseLedger,
        events: EventKernel | None,
        *,
        interval: float = 0.05,
        skip: frozenset[str] = frozenset({SYSTEM_RUN}),
        sinks: Sequence[Callable[[Sequence[Transition]], None]] = (),
    ) -> None:
        self.ledger = ledger
        self.events = events
        self.interval = interval
        self._skip = skip
        self.sinks: list[Callable[[Sequence[Transition]], None]] = list(sinks)
        """Called with each batch after the event kernel (e.g. the server's SSE channels):
        synchronous and quick, like :meth:`EventKernel.publish`."""
        self._delivered: dict[str, int] = {info.id: info.head for info in ledger.runs()}
        """Per run, the last seq handed to the event kernel. History before the follower
        started is not republished: subscribers catch up from the ledger."""

    def delivered(self, run_id: str) -> int:
        return self._delivered.get(run_id, 0)

    def positions(self) -> dict[str, int]:
        """Per run, the last seq delivered (a copy)."""
        return dict(self._delivered)

    def _deliver(self, batch: Sequence[Transition]) -> None:
        if self.events is not None:
            self.events.publish(batch)
        for sink in self.sinks:
            sink(batch)

    def publish(self, transitions: Sequence[Transition]) -> None:
        """What this process's kernel committed: delivered at once, without duplicates."""
        if not transitions:
            return
        run_id = transitions[0].run
        if run_id in self._skip:
            return
        known = self._known(run_id)
        first = transitions[0].seq
        if first > known + 1:
            self._pull(run_id, known, first - 1)
            known = first - 1
        fresh = [t for t in transitions if t.seq > known] if first <= known else transitions
        if fresh:
            self._delivered[run_id] = fresh[-1].seq
            self._deliver(fresh)

    def poll(self) -> int:
        """Deliver whatever other writers committed since the last look; returns how many."""
        total = 0
        for info in self.ledger.runs():
            if info.id in self._skip:
                continue
            known = self._delivered.get(info.id)
            if known is None:
                known = info.fork_seq  # a new fork: only its own transitions are its news
                self._delivered[info.id] = known
            if info.head > known:
                total += self._pull(info.id, known, info.head)
        return total

    def _known(self, run_id: str) -> int:
        known = self._delivered.get(run_id)
        if known is None:
            known = self.ledger.run(run_id).fork_seq
            self._delivered[run_id] = known
        return known

    def _pull(self, run_id: str, known: int, head: int) -> int:
        batch = list(self.ledger.read(run_id, known + 1, head))
        if batch:
            # A fork's prefix reads under its parent's id; the event is about this run.
            batch = [t if t.run == run_id else t._replace(run=run_id) for t in batch]
            self._delivered[run_id] = batch[-1].seq
            self._deliver(batch)
        return len(batch)

    async def run(self) -> None:
        """Watch the ledger until cancelled."""
        watcher = await _watcher_for(self.ledger, self.interval)
        try:
            while True:
                await watcher.changed()
                self.poll()
        finally:
            await watcher.aclose()


async def _watcher_for(ledger: BaseLedger, interval: float) -> _Watcher:
    if isinstance(ledger, SQLiteLedger):
        return _SQLiteWatcher(str(ledger.path), interval)
    dsn = getattr(ledger, "dsn", None)
    if dsn is not None:
        return await _PostgresWatcher.open(dsn, getattr(ledger, "schema", None))
    return _Sleeper(_FALLBACK_POLL_S)


class _Sleeper:
    def __init__(self, interval: float) -> None:
        self.interval = interval

    async def changed(self) -> None:
        await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        return None


class _SQLiteWatcher:
    """``PRAGMA data_version`` on a connection of its own: it moves when another connection
    (of this process or another) commits."""

    def __init__(self, path: str, interval: float) -> None:
        self.interval = interval
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._version = self._read()

    def _read(self) -> int:
        row = self._db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    async def changed(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            version = self._read()
            if version != self._version:
                self._version = version
                return

    async def aclose(self) -> None:
        self._db.close()


_CHANNEL_PREFIX: Final = "telic_ledger"


def _channel(schema: str | None) -> str:
    return f"{_CHANNEL_PREFIX}_{schema or 'public'}"[:63]


def _trigger_sql(channel: str) -> list[Any]:
    from psycopg import sql

    function = sql.Identifier(f"telic_notify_{channel}")
    return [
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger AS $$ "
            "BEGIN PERFORM pg_notify({}, NEW.id); RETURN NULL; END $$ LANGUAGE plpgsql"
        ).format(function, sql.Literal(channel)),
        sql.SQL("DROP TRIGGER IF EXISTS telic_notify ON runs"),
        sql.SQL(
            "CREATE TRIGGER telic_notify AFTER INSERT OR UPDATE ON runs "
            "FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(function),
    ]


class _PostgresWatcher:
    """``LISTEN`` on a channel a trigger on ``runs`` notifies at every append."""

    def __init__(self, conn: Any, channel: str) -> None:
        self._conn = conn
        self._channel = channel
        self._gen: Any = None

    @classmethod
    async def open(cls, dsn: str, schema: str | None) -> _PostgresWatcher:
        import psycopg
        from psycopg import sql

        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        channel = _channel(schema)
        if schema is not None:
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x7E11D,))
            for stmt in _trigger_sql(channel):
                await conn.execute(stmt)
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return cls(conn, channel)

    async def changed(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_FALLBACK_POLL_S):
                async for _ in self._conn.notifies():
                    return

    async def aclose(self) -> None:
        await self._conn.close()
