"""The SQLite backend (``sqlite:///path`` or a plain path): the embedded default.

WAL journal; every append is one transaction; ``synchronous=FULL`` by default, so a returned
append survives power loss; ``synchronous=normal`` is an explicit option that survives a
process crash but not an OS crash. SQLite's own WAL recovery repairs a torn final write when
the file is next opened; a run whose stored head does not match its last transition refuses
to load.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from telic.errors import (
    ChainBroken,
    LedgerError,
    LedgerUnavailable,
    NotALedger,
    RunExists,
    SequenceConflict,
    TelicError,
)
from telic.ledger.base import (
    BaseLedger,
    FoldRow,
    PreparedGroup,
    RawRow,
    Row,
    RunInfo,
    Snapshot,
)
from telic.ledger.lease import LeaseRow, Leases, check_fence, free, taken

__all__ = ["SEQ_BITS", "SQLiteLeases", "SQLiteLedger", "row_key"]


FORMAT: Final = "telic-ledger"
FORMAT_VERSION: Final = "3"
"""3: a snapshot carries the SHA-256 of its state (``digest``), checked whenever it is read.
2: transitions live in a rowid table keyed by :func:`row_key` (1 kept them in a WITHOUT ROWID
table keyed by ``(rid, seq)``, where every row over ~1 KB spilled into an overflow page of its
own), and a snapshot's state is its last column (reading its hash no longer walks the state's
overflow pages). Older formats are refused with :class:`~telic.errors.NotALedger`."""

SEQ_BITS: Final = 36
"""A transition's key is ``rid << SEQ_BITS | seq``: 68 billion transitions per run, 134 million
runs per file."""
_MAX_SEQ: Final = (1 << SEQ_BITS) - 1
_MMAP_BYTES: Final = 256 * 1024 * 1024
_MAX_RID: Final = (1 << (63 - SEQ_BITS)) - 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS telic_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    parent TEXT,
    fork_seq INTEGER NOT NULL,
    head INTEGER NOT NULL,
    head_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    key INTEGER PRIMARY KEY,
    rid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    tick INTEGER NOT NULL,
    agent TEXT,
    kind TEXT NOT NULL,
    causes TEXT,
    ts INTEGER NOT NULL,
    v INTEGER NOT NULL,
    payload BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    rid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    state_hash TEXT NOT NULL,
    chain BLOB NOT NULL,
    digest BLOB NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (rid, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
"""

_LEASES: Final = """
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    node TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    ttl_us INTEGER NOT NULL,
    acquired_us INTEGER NOT NULL,
    renewed_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    released INTEGER NOT NULL
) WITHOUT ROWID
"""
"""Run ownership (:mod:`telic.ledger.lease`). Added without a format bump: a file of format 3
without it gets it when next opened for writing (a table no older reader looks at)."""
_SNAPSHOT_SEQS: Final = "CREATE INDEX IF NOT EXISTS snapshots_at ON snapshots (rid, seq)"
"""The seqs of a run's snapshots, apart from their states: listing them (where a fold starts,
which snapshots a verify compares) reads this small index instead of a leaf page per snapshot
(a WITHOUT ROWID table keeps the start of each state in its key's cell). Added without a
format bump, like the leases table: a file of format 3 without it gets it when next opened for
writing; a telic that does not know it keeps it up to date all the same (SQLite does)."""
_LEASE_COLUMNS: Final = (
    "run_id, holder, node, epoch, ttl_us, acquired_us, renewed_us, expires_us, released"
)

Synchronous = Literal["full", "normal"]
T = TypeVar("T")


_INSERT: Final = "INSERT INTO transitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_SNAPSHOT: Final = "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)"


_IN_CHUNK: Final = 500
"""Run ids per ``IN (...)`` list (SQLite allows 32,766 parameters a statement)."""


class _Apart(Exception):
    """Groups written together met rows already stored: write them one by one instead."""


def row_key(rid: int, seq: int) -> int:
    """The rowid of a run's transition: rows of one run are adjacent and in seq order, and a
    rowid table keeps each row (up to about a page) inline in its leaf."""
    return rid << SEQ_BITS | seq


def _causes(text: str) -> tuple[int, ...]:
    if "," not in text:
        return (int(text),)
    return tuple(map(int, text.split(",")))


def _causes_ok(value: object) -> bool:
    if value is None or value == "":
        return True
    try:
        _causes(value)  # pyright: ignore[reportArgumentType]
    except (ValueError, TypeError):
        return False
    return True


