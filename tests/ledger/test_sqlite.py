"""The shared ledger suite against SQLite, plus what only a file can get wrong."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telic.errors import (
    ChainBroken,
    LedgerError,
    LedgerOptionInvalid,
    LedgerUnavailable,
    NotALedger,
    UnknownScheme,
)
from telic.ledger import BaseLedger, Row, SQLiteLedger, open_ledger
from telic.ledger.sqlite import row_key

from .suite import LedgerSuite, fill, workload


def _sqlite(ledger: BaseLedger) -> SQLiteLedger:
    assert isinstance(ledger, SQLiteLedger)
    return ledger


def _causes(text: object) -> tuple[int, ...]:
    return tuple(int(c) for c in str(text).split(",")) if text else ()


class TestSQLiteLedger(LedgerSuite):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.count = 0

    @contextlib.contextmanager
    def fresh(self, **options: Any) -> Iterator[BaseLedger]:
        self.count += 1
        with open_ledger(f"sqlite:///{self.dir}/l{self.count}.db", **options) as ledger:
            yield ledger

    def second(self, ledger: BaseLedger) -> BaseLedger:
        first = _sqlite(ledger)
        return SQLiteLedger(
            first.path,
            snapshot_every=first.snapshot_every,
            snapshot_bytes=first.snapshots.min_bytes,
            snapshot_percent=first.snapshots.percent,
        )

    def stored_rows(self, ledger: BaseLedger, run: str) -> list[Row]:
        db = _sqlite(ledger)
        got = db.execute(
            "SELECT seq, tick, agent, kind, causes, ts, v, payload, hash FROM transitions "
            "WHERE rid = ? ORDER BY seq",
            (db.rid(run),),
        )
        return [Row(s, t, a, k, _causes(c), ts, v, p, h) for s, t, a, k, c, ts, v, p, h in got]  # type: ignore[arg-type]

    def store_rows(self, ledger: BaseLedger, run: str, rows: list[Row]) -> None:
        db = _sqlite(ledger)
        rid = db.rid(run)
        db.execute("BEGIN")
        db.execute("DELETE FROM transitions WHERE rid = ?", (rid,))
        for r in rows:
            causes = ",".join(map(str, r.causes)) or None
            key = row_key(rid, r.seq)
            db.execute(
                "INSERT INTO transitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, rid, r.seq, r.tick, r.agent, r.kind, causes, r.ts, r.v, r.payload, r.hash),
            )
        db.execute("COMMIT")

    def tamper_blob(self, ledger: BaseLedger, blob_id: str, data: bytes) -> None:
        _sqlite(ledger).execute("UPDATE blobs SET data = ? WHERE id = ?", (data, blob_id))

    def age(self, ledger: BaseLedger, seconds: float) -> None:
        d = round(seconds * 1e6)
        _sqlite(ledger).execute(
            "UPDATE leases SET acquired_us = acquired_us - ?, renewed_us = renewed_us - ?, "
            "expires_us = expires_us - ?",
            (d, d, d),
        )

    def tamper_snapshot(self, ledger: BaseLedger, run: str, seq: int, **fields: Any) -> None:
        db = _sqlite(ledger)
        for name, value in fields.items():
            db.execute(
                f"UPDATE snapshots SET {name} = ? WHERE rid = ? AND seq = ?",
                (value, db.rid(run), seq),
            )


# -- opening -----------------------------------------------------------------------------


def test_urls_pick_the_backend_and_options(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db?synchronous=normal&snapshot_every=9"
    with open_ledger(url) as ledger:
        ledger = _sqlite(ledger)
        assert (ledger.synchronous, ledger.snapshot_every) == ("normal", 9)
        assert ledger.execute("PRAGMA synchronous") == [(1,)]
        assert ledger.execute("PRAGMA journal_mode") == [("wal",)]
    with open_ledger(tmp_path / "b.db") as ledger:
        assert _sqlite(ledger).synchronous == "full"
        assert _sqlite(ledger).execute("PRAGMA synchronous") == [(2,)]
    os.chdir(tmp_path)
    with open_ledger("sqlite://rel/c.db") as ledger:
        assert _sqlite(ledger).path.resolve() == tmp_path / "rel" / "c.db"


@pytest.mark.parametrize("url", ["mysql://x/y", "ftp://host/file", "s3://bucket/key", "://"])
def test_unknown_schemes_are_refused(url: str) -> None:
    with pytest.raises(UnknownScheme, match="no ledger backend"):
        open_ledger(url)


def test_a_bad_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable, match="synchronous must be"):
        open_ledger(f"sqlite:///{tmp_path}/a.db?synchronous=sometimes")


def test_unopenable_paths(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable, match="is a directory"):
        open_ledger(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerUnavailable, match="cannot open ledger"):
        open_ledger(blocker / "sub" / "l.db")
    with pytest.raises(LedgerUnavailable, match="no such file"):
        SQLiteLedger(tmp_path / "missing.db", create=False)


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(NotALedger, match="is not a telic ledger"):
        open_ledger(path)
    assert path.read_bytes() == b"these are my notes, not a database\n" * 200


def test_an_sqlite_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE customers (name TEXT)")
        db.commit()
    with pytest.raises(NotALedger, match="without telic's tables"):
        open_ledger(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("customers",)]


def test_a_wrong_format_marker(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    open_ledger(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE telic_meta SET value = '99' WHERE key = 'version'")
        db.commit()
    with pytest.raises(NotALedger, match="format '99'"):
        open_ledger(path)


def test_everything_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with open_ledger(path, snapshot_every=4) as ledger:
        written = fill(ledger, "r", 30)
        ledger.fork("r", 12, "f")
        more = ledger.append("f", workload(3, start=13))
        state = ledger.state_at("f")
    with open_ledger(path, snapshot_every=4) as ledger:
        assert list(ledger.read("r")) == written
        assert [t.seq for t in ledger.read("f")][-3:] == [t.seq for t in more]
        assert ledger.state_at("f") == state
        assert ledger.verify("f").ok
        assert ledger.verify("r").ok
        assert ledger.append("r", workload(1, start=31))[0].prev_hash == written[-1].hash


def test_a_head_that_does_not_match_refuses_that_run_only(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with open_ledger(path, snapshot_every=4) as ledger:
        fill(ledger, "r", 10)
        fill(ledger, "other", 10)
        ledger.fork("r", 6, "early")
        ledger.fork("r", 9, "late")
        _sqlite(ledger).execute(
            "DELETE FROM transitions WHERE rid = ? AND seq >= 9", (_sqlite(ledger).rid("r"),)
        )
    with open_ledger(path) as ledger:  # the file opens: one run's damage is that run's
        for read in (
            lambda: ledger.state_at("r"),
            lambda: list(ledger.read("r")),
            lambda: ledger.replay("r"),
            lambda: ledger.append("r", workload(1, start=11)),
            lambda: ledger.state_at("late"),
        ):
            with pytest.raises(ChainBroken, match="at sequence 9"):  # the first bad, not 10
                read()
        assert ledger.verify("r").first_bad == 9
        assert ledger.verify("other").ok and ledger.state_at("other")["seq"] == 10
        assert ledger.state_at("early")["seq"] == 6  # shares only what is intact
        assert [r.id for r in ledger.runs()] == ["r", "other", "early", "late"]


def test_disk_full_reports_the_error_not_the_rollback(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.db") as ledger:
        fill(ledger, "r", 3)
        pages = _sqlite(ledger).execute("PRAGMA page_count")[0][0]
        _sqlite(ledger).execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        with pytest.raises(LedgerError, match="database or disk is full"):
            ledger.append("r", workload(300, start=4))
        assert ledger.run("r").head == 3
        assert ledger.verify("r").ok
        assert ledger.append("r", workload(1, start=4))[0].seq == 4  # still usable


def test_a_ledger_of_an_older_format_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    open_ledger(path).close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE telic_meta SET value = '2' WHERE key = 'version'")
        db.commit()
    with pytest.raises(NotALedger, match="format 2, written by an older telic"):
        open_ledger(path)


def test_open_read_only_creates_nothing_and_refuses_writes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(NotALedger, match="empty"):
        open_ledger(empty, readonly=True)
    assert empty.stat().st_size == 0
    with pytest.raises(LedgerUnavailable, match="no such file"):
        open_ledger(tmp_path / "missing.db", readonly=True)
    path = tmp_path / "l.db"
    with open_ledger(path) as ledger:
        written = fill(ledger, "r", 5)
    with open_ledger(path, readonly=True) as ledger:
        assert list(ledger.read("r")) == written
        assert ledger.verify("r").ok
        for write in (
            lambda: ledger.append("r", workload(1, start=6)),
            lambda: ledger.create_run("s"),
            lambda: ledger.fork("r", 2, "f"),
        ):
            with pytest.raises(LedgerUnavailable, match="read-only"):
                write()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5"])
def test_bad_numeric_options_are_refused(tmp_path: Path, value: str) -> None:
    for option in ("snapshot_every", "max_payload", "blob_threshold"):
        with pytest.raises(LedgerOptionInvalid, match=option):
            open_ledger(f"sqlite:///{tmp_path}/l.db?{option}={value}")
    with pytest.raises(LedgerOptionInvalid):
        open_ledger(tmp_path / "l.db", snapshot_every=0)


def test_damage_in_the_middle_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with open_ledger(path) as ledger:
        fill(ledger, "r", 3000, group=500)
        page = _sqlite(ledger).execute("PRAGMA page_size")[0][0]
        assert isinstance(page, int)
    size = path.stat().st_size
    assert not Path(f"{path}-wal").exists()  # checkpointed on close: the file holds it all
    middle = (size // page // 2) * page
    with path.open("r+b") as f:
        f.seek(middle)
        f.write(b"\xa5" * page)

    def load() -> None:
        with open_ledger(path) as ledger:
            ledger.verify("r")
            list(ledger.read("r"))

    with pytest.raises(LedgerError) as raised:
        load()
    assert isinstance(raised.value, ChainBroken | NotALedger)
    assert "damaged" in str(raised.value) or "not a telic ledger" in str(raised.value)


def test_a_file_without_the_snapshot_index_gets_it_when_opened_for_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    with SQLiteLedger(path, snapshot_every=4) as ledger:
        fill(ledger, "r", 10)
    raw = sqlite3.connect(path)
    plan = raw.execute(
        "EXPLAIN QUERY PLAN SELECT seq FROM snapshots WHERE rid = 1 AND seq >= 1 AND seq <= 9"
    ).fetchall()
    assert "snapshots_at" in str(plan)  # the seqs come from the index, not the states' cells
    raw.execute("DROP INDEX snapshots_at")
    raw.commit()
    raw.close()

    def indexed() -> bool:
        with contextlib.closing(sqlite3.connect(path)) as db:
            got = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        return ("snapshots_at",) in got

    with SQLiteLedger(path, readonly=True) as ledger:  # read-only: left as it is, still read
        assert ledger.last_snapshot("r") == 8
    assert not indexed()
    with SQLiteLedger(path, snapshot_every=4) as ledger:
        assert ledger.last_snapshot("r") == 8
        ledger.append("r", workload(2, start=11))
        assert ledger.last_snapshot("r") == 12
        assert ledger.verify("r").ok
    assert indexed()
