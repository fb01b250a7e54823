"""The PostgreSQL backend (``postgresql://user@host:port/db``): a shared ledger for many workers.

The same four tables as the SQLite backend (runs, transitions, snapshots, blobs) plus a
``telic_meta`` table that marks the schema as a telic ledger. Every append is one transaction
that locks the run's row (``SELECT ... FOR UPDATE``) and checks its head, so of two concurrent
writers one commits and the other gets :class:`~telic.errors.SequenceConflict`: never a gap,
never a duplicate. Durability is PostgreSQL's (``synchronous_commit`` of the server).

``schema`` puts the tables in their own PostgreSQL schema (created if needed), so several
ledgers (or test cases) can share one database.

``connections`` (default 8): how many connections :meth:`PostgresLedger.append_groups` writes
several runs' groups over at once at most, each in a transaction of its own, so that the round
trips of many runs' appends overlap and their commits share the server's WAL flushes
(everything else uses the first connection, under a lock). A share is at least
:data:`MIN_SHARE` groups: it is written in five statements whatever its size, so a connection
more adds a transaction and a WAL flush and pays off only for large commits. Each group is still one run's, all or nothing, with
its head check and its lease's fence in its own transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from telic.errors import (
    Fenced,
    LedgerError,
    LedgerOptionInvalid,
    LedgerUnavailable,
    MissingExtra,
    NotALedger,
    RunExists,
    SequenceConflict,
    TelicError,
)
from telic.ledger.base import BaseLedger, PreparedGroup, RawRow, Row, RunInfo, Snapshot
from telic.ledger.lease import LeaseRow, Leases, check_fence, free, taken

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("psycopg", "postgres") from exc

__all__ = ["PostgresLeases", "PostgresLedger"]


def _insert(
    cur: psycopg.Cursor[Any],
    parts: Sequence[tuple[int, Sequence[Row], Sequence[Snapshot], Sequence[tuple[str, bytes]]]],
) -> None:
    """Insert groups' blobs, rows (one COPY for all) and snapshots (a snapshot at a seq
    already there is replaced): ``parts`` are (rid, rows, snapshots, blobs), one a group."""
    blobs = [b for _, _, _, some in parts for b in some]
    if blobs:
        cur.executemany("INSERT INTO blobs VALUES (%s, %s) ON CONFLICT DO NOTHING", blobs)
    with cur.copy(
        "COPY transitions (rid, seq, tick, agent, kind, causes, ts, v, payload, hash) FROM STDIN"
    ) as copy:
        write = copy.write_row
        for rid, rows, _, _ in parts:
            for seq, tick, agent, kind, causes, ts, v, payload, h in rows:
                write(
                    (
                        rid,
                        seq,
                        tick,
                        agent,
                        kind,
                        list(causes) if causes else None,
                        ts,
                        v,
                        payload,
                        h,
                    )
                )
    snapshots = [(rid, q, st, h, c, d) for rid, _, snaps, _ in parts for q, st, h, c, d in snaps]
    if snapshots:
        cur.executemany(
            "INSERT INTO snapshots (rid, seq, state, state_hash, chain, digest) "
            "VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (rid, seq) DO UPDATE SET state = EXCLUDED.state, "
            "state_hash = EXCLUDED.state_hash, chain = EXCLUDED.chain, digest = EXCLUDED.digest",
            snapshots,
        )


class _Apart(Exception):
    """Groups written together met rows already stored: write them one by one instead."""


FORMAT: Final = "telic-ledger"
FORMAT_VERSION: Final = "2"
"""2: a snapshot carries the SHA-256 of its state (``digest``), checked whenever it is read.
Older schemas are refused with :class:`~telic.errors.NotALedger`."""
_TABLES: Final = ("runs", "transitions", "snapshots", "blobs")
# Any constant works: it only has to be the same in every telic process creating tables.
_SCHEMA_LOCK: Final = 0x7E11C

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS telic_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        rid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        parent TEXT,
        fork_seq BIGINT NOT NULL,
        head BIGINT NOT NULL,
        head_hash BYTEA NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS transitions (
        rid BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        tick BIGINT NOT NULL,
        agent TEXT,
        kind TEXT NOT NULL,
        causes BIGINT[],
        ts BIGINT NOT NULL,
        v INTEGER NOT NULL,
        payload BYTEA NOT NULL,
        hash BYTEA NOT NULL,
        PRIMARY KEY (rid, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        rid BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        state BYTEA NOT NULL,
        state_hash TEXT NOT NULL,
        chain BYTEA NOT NULL,
        digest BYTEA NOT NULL,
        PRIMARY KEY (rid, seq)
    )""",
    "CREATE TABLE IF NOT EXISTS blobs (id TEXT PRIMARY KEY, data BYTEA NOT NULL)",
)
_LEASES: Final = """CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    node TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    ttl_us BIGINT NOT NULL,
    acquired_us BIGINT NOT NULL,
    renewed_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    released BOOLEAN NOT NULL
)"""
"""Run ownership (:mod:`telic.ledger.lease`). Added without a format bump: a schema of format 2
without it gets it when next opened for writing (a table no older reader looks at)."""
_LEASE_COLUMNS: Final = (
    "run_id, holder, node, epoch, ttl_us, acquired_us, renewed_us, expires_us, released"
)
_NOW: Final = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT"
"""The lease clock: the server's, read in the statement (the hosts' clocks never matter)."""