def _causes_text(causes: tuple[int, ...]) -> str | None:
    if not causes:
        return None
    if len(causes) == 1:
        return str(causes[0])
    return ",".join(map(str, causes))


def _stored(rid: int, r: Row) -> tuple[object, ...]:
    causes = _causes_text(r.causes)
    key = row_key(rid, r.seq)
    return (key, rid, r.seq, r.tick, r.agent, r.kind, causes, r.ts, r.v, r.payload, r.hash)


def _stored_rows(rid: int, rows: list[Row]) -> list[tuple[object, ...]]:
    """:func:`_stored` of each of ``rows`` (one group's, in seq order)."""
    base = rid << SEQ_BITS
    return [
        (base | seq, rid, seq, tick, agent, kind, _causes_text(causes), ts, v, p, h)
        for seq, tick, agent, kind, causes, ts, v, p, h in rows
    ]


def _snapshot_rows(rid: int, snapshots: list[Snapshot]) -> list[tuple[object, ...]]:
    """``snapshots`` as rows of the snapshots table."""
    return [(rid, s, h, chain, d, state) for s, state, h, chain, d in snapshots]


def _room(run_id: str, last: Row) -> None:
    """:class:`LedgerError` if ``last`` is past the seqs a run's row keys hold."""
    if last.seq > _MAX_SEQ:
        raise LedgerError(f"run {run_id!r} is full: a run holds at most {_MAX_SEQ} transitions")


def _open_error(where: str, exc: sqlite3.Error) -> LedgerError:
    """An SQLite error met opening ``where``, as what it means."""
    text = str(exc)
    if "malformed" in text:
        return LedgerUnavailable(where, f"the file is damaged ({text})")
    if isinstance(exc, sqlite3.OperationalError):  # locked, read-only, I/O error, ...
        return LedgerUnavailable(where, text)
    return NotALedger(where, text)  # "file is not a database"


def _unsupported(version: str | None) -> str:
    if version is not None and version.isdigit() and int(version) < int(FORMAT_VERSION):
        return (
            f"it is ledger format {version}, written by an older telic; this telic reads "
            f"format {FORMAT_VERSION} (snapshots that carry a digest): read it with the telic "
            "that wrote it, or start a new ledger"
        )
    return f"ledger format {version!r} is not supported (this telic reads {FORMAT_VERSION})"


class SQLiteLedger(BaseLedger):
    """A ledger in one SQLite file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "full",
        create: bool = True,
        readonly: bool = False,
        **options: int,
    ) -> None:
        """``create=False`` refuses a missing or empty file instead of making it a ledger;
        ``readonly=True`` (implies ``create=False``) opens the file for reading only, so that a
        ledger in a read-only directory or file can be inspected; appends are refused."""
        super().__init__(readonly=readonly, **options)
        self.path = Path(path)
        self.url = f"sqlite://{self.path}"
        if synchronous not in ("full", "normal"):
            raise LedgerUnavailable(
                str(path), f"synchronous must be 'full' or 'normal', not {synchronous!r}"
            )
        self.synchronous = synchronous
        self._rids: dict[str, int] = {}
        self._db = self._connect(create and not readonly)
        self.leases = SQLiteLeases(self)

    def _connect(self, create: bool) -> sqlite3.Connection:
        where = str(self.path)
        try:
            if self.path.is_dir():
                raise LedgerUnavailable(where, "it is a directory")
            exists = self.path.exists()
            if not exists and not create:
                raise LedgerUnavailable(where, "no such file")
            if not exists and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerUnavailable(where, exc.strerror or str(exc)) from None
        db = self._open(where)
        try:
            if not self.readonly:
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            db.execute("PRAGMA busy_timeout=5000")
            # Reads through a memory map instead of a read() per page: a state snapshot is
            # dozens of pages, and time travel reads one on a fresh connection.
            db.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            names = db.execute("SELECT type, name FROM sqlite_master").fetchall()
            tables = {name for kind, name in names if kind == "table"}
            indexes = {name for kind, name in names if kind == "index"}
        except sqlite3.DatabaseError as exc:
            db.close()
            raise _open_error(where, exc) from None
        if tables and "telic_meta" not in tables:
            db.close()
            raise NotALedger(where, "it is an SQLite database without telic's tables")
        if not tables and not create:
            db.close()
            raise NotALedger(where, "it is empty (opened without creating a ledger in it)")
        try:
            if not tables:
                db.execute("BEGIN IMMEDIATE")
                db.executescript(_SCHEMA)  # executescript commits
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR IGNORE INTO telic_meta VALUES (?, ?)",
                    [("format", FORMAT), ("version", FORMAT_VERSION)],
                )
                db.execute("COMMIT")
            meta = dict(db.execute("SELECT key, value FROM telic_meta").fetchall())
            if (
                not self.readonly
                and "leases" not in tables
                and meta.get("version") == FORMAT_VERSION
            ):
                db.execute(_LEASES)
            if (
                not self.readonly
                and "snapshots_at" not in indexes
                and meta.get("version") == FORMAT_VERSION
            ):
                db.execute(_SNAPSHOT_SEQS)
        except sqlite3.Error as exc:
            db.close()
            raise _open_error(where, exc) from None
        if meta.get("format") != FORMAT:
            db.close()
            raise NotALedger(where, "its format marker is missing")
        if meta.get("version") != FORMAT_VERSION:
            db.close()
            raise NotALedger(where, _unsupported(meta.get("version")))
        return db

    def _open(self, where: str) -> sqlite3.Connection:
        if not self.readonly:
            try:
                return sqlite3.connect(where, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise LedgerUnavailable(where, str(exc)) from None
        uri = self.path.absolute().as_uri()
        try:
            db = sqlite3.connect(
                f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError as exc:
            # A WAL file needs its -shm beside it; in a read-only directory it cannot be made.
            # With no -wal file there is nothing beyond the main file, and no writer can start
            # (it could not create the -wal either): the file can be read as immutable.
            if Path(f"{where}-wal").exists():
                raise LedgerUnavailable(where, f"{exc} (read-only, with a -wal file)") from None
        except sqlite3.DatabaseError as exc:
            raise _open_error(where, exc) from None
        try:
            return sqlite3.connect(
                f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise LedgerUnavailable(where, str(exc)) from None

    def close(self) -> None:
        super().close()
        self._db.close()

    # -- primitives ----------------------------------------------------------------------

    def _rid(self, run_id: str) -> int:
        rid = self._rids.get(run_id)
        if rid is None:
            rows = self._all("SELECT rid FROM runs WHERE id = ?", (run_id,))
            if not rows:
                raise LedgerError(f"run {run_id!r} vanished")
            rid = self._rids[run_id] = rows[0][0]
        return rid

    @staticmethod
    def _info(row: tuple[int, str, str | None, int, int, bytes]) -> RunInfo:
        rid, run_id, parent, fork_seq, head, head_hash = row
        if not (
            type(rid) is int
            and type(run_id) is str
            and (parent is None or type(parent) is str)
            and type(fork_seq) is int
            and type(head) is int
            and type(head_hash) is bytes
        ):
            raise ChainBroken(str(run_id), 0, "its entry in the runs table is damaged")
        return RunInfo(run_id, parent, fork_seq, head, head_hash, rid)

    def _insert_run(
        self, run_id: str, parent: str | None, fork_seq: int, head_hash: bytes
    ) -> RunInfo:
        try:
            with self._lock:
                cur = self._db.execute(
                    "INSERT INTO runs (id, parent, fork_seq, head, head_hash) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (run_id, parent, fork_seq, fork_seq, head_hash),
                )
        except sqlite3.IntegrityError:
            raise RunExists(run_id) from None
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot create run {run_id!r}: {exc}") from None
        rid = cur.lastrowid
        assert rid is not None
        if rid > _MAX_RID:
            self._all("DELETE FROM runs WHERE rid = ?", (rid,))
            raise LedgerError(f"cannot create run {run_id!r}: the file holds {_MAX_RID} runs")
        self._rids[run_id] = rid
        return RunInfo(run_id, parent, fork_seq, fork_seq, head_hash, rid)

    def _load_run(self, run_id: str) -> RunInfo | None:
        rows = self._all(
            "SELECT rid, id, parent, fork_seq, head, head_hash FROM runs WHERE id = ?", (run_id,)
        )
        return self._info(rows[0]) if rows else None

    def _list_runs(self) -> list[RunInfo]:
        rows = self._all("SELECT rid, id, parent, fork_seq, head, head_hash FROM runs ORDER BY rid")
        out: list[RunInfo] = []
        for r in rows:
            try:
                out.append(self._info(r))
            except ChainBroken:  # listed all the same: reading it says what is wrong
                out.append(RunInfo(str(r[1]), None, 0, 0, b"", r[0]))
        return out

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
        rid = self._in_transaction(
            f"append to run {run_id!r}",
            lambda: self._store(
                run_id,
                expected_head,
                rows,
                snapshots,
                blobs,
                create=create,
                parent=parent,
                epoch=epoch,
            ),
        )
        if create:
            self._rids[run_id] = rid

    def _write_groups(self, groups: list[PreparedGroup]) -> list[TelicError | None]:
        """Every group in one transaction: one commit (one fsync) for all, and a group refused
        (its head moved, its run exists, its lease's fence) leaves the others written. A
        failure of the commit itself is raised: nothing was written.

        Groups that create no run are written together (:meth:`_store_together`: one lease
        read, one head move per group, one insert of every row); if that meets rows already
        stored, or a group creates its run, each group goes under a savepoint of its own."""
        if not groups:
            return []
        if not any(g.create for g in groups):
            try:
                return self._in_transaction(
                    f"append of {len(groups)} group(s)", lambda: self._store_together(groups)
                )
            except _Apart:
                pass  # rolled back: each group on its own below
        db = self._db
        refused: list[TelicError | None] = []
        created: list[tuple[str, int]] = []

        def store_each() -> None:
            for g in groups:
                run_id = g.info.id
                db.execute("SAVEPOINT telic_group")
                try:
                    rid = self._store(
                        run_id,
                        g.info.head,
                        g.rows,
                        g.snapshots,
                        g.blobs,
                        create=g.create,
                        parent=g.info.parent,
                        epoch=self.fenced(run_id),
                    )
                except LedgerError as exc:
                    db.execute("ROLLBACK TO telic_group")
                    db.execute("RELEASE telic_group")
                    refused.append(exc)
                    continue
                db.execute("RELEASE telic_group")
                refused.append(None)
                if g.create:
                    created.append((run_id, rid))

        self._in_transaction(f"append of {len(groups)} group(s)", store_each)
        self._rids.update(created)
        return refused

    def _store_together(self, groups: list[PreparedGroup]) -> list[TelicError | None]:
        """Store ``groups`` (none creating its run) inside the caller's transaction, without a
        savepoint each: every check that can refuse a group (its seq range, its lease's fence,
        its head) runs before anything of it is written, and a group refused writes nothing;
        then the heads, rows, blobs and snapshots of the others go in one statement each (the
        heads and leases are read in one statement each too: the transaction, ``BEGIN
        IMMEDIATE``, keeps every other writer out until it ends). Rows already stored under a
        key (damage, or a writer that did not move the head) raise :class:`_Apart`: the caller
        rolls back and stores the groups one by one, so that only the group they belong to is
        refused."""
        db = self._db
        refused: list[TelicError | None] = []
        ids = [g.info.id for g in groups]
        leases: dict[str, tuple[int, bool, str]] = {}
        heads: dict[str, int] = {}
        for k in range(0, len(ids), _IN_CHUNK):
            chunk = ids[k : k + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for run_id, epoch, released, holder in db.execute(
                f"SELECT run_id, epoch, released, holder FROM leases WHERE run_id IN ({marks})",
                chunk,
            ):
                leases[run_id] = (epoch, bool(released), holder)
            for run_id, head in db.execute(
                f"SELECT id, head FROM runs WHERE id IN ({marks})", chunk
            ):
                heads[run_id] = head
        moves: list[tuple[int, bytes, int, int]] = []
        stored: list[tuple[object, ...]] = []
        blobs: list[tuple[str, bytes]] = []
        snapshots: list[tuple[object, ...]] = []
        fences = self._fences
        for g in groups:
            run_id, rows = g.info.id, g.rows
            last = rows[-1]
            try:
                _room(run_id, last)
                rid = self._rid(run_id)
                lease = leases.get(run_id)
                epoch = fences.get(run_id)
                if lease is not None or epoch is not None:
                    check_fence(run_id, epoch, lease, rows)
                head = heads.get(run_id)
                if head is None:
                    raise LedgerError(f"run {run_id!r} vanished")
                if head != g.info.head:
                    raise SequenceConflict(run_id, g.info.head + 1, head + 1)
            except LedgerError as exc:
                refused.append(exc)
                continue
            refused.append(None)
            moves.append((last.seq, last.hash, rid, g.info.head))
            stored += _stored_rows(rid, rows)
            blobs += g.blobs
            snapshots += _snapshot_rows(rid, g.snapshots)
        if not moves:
            return refused
        moved = db.executemany(
            "UPDATE runs SET head = ?, head_hash = ? WHERE rid = ? AND head = ?", moves
        ).rowcount
        if moved != len(moves):  # cannot happen while the transaction keeps writers out
            raise _Apart
        try:
            if blobs:
                db.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?)", blobs)
            db.executemany(_INSERT, stored)
            if snapshots:
                db.executemany(_INSERT_SNAPSHOT, snapshots)
        except sqlite3.IntegrityError:
            raise _Apart from None
        return refused

    def _in_transaction(self, what: str, body: Callable[[], T]) -> T:
        """``body()`` in one write transaction, committed (one fsync under FULL), or rolled
        back if anything fails; SQLite's errors become :class:`LedgerError`."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                out = body()
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        except sqlite3.Error as exc:
            raise LedgerError(f"{what} failed: {exc}") from None
        return out

    def _store(
        self,
        run_id: str,
        expected_head: int,
        rows: list[Row],
        snapshots: list[Snapshot],
        blobs: list[tuple[str, bytes]],
        *,
        create: bool,
        parent: str | None = None,
        epoch: int | None,
    ) -> int:
        """Store one group and move its run's head, inside the caller's transaction; the
        run's rid. :class:`SequenceConflict` if the head is no longer ``expected_head``,
        :class:`RunExists` for a ``create`` whose id is taken; the lease's fence refuses a
        write under another ``epoch`` (see :mod:`telic.ledger.lease`)."""
        db = self._db
        last = rows[-1]
        _room(run_id, last)
        rid = 0 if create else self._rid(run_id)
        # The fence, in the transaction that checks and moves the head.
        lease = db.execute(
            "SELECT epoch, released, holder FROM leases WHERE run_id = ?", (run_id,)
        ).fetchone()
        if lease is not None or epoch is not None:
            check_fence(
                run_id,
                epoch,
                None if lease is None else (lease[0], bool(lease[1]), lease[2]),
                rows,
            )
        try:
            if create:
                rid = self._create(run_id, parent, expected_head, last)
            else:
                # The head check and the head move in one statement: optimistic concurrency.
                moved = db.execute(
                    "UPDATE runs SET head = ?, head_hash = ? WHERE rid = ? AND head = ?",
                    (last.seq, last.hash, rid, expected_head),
                ).rowcount
                if moved != 1:
                    raise SequenceConflict(run_id, expected_head + 1, self._head(rid) + 1)
            if blobs:
                db.executemany("INSERT OR IGNORE INTO blobs VALUES (?, ?)", blobs)
            if len(rows) == 1:
                db.execute(_INSERT, _stored(rid, last))
            else:
                db.executemany(_INSERT, _stored_rows(rid, rows))
            if snapshots:
                db.executemany(_INSERT_SNAPSHOT, _snapshot_rows(rid, snapshots))
        except sqlite3.IntegrityError as exc:
            if create:  # rows under a new run's key: left by damage, nothing to conflict with
                raise LedgerError(f"creating run {run_id!r} failed: {exc}") from None
            raise SequenceConflict(run_id, expected_head + 1, self._head(rid) + 1) from None
        return rid

    def _create(self, run_id: str, parent: str | None, fork_seq: int, last: Row) -> int:
        """Insert a run (a root run, or a fork of ``parent`` after ``fork_seq``) whose head is
        ``last``, inside the caller's transaction."""
        try:
            cur = self._db.execute(
                "INSERT INTO runs (id, parent, fork_seq, head, head_hash) VALUES (?, ?, ?, ?, ?)",
                (run_id, parent, fork_seq, last.seq, last.hash),
            )
        except sqlite3.IntegrityError:
            raise RunExists(run_id) from None
        rid = cur.lastrowid
        assert rid is not None
        if rid > _MAX_RID:
            raise LedgerError(f"cannot create run {run_id!r}: the file holds {_MAX_RID} runs")
        return rid

    def _rollback(self) -> None:
        """Roll back if a transaction is still open. SQLite has already rolled back after
        some errors (a full disk, an I/O error): a second ROLLBACK would fail and hide the
        error that matters, so it is not attempted, and its own failure is not raised."""
        db = self._db
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the error being raised is the one
                db.execute("ROLLBACK")

    def _head(self, rid: int) -> int:
        return int(self._all("SELECT head FROM runs WHERE rid = ?", (rid,))[0][0])

    def _pages(self, run_id: str, lo: int, hi: int, columns: str) -> Iterator[list[Any]]:
        """``columns`` of ``run_id``'s rows ``lo..hi`` in seq order, a page of rows at a time:
        a long scan neither holds one statement open forever nor materialises a million rows
        at once."""
        base = self._rid(run_id) << SEQ_BITS
        page = 4096
        start = lo
        while start <= hi:
            try:
                with self._lock:
                    rows = self._db.execute(
                        f"SELECT {columns} FROM transitions "
                        "WHERE key >= ? AND key <= ? ORDER BY key LIMIT ?",
                        (base | start, base | hi, page),
                    ).fetchall()
            except sqlite3.DatabaseError as exc:
                raise ChainBroken(run_id, start, f"the file is damaged ({exc})") from None
            yield rows
            if len(rows) < page:
                return
            start = rows[-1][0] + 1

    def _scan(self, run_id: str, lo: int, hi: int) -> Iterator[RawRow]:
        for rows in self._pages(
            run_id, lo, hi, "seq, tick, agent, kind, causes, ts, v, payload, hash"
        ):
            try:
                parsed = [
                    (s, t, a, k, _causes(c) if c else (), ts, v, p, h)
                    for s, t, a, k, c, ts, v, p, h in rows
                ]
            except (ValueError, TypeError):
                bad = next(r[0] for r in rows if not _causes_ok(r[4]))
                raise ChainBroken(run_id, bad, "its causes are not integers") from None
            yield from parsed

    def _scan_fold(self, run_id: str, lo: int, hi: int) -> Iterator[FoldRow]:
        # What a fold reads: six columns of nine.
        for rows in self._pages(run_id, lo, hi, "seq, tick, agent, kind, ts, payload"):
            yield from rows

    def _row_hash(self, run_id: str, seq: int) -> bytes | None:
        rows = self._all(
            "SELECT hash FROM transitions WHERE key = ?", (row_key(self._rid(run_id), seq),)
        )
        return rows[0][0] if rows else None

    def _get_snapshot(self, run_id: str, lo: int, hi: int) -> Snapshot | None:
        rows = self._all(
            "SELECT seq, state, state_hash, chain, digest FROM snapshots "
            "WHERE rid = ? AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
            (self._rid(run_id), lo, hi),
        )
        return Snapshot(*rows[0]) if rows else None

    def _get_placed_snapshot(
        self, run_id: str, lo: int, hi: int
    ) -> tuple[Snapshot, bytes | None] | None:
        # The snapshot and the hash of its transition (a rowid lookup) in one statement.
        rows = self._all(
            "SELECT s.seq, s.state, s.state_hash, s.chain, s.digest, t.hash FROM snapshots s "
            f"LEFT JOIN transitions t ON t.key = (s.rid << {SEQ_BITS} | s.seq) "
            "WHERE s.rid = ? AND s.seq >= ? AND s.seq <= ? ORDER BY s.seq DESC LIMIT 1",
            (self._rid(run_id), lo, hi),
        )
        if not rows:
            return None
        seq, state, state_hash, chain, digest, hash_ = rows[0]
        return Snapshot(seq, state, state_hash, chain, digest), hash_

    def _snapshot_seqs(self, run_id: str, lo: int, hi: int) -> list[int]:
        rows = self._all(
            "SELECT seq FROM snapshots WHERE rid = ? AND seq >= ? AND seq <= ?",
            (self._rid(run_id), lo, hi),
        )
        return [r[0] for r in rows]

    def _get_blob(self, blob_id: str) -> bytes | None:
        rows = self._all("SELECT data FROM blobs WHERE id = ?", (blob_id,))
        return rows[0][0] if rows else None

    def _snapshot_size(self, run_id: str, lo: int, hi: int) -> tuple[int, int] | None:
        # length() of a BLOB reads its size from the record header, not its overflow pages.
        rows = self._all(
            "SELECT seq, length(state) FROM snapshots "
            "WHERE rid = ? AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
            (self._rid(run_id), lo, hi),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def _payload_bytes(self, run_id: str, lo: int, hi: int) -> int:
        base = self._rid(run_id) << SEQ_BITS
        rows = self._all(
            "SELECT total(length(payload)) FROM transitions WHERE key >= ? AND key <= ?",
            (base | lo, base | hi),
        )
        return int(rows[0][0])

    # -- damage, for the shared test suite -----------------------------------------------

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run raw SQL against the file: for tamper tests and diagnostics only."""
        with self._lock:
            self._forget()
            return self._db.execute(sql, params).fetchall()

    def _all(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        """Rows of a read. Under the lock, so a read never runs inside another thread's
        append transaction on this connection (it would see rows not yet committed)."""
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"reading {self.path} failed, the file may be damaged: {exc}"
            ) from None

    def rid(self, run_id: str) -> int:
        return self._rid(run_id)


class SQLiteLeases(Leases):
    """Leases in the file's ``leases`` table, each change one ``BEGIN IMMEDIATE`` transaction
    (so it is ordered with every append); the lease clock is :attr:`clock`."""

    def __init__(self, ledger: SQLiteLedger) -> None:
        super().__init__()
        self._ledger = ledger

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        ledger = self._ledger
        if ledger.readonly:
            raise LedgerUnavailable(str(ledger.path), "it was opened read-only; leases are refused")
        with ledger._lock:  # pyright: ignore[reportPrivateUsage]
            db = ledger._db  # pyright: ignore[reportPrivateUsage]
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(db)
                    db.execute("COMMIT")
                except BaseException:
                    ledger._rollback()  # pyright: ignore[reportPrivateUsage]
                    raise
            except sqlite3.Error as exc:
                raise LedgerError(f"leases in {ledger.path} failed: {exc}") from None
            return out

    @staticmethod
    def _row(db: sqlite3.Connection, run_id: str) -> LeaseRow | None:
        row = db.execute(f"SELECT {_LEASE_COLUMNS} FROM leases WHERE run_id = ?", (run_id,))
        got = row.fetchone()
        return None if got is None else _lease(got)

    def _acquire(
        self, run_id: str, holder: str, node: str, ttl: int, expect_epoch: int | None
    ) -> tuple[LeaseRow | None, int, bool]:
        def take(db: sqlite3.Connection) -> tuple[LeaseRow | None, int, bool]:
            now = self.now_us()
            row = self._row(db, run_id)
            if not free(row, holder, now, expect_epoch):
                return row, now, False
            new = taken(row, run_id, holder, node, ttl, now)
            db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", new)
            return new, now, True

        return self._tx(take)

    def _renew(self, run_id: str, holder: str, epoch: int, ttl: int) -> LeaseRow | None:
        def renew(db: sqlite3.Connection) -> LeaseRow | None:
            now = self.now_us()
            moved = db.execute(
                "UPDATE leases SET ttl_us = ?, renewed_us = ?, expires_us = ? "
                "WHERE run_id = ? AND holder = ? AND epoch = ? AND NOT released",
                (ttl, now, now + ttl, run_id, holder, epoch),
            ).rowcount
            return self._row(db, run_id) if moved == 1 else None

        return self._tx(renew)

    def _release(self, run_id: str, holder: str, epoch: int) -> bool:
        def release(db: sqlite3.Connection) -> bool:
            moved = db.execute(
                "UPDATE leases SET released = 1 "
                "WHERE run_id = ? AND holder = ? AND epoch = ? AND NOT released",
                (run_id, holder, epoch),
            ).rowcount
            return moved == 1

        return self._tx(release)

    def _get(self, run_id: str) -> LeaseRow | None:
        rows = self._read(f"SELECT {_LEASE_COLUMNS} FROM leases WHERE run_id = ?", (run_id,))
        return _lease(rows[0]) if rows else None

    def _all(self) -> list[LeaseRow]:
        return [
            _lease(r) for r in self._read(f"SELECT {_LEASE_COLUMNS} FROM leases ORDER BY run_id")
        ]

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        try:
            return self._ledger._all(sql, params)  # pyright: ignore[reportPrivateUsage]
        except LedgerError:
            if not self._ledger.readonly:
                raise
            return []  # a read-only file of a telic before leases: it has none


def _lease(row: tuple[Any, ...]) -> LeaseRow:
    run_id, holder, node, epoch, ttl, acquired, renewed, expires, released = row
    return (run_id, holder, node, epoch, ttl, acquired, renewed, expires, bool(released))