_RUN_COLUMNS: Final = "rid, id, parent, fork_seq, head, head_hash"
_PAGE: Final = 8192
DEFAULT_CONNECTIONS: Final = 8
MIN_SHARE: Final = 50
"""The fewest groups :meth:`PostgresLedger.append_groups` gives one connection: 100 runs' ticks
at once went fastest over 1-2 connections here (2 cores shared with the server), and
slowest over 8."""

Connection = psycopg.Connection[tuple[Any, ...]]

T = TypeVar("T")


def _describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://(unparseable DSN)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}"


class PostgresLedger(BaseLedger):
    """A ledger in a PostgreSQL database (one connection used under a lock, and up to
    ``connections - 1`` more for groups of several runs written at once)."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        readonly: bool = False,
        connections: int = DEFAULT_CONNECTIONS,
        **options: int,
    ) -> None:
        """``readonly=True`` creates nothing (a schema without telic's tables is refused with
        :class:`NotALedger`) and refuses appends."""
        if type(connections) is not int or connections < 1:
            raise LedgerOptionInvalid("connections", connections, "a positive integer")
        super().__init__(readonly=readonly, **options)
        self.connections = connections
        self._writers: list[Connection] = []
        """The connections beyond the first, opened when a group write first needs them."""
        self._pool: ThreadPoolExecutor | None = None
        self.dsn = dsn
        self.schema = schema
        self.url = _describe(dsn) + (f"?schema={schema}" if schema else "")
        self._where = self.url
        self._rids: dict[str, int] = {}
        self._db_lock = threading.RLock()
        self._has_leases = True
        self._db = self._connect()
        self.leases = PostgresLeases(self)

    # -- connection and schema -----------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            db = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise LedgerUnavailable(self._where, _first_line(exc)) from None
        try:
            self._prepare(db)
        except BaseException:
            db.close()
            raise
        return db

    def _prepare(self, db: psycopg.Connection[tuple[Any, ...]]) -> None:
        try:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                if self.schema is not None:
                    if not self.readonly:
                        db.execute(
                            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                                sql.Identifier(self.schema)
                            )
                        )
                    db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
                tables = {
                    r[0]
                    for r in db.execute(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = current_schema()"
                    )
                }
                ours = tables.intersection(_TABLES)
                if ours and "telic_meta" not in tables:
                    raise NotALedger(
                        self._where,
                        f"it has tables named {', '.join(sorted(ours))} but no telic_meta table",
                    )
                if "telic_meta" not in tables and self.readonly:
                    raise NotALedger(self._where, "it holds no telic tables (opened read-only)")
                if "telic_meta" not in tables:
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.execute(
                        "INSERT INTO telic_meta VALUES (%s, %s), (%s, %s) ON CONFLICT DO NOTHING",
                        ("format", FORMAT, "version", FORMAT_VERSION),
                    )
                meta: dict[str, str] = dict(
                    db.execute("SELECT key, value FROM telic_meta").fetchall()
                )
                self._has_leases = "leases" in tables
                if (
                    not self._has_leases
                    and not self.readonly
                    and meta.get("version") == FORMAT_VERSION
                ):
                    db.execute(_LEASES)
                    self._has_leases = True
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(self._where, _first_line(exc)) from None
        except psycopg.Error as exc:
            raise NotALedger(self._where, _first_line(exc)) from None
        if meta.get("format") != FORMAT:
            raise NotALedger(self._where, "its telic_meta table has no telic format marker")
        if meta.get("version") != FORMAT_VERSION:
            raise NotALedger(self._where, _unsupported(meta.get("version")))

    def close(self) -> None:
        super().close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for db in self._writers:
            db.close()
        self._writers.clear()
        self._db.close()

    def _call(self, what: str, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on the first connection, mapping psycopg's errors onto telic's."""
        with self._db_lock:
            return self._on(self._db, what, fn)

    def _on(self, db: Connection, what: str, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on ``db``, mapping psycopg's errors onto telic's."""
        try:
            return fn(db)
        except psycopg.OperationalError as exc:
            raise LedgerUnavailable(self._where, f"{what}: {_first_line(exc)}") from None
        except psycopg.InterfaceError as exc:
            raise LedgerUnavailable(self._where, f"{what}: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise LedgerError(f"{what} failed: {_first_line(exc)}") from None

    # -- primitives ----------------------------------------------------------------------

    def _rid(self, run_id: str) -> int:
        rid = self._rids.get(run_id)
        if rid is None:
            row = self._call(
                "looking up a run",
                lambda db: db.execute("SELECT rid FROM runs WHERE id = %s", (run_id,)).fetchone(),
            )
            if row is None:
                raise LedgerError(f"run {run_id!r} vanished")
            rid = self._rids[run_id] = int(row[0])
        return rid

    @staticmethod
    def _info(row: tuple[Any, ...]) -> RunInfo:
        rid, run_id, parent, fork_seq, head, head_hash = row
        return RunInfo(run_id, parent, fork_seq, head, bytes(head_hash), rid)

    def _insert_run(
        self, run_id: str, parent: str | None, fork_seq: int, head_hash: bytes
    ) -> RunInfo:
        def insert(db: psycopg.Connection[tuple[Any, ...]]) -> int | None:
            try:
                row = db.execute(
                    "INSERT INTO runs (id, parent, fork_seq, head, head_hash) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING rid",
                    (run_id, parent, fork_seq, fork_seq, head_hash),
                ).fetchone()
            except pg_errors.UniqueViolation:
                return None
            return None if row is None else int(row[0])

        rid = self._call(f"creating run {run_id!r}", insert)
        if rid is None:
            raise RunExists(run_id)
        self._rids[run_id] = rid
        return RunInfo(run_id, parent, fork_seq, fork_seq, head_hash, rid)

    def _load_run(self, run_id: str) -> RunInfo | None:
        row = self._call(
            "reading a run",
            lambda db: db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = %s",
                (run_id,),
            ).fetchone(),
        )
        return None if row is None else self._info(row)

    def _list_runs(self) -> list[RunInfo]:
        rows = self._call(
            "listing runs",
            lambda db: db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY rid").fetchall(),
        )
        return [self._info(r) for r in rows]

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
        rid = 0 if create else self._rid(run_id)
        moved, rid = self._call(
            f"append to run {run_id!r}",
            lambda db: self._store(
                db,
                run_id,
                rid,
                expected_head,
                rows,
                snapshots,
                blobs,
                (create, parent),
                epoch,
            ),
        )
        error = self._refusal(run_id, expected_head, moved)
        if error is not None:
            raise error
        if create:
            self._rids[run_id] = rid

    def _write_groups(self, groups: list[PreparedGroup]) -> list[TelicError | None]:
        """The groups split over up to :attr:`connections` connections (at least
        :data:`MIN_SHARE` groups each), written at once: on each, one transaction holding its
        share of the groups (:meth:`_write_share`), so a group refused (its head moved, its run
        exists, its lease's fence) leaves the others written. A transaction that fails as a whole refuses its share of the groups with its
        error; if every one failed, the error is raised (nothing was written)."""
        if not groups:
            return []
        rids = [0 if g.create else self._rid(g.info.id) for g in groups]
        fences = [self.fenced(g.info.id) for g in groups]
        jobs = list(zip(groups, rids, fences, strict=True))
        n = min(self.connections, max(1, len(jobs) // MIN_SHARE))
        shares = [jobs[i::n] for i in range(n)]
        what = f"append of {len(groups)} group(s)"
        if n == 1:
            stored = self._call(what, lambda db: self._write_share(db, jobs))
            return self._answers(jobs, stored)
        pool = self._writer_pool(n - 1)
        pending = [
            pool.submit(self._write_on, db, what, share)
            for db, share in zip(self._writers, shares[1:], strict=False)
        ]
        outcomes: list[list[tuple[int | LedgerError | None, int]] | LedgerError] = []
        try:
            outcomes.append(self._call(what, lambda db: self._write_share(db, shares[0])))
        except LedgerError as exc:
            outcomes.append(exc)
        for future in pending:
            try:
                outcomes.append(future.result())
            except LedgerError as exc:
                outcomes.append(exc)
        failed = [o for o in outcomes if isinstance(o, LedgerError)]
        if len(failed) == len(outcomes):
            raise failed[0]
        refused: dict[int, TelicError | None] = {}
        for share, outcome in zip(shares, outcomes, strict=True):
            if isinstance(outcome, LedgerError):
                refused.update((id(job[0]), outcome) for job in share)
            else:
                refused.update(
                    (id(job[0]), answer)
                    for job, answer in zip(share, self._answers(share, outcome), strict=True)
                )
        return [refused[id(g)] for g in groups]

    def _writer_pool(self, extra: int) -> ThreadPoolExecutor:
        """The pool of threads and the ``extra`` connections beyond the first it writes on
        (one that was lost is opened again)."""
        writers = self._writers
        for i, db in enumerate(writers):
            if db.closed or db.broken:
                db.close()
                writers[i] = self._connect()
        while len(writers) < extra:
            writers.append(self._connect())
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.connections - 1, thread_name_prefix="telic-pg-writer"
            )
        return self._pool

    def _write_on(
        self, db: Connection, what: str, jobs: list[tuple[PreparedGroup, int, int | None]]
    ) -> list[tuple[int | LedgerError | None, int]]:
        return self._on(db, what, lambda db: self._write_share(db, jobs))

    def _write_share(
        self, db: Connection, jobs: list[tuple[PreparedGroup, int, int | None]]
    ) -> list[tuple[int | LedgerError | None, int]]:
        """Store ``jobs`` (group, rid, fence epoch) in one transaction on ``db``: together
        (:meth:`_store_together`) when none creates its run, else (or if that meets rows
        already stored) each under a savepoint of its own."""
        if not any(g.create for g, _, _ in jobs):
            try:
                with db.transaction():
                    return self._store_together(db, jobs)
            except _Apart:
                pass  # rolled back: each group on its own below
        with db.transaction():
            return [
                self._store(
                    db,
                    g.info.id,
                    rid,
                    g.info.head,
                    g.rows,
                    g.snapshots,
                    g.blobs,
                    (g.create, g.info.parent),
                    epoch,
                )
                for g, rid, epoch in jobs
            ]

    def _store_together(
        self, db: Connection, jobs: list[tuple[PreparedGroup, int, int | None]]
    ) -> list[tuple[int | LedgerError | None, int]]:
        """Store ``jobs`` (none creating its run) inside the caller's transaction in five
        statements whatever their number: lock their runs' rows (in rid order) and read their
        heads, read their leases (``FOR SHARE``), check each group's head and fence, then copy
        the rows of the groups that passed, add their blobs and snapshots, and move their
        heads. A group refused writes nothing, so it needs no savepoint; rows already stored
        under a key raise :class:`_Apart` (the caller rolls back and goes group by group).
        Answers as :meth:`_store`'s."""
        rids = [rid for _, rid, _ in jobs]
        heads: dict[int, int] = {
            int(rid): int(head)
            for rid, head in db.execute(
                "SELECT rid, head FROM runs WHERE rid = ANY(%s) ORDER BY rid FOR UPDATE", (rids,)
            ).fetchall()
        }
        leases: dict[str, tuple[int, bool, str]] = {
            run_id: (int(epoch), bool(released), holder)
            for run_id, epoch, released, holder in db.execute(
                "SELECT run_id, epoch, released, holder FROM leases WHERE run_id = ANY(%s) "
                "FOR SHARE",
                ([g.info.id for g, _, _ in jobs],),
            ).fetchall()
        }
        answers: list[tuple[int | LedgerError | None, int]] = []
        passed: list[tuple[PreparedGroup, int]] = []
        for g, rid, epoch in jobs:
            run_id = g.info.id
            head = heads.get(rid)
            if head is None:
                answers.append((LedgerError(f"run {run_id!r} vanished"), rid))
                continue
            if head != g.info.head:
                answers.append((head, rid))
                continue
            lease = leases.get(run_id)
            if lease is not None or epoch is not None:
                try:
                    check_fence(run_id, epoch, lease, g.rows)
                except Fenced as exc:
                    answers.append((exc, rid))
                    continue
            answers.append((None, rid))
            passed.append((g, rid))
        if not passed:
            return answers
        try:
            with db.cursor() as cur:
                _insert(cur, [(rid, g.rows, g.snapshots, g.blobs) for g, rid in passed])
                cur.execute(
                    "UPDATE runs SET head = v.head, head_hash = v.hash FROM "
                    "unnest(%s::bigint[], %s::bigint[], %s::bytea[]) AS v(rid, head, hash) "
                    "WHERE runs.rid = v.rid",
                    (
                        [rid for _, rid in passed],
                        [g.rows[-1].seq for g, _ in passed],
                        [g.rows[-1].hash for g, _ in passed],
                    ),
                )
        except pg_errors.UniqueViolation:
            raise _Apart from None
        return answers

    def _answers(
        self,
        jobs: list[tuple[PreparedGroup, int, int | None]],
        stored: list[tuple[int | LedgerError | None, int]],
    ) -> list[TelicError | None]:
        """What refused each of ``jobs`` (None: stored), from what :meth:`_store` answered."""
        refused: list[TelicError | None] = []
        for (g, _, _), (moved, rid) in zip(jobs, stored, strict=True):
            error = self._refusal(g.info.id, g.info.head, moved)
            refused.append(error)
            if error is None and g.create:
                self._rids[g.info.id] = rid
        return refused

    def _refusal(
        self, run_id: str, expected_head: int, moved: int | LedgerError | None
    ) -> LedgerError | None:
        """The error for what :meth:`_store` answered (None: stored)."""
        if moved is None or isinstance(moved, LedgerError):
            return moved
        if moved == -2:
            return RunExists(run_id)
        actual = self.run(run_id).head if moved < 0 else moved
        return SequenceConflict(run_id, expected_head + 1, actual + 1)

    def _store(
        self,
        db: psycopg.Connection[tuple[Any, ...]],
        run_id: str,
        rid: int,
        expected_head: int,
        rows: list[Row],
        snapshots: list[Snapshot],
        blobs: list[tuple[str, bytes]],
        create: tuple[bool, str | None],
        epoch: int | None,
    ) -> tuple[int | LedgerError | None, int]:
        """Store one group in a transaction of its own (a savepoint inside the caller's):
        ``(None, rid)`` once stored; else the run's head if another writer moved it, -1 for
        rows already there, -2 for a run id taken, the :class:`Fenced` error of the lease's
        fence (a write under another ``epoch``), and nothing of the group written.
        ``create``: whether to insert the run's row, and its parent (a fork of it after
        ``expected_head``) or None (a root run)."""
        last = rows[-1]
        creating, parent = create
        try:
            with db.transaction():
                if creating:
                    created = db.execute(
                        "INSERT INTO runs (id, parent, fork_seq, head, head_hash) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING "
                        "RETURNING rid",
                        (run_id, parent, expected_head, last.seq, last.hash),
                    ).fetchone()
                    if created is None:
                        return -2, rid
                    rid = int(created[0])
                else:
                    locked = db.execute(
                        "SELECT head FROM runs WHERE rid = %s FOR UPDATE", (rid,)
                    ).fetchone()
                    assert locked is not None
                    head = int(locked[0])
                    if head != expected_head:
                        return head, rid
                # The fence, in the transaction that checks and moves the head. FOR SHARE:
                # a takeover (which updates the lease row) waits for this append to end,
                # and this append waits for a takeover in flight and then sees its epoch.
                lease = db.execute(
                    "SELECT epoch, released, holder FROM leases WHERE run_id = %s FOR SHARE",
                    (run_id,),
                ).fetchone()
                if lease is not None or epoch is not None:
                    check_fence(
                        run_id,
                        epoch,
                        None if lease is None else (int(lease[0]), bool(lease[1]), lease[2]),
                        rows,
                    )
                with db.cursor() as cur:
                    _insert(cur, [(rid, rows, snapshots, blobs)])
                    if not creating:
                        cur.execute(
                            "UPDATE runs SET head = %s, head_hash = %s WHERE rid = %s",
                            (last.seq, last.hash, rid),
                        )
        except pg_errors.UniqueViolation:
            # Rows for these sequence numbers exist beyond the recorded head: someone
            # else's write, or damage; either way nothing of ours was written.
            return -1, rid
        except Fenced as exc:
            return exc, rid
        return None, rid

    def _scan(self, run_id: str, lo: int, hi: int) -> Iterator[RawRow]:
        rid = self._rid(run_id)
        start = lo
        while start <= hi:
            page: list[tuple[Any, ...]] = self._call(
                f"reading run {run_id!r}",
                lambda db, start=start: db.execute(
                    "SELECT seq, tick, agent, kind, causes, ts, v, payload, hash FROM transitions "
                    "WHERE rid = %s AND seq >= %s AND seq <= %s ORDER BY seq LIMIT %s",
                    (rid, start, hi, _PAGE),
                ).fetchall(),
            )
            for seq, tick, agent, kind, causes, ts, v, payload, h in page:
                yield Row(
                    seq,
                    tick,
                    agent,
                    kind,
                    tuple(causes) if causes else (),
                    ts,
                    v,
                    bytes(payload),
                    bytes(h),
                )
            if len(page) < _PAGE:
                return
            start = int(page[-1][0]) + 1

    def _row_hash(self, run_id: str, seq: int) -> bytes | None:
        rid = self._rid(run_id)
        row = self._call(
            f"reading run {run_id!r}",
            lambda db: db.execute(
                "SELECT hash FROM transitions WHERE rid = %s AND seq = %s", (rid, seq)
            ).fetchone(),
        )
        return None if row is None else bytes(row[0])

    def _get_snapshot(self, run_id: str, lo: int, hi: int) -> Snapshot | None:
        rid = self._rid(run_id)
        row = self._call(
            f"reading run {run_id!r}",
            lambda db: db.execute(
                "SELECT seq, state, state_hash, chain, digest FROM snapshots "
                "WHERE rid = %s AND seq >= %s AND seq <= %s ORDER BY seq DESC LIMIT 1",
                (rid, lo, hi),
            ).fetchone(),
        )
        if row is None:
            return None
        seq, state, state_hash, chain, digest = row
        return Snapshot(int(seq), bytes(state), str(state_hash), bytes(chain), bytes(digest))

    def _snapshot_seqs(self, run_id: str, lo: int, hi: int) -> list[int]:
        rid = self._rid(run_id)
        rows = self._call(
            f"reading run {run_id!r}",
            lambda db: db.execute(
                "SELECT seq FROM snapshots WHERE rid = %s AND seq >= %s AND seq <= %s",
                (rid, lo, hi),
            ).fetchall(),
        )
        return [int(r[0]) for r in rows]

    def _get_blob(self, blob_id: str) -> bytes | None:
        row = self._call(
            "reading a blob",
            lambda db: db.execute("SELECT data FROM blobs WHERE id = %s", (blob_id,)).fetchone(),
        )
        return None if row is None else bytes(row[0])

    def _snapshot_size(self, run_id: str, lo: int, hi: int) -> tuple[int, int] | None:
        rid = self._rid(run_id)
        row = self._call(
            f"reading run {run_id!r}",
            lambda db: db.execute(
                "SELECT seq, octet_length(state) FROM snapshots "
                "WHERE rid = %s AND seq >= %s AND seq <= %s ORDER BY seq DESC LIMIT 1",
                (rid, lo, hi),
            ).fetchone(),
        )
        return None if row is None else (int(row[0]), int(row[1]))

    def _payload_bytes(self, run_id: str, lo: int, hi: int) -> int:
        rid = self._rid(run_id)
        row = self._call(
            f"reading run {run_id!r}",
            lambda db: db.execute(
                "SELECT coalesce(sum(octet_length(payload)), 0) FROM transitions "
                "WHERE rid = %s AND seq >= %s AND seq <= %s",
                (rid, lo, hi),
            ).fetchone(),
        )
        return 0 if row is None else int(row[0])

    # -- damage, for the shared test suite -----------------------------------------------

    def execute(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Run raw SQL (``%s`` placeholders): for tamper tests and diagnostics only."""
        self._forget()

        def run(db: psycopg.Connection[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            cur = db.execute(query, params)  # pyright: ignore[reportArgumentType]
            return cur.fetchall() if cur.description is not None else []

        return self._call("raw SQL", run)

    def rid(self, run_id: str) -> int:
        return self._rid(run_id)


class PostgresLeases(Leases):
    """Leases in the schema's ``leases`` table; every time is the server's clock
    (``clock_timestamp()`` in the statement), so hosts whose clocks differ agree on expiry."""

    def __init__(self, ledger: PostgresLedger) -> None:
        super().__init__()
        self._ledger = ledger

    def _call(self, what: str, fn: Callable[[psycopg.Connection[tuple[Any, ...]]], T]) -> T:
        if self._ledger.readonly:
            raise LedgerUnavailable(self._ledger.url, "it was opened read-only; leases are refused")
        return self._ledger._call(what, fn)  # pyright: ignore[reportPrivateUsage]

    def now_us(self) -> int:
        row = self._ledger._call(  # pyright: ignore[reportPrivateUsage]
            "reading the lease clock", lambda db: db.execute(f"SELECT {_NOW}").fetchone()
        )
        assert row is not None
        return int(row[0])

    def _acquire(
        self, run_id: str, holder: str, node: str, ttl: int, expect_epoch: int | None
    ) -> tuple[LeaseRow | None, int, bool]:
        def take(db: psycopg.Connection[tuple[Any, ...]]) -> tuple[LeaseRow | None, int, bool]:
            with db.transaction():
                if expect_epoch in (None, 0):
                    first = db.execute(
                        f"INSERT INTO leases ({_LEASE_COLUMNS}) SELECT %s, %s, %s, 1, %s, t, t, "
                        f"t + %s, FALSE FROM (SELECT {_NOW} AS t) AS now "
                        f"ON CONFLICT (run_id) DO NOTHING RETURNING {_LEASE_COLUMNS}",
                        (run_id, holder, node, ttl, ttl),
                    ).fetchone()
                    if first is not None:
                        got = _lease(first)
                        return got, got[5], True
                found = db.execute(
                    f"SELECT {_LEASE_COLUMNS}, {_NOW} FROM leases WHERE run_id = %s FOR UPDATE",
                    (run_id,),
                ).fetchone()
                if found is None:  # only with an expect_epoch other than 0
                    now_row = db.execute(f"SELECT {_NOW}").fetchone()
                    assert now_row is not None
                    return None, int(now_row[0]), False
                row, now = _lease(found[:9]), int(found[9])
                if not free(row, holder, now, expect_epoch):
                    return row, now, False
                new = taken(row, run_id, holder, node, ttl, now)
                db.execute(
                    "UPDATE leases SET holder = %s, node = %s, epoch = %s, ttl_us = %s, "
                    "acquired_us = %s, renewed_us = %s, expires_us = %s, released = %s "
                    "WHERE run_id = %s",
                    (*new[1:], run_id),
                )
                return new, now, True

        return self._call(f"taking the lease of run {run_id!r}", take)

    def _renew(self, run_id: str, holder: str, epoch: int, ttl: int) -> LeaseRow | None:
        row = self._call(
            f"renewing the lease of run {run_id!r}",
            lambda db: db.execute(
                f"UPDATE leases SET ttl_us = %s, renewed_us = now.t, expires_us = now.t + %s "
                f"FROM (SELECT {_NOW} AS t) AS now "
                "WHERE run_id = %s AND holder = %s AND epoch = %s AND NOT released "
                f"RETURNING {', '.join('leases.' + c for c in _LEASE_COLUMNS.split(', '))}",
                (ttl, ttl, run_id, holder, epoch),
            ).fetchone(),
        )
        return None if row is None else _lease(row)

    def _release(self, run_id: str, holder: str, epoch: int) -> bool:
        row = self._call(
            f"releasing the lease of run {run_id!r}",
            lambda db: db.execute(
                "UPDATE leases SET released = TRUE "
                "WHERE run_id = %s AND holder = %s AND epoch = %s AND NOT released "
                "RETURNING epoch",
                (run_id, holder, epoch),
            ).fetchone(),
        )
        return row is not None

    def _get(self, run_id: str) -> LeaseRow | None:
        if not self._ledger._has_leases:  # pyright: ignore[reportPrivateUsage]
            return None  # a read-only schema of a telic before leases: it has none
        row = self._ledger._call(  # pyright: ignore[reportPrivateUsage]
            "reading a lease",
            lambda db: db.execute(
                f"SELECT {_LEASE_COLUMNS} FROM leases WHERE run_id = %s", (run_id,)
            ).fetchone(),
        )
        return None if row is None else _lease(row)

    def _all(self) -> list[LeaseRow]:
        if not self._ledger._has_leases:  # pyright: ignore[reportPrivateUsage]
            return []
        rows = self._ledger._call(  # pyright: ignore[reportPrivateUsage]
            "listing leases",
            lambda db: db.execute(
                f"SELECT {_LEASE_COLUMNS} FROM leases ORDER BY run_id"
            ).fetchall(),
        )
        return [_lease(r) for r in rows]


def _lease(row: tuple[Any, ...]) -> LeaseRow:
    run_id, holder, node, epoch, ttl, acquired, renewed, expires, released = row
    return (
        str(run_id),
        str(holder),
        str(node),
        int(epoch),
        int(ttl),
        int(acquired),
        int(renewed),
        int(expires),
        bool(released),
    )


def _unsupported(version: str | None) -> str:
    if version is not None and version.isdigit() and int(version) < int(FORMAT_VERSION):
        return (
            f"its schema is ledger format {version}, written by an older telic; this telic "
            f"reads format {FORMAT_VERSION} (snapshots that carry a digest): read it with the "
            "telic that wrote it, or use a new schema"
        )
    return f"ledger format {version!r} is not supported (this telic reads {FORMAT_VERSION})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
