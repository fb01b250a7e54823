"""The shared ledger suite against PostgreSQL (needs ``TELIC_PG_DSN``), plus server errors."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from telic.errors import LedgerUnavailable, NotALedger
from telic.ledger import BaseLedger, Row, open_ledger

from .suite import LedgerSuite, fill

DSN = os.environ.get("TELIC_PG_DSN", "")
pytestmark = pytest.mark.skipif(
    not DSN,
    reason="set TELIC_PG_DSN (e.g. postgresql://postgres@127.0.0.1:5432/test) to run the "
    "PostgreSQL ledger tests",
)

# Imported only when the tests run (the module is collected without the postgres extra);
# always for the type checker.
if TYPE_CHECKING or DSN:
    import psycopg
    from psycopg import sql

    from telic.ledger.postgres import PostgresLedger


def _pg(ledger: BaseLedger) -> PostgresLedger:
    assert isinstance(ledger, PostgresLedger)
    return ledger


@contextlib.contextmanager
def _schema() -> Iterator[str]:
    name = f"telic_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        with psycopg.connect(DSN, autocommit=True) as db:
            db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


class TestPostgresLedger(LedgerSuite):
    @contextlib.contextmanager
    def fresh(self, **options: Any) -> Iterator[BaseLedger]:
        with _schema() as name, PostgresLedger(DSN, schema=name, **options) as ledger:
            yield ledger

    def second(self, ledger: BaseLedger) -> BaseLedger:
        first = _pg(ledger)
        return PostgresLedger(
            DSN,
            schema=first.schema,
            snapshot_every=first.snapshot_every,
            snapshot_bytes=first.snapshots.min_bytes,
            snapshot_percent=first.snapshots.percent,
        )

    def stored_rows(self, ledger: BaseLedger, run: str) -> list[Row]:
        db = _pg(ledger)
        got = db.execute(
            "SELECT seq, tick, agent, kind, causes, ts, v, payload, hash FROM transitions "
            "WHERE rid = %s ORDER BY seq",
            (db.rid(run),),
        )
        return [
            Row(s, t, a, k, tuple(c or ()), ts, v, bytes(p), bytes(h))
            for s, t, a, k, c, ts, v, p, h in got
        ]

    def store_rows(self, ledger: BaseLedger, run: str, rows: list[Row]) -> None:
        db = _pg(ledger)
        rid = db.rid(run)
        db.execute("BEGIN")
        db.execute("DELETE FROM transitions WHERE rid = %s", (rid,))
        for r in rows:
            db.execute(
                "INSERT INTO transitions VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    rid,
                    r.seq,
                    r.tick,
                    r.agent,
                    r.kind,
                    list(r.causes) or None,
                    r.ts,
                    r.v,
                    r.payload,
                    r.hash,
                ),
            )
        db.execute("COMMIT")

    def tamper_blob(self, ledger: BaseLedger, blob_id: str, data: bytes) -> None:
        _pg(ledger).execute("UPDATE blobs SET data = %s WHERE id = %s", (data, blob_id))

    def age(self, ledger: BaseLedger, seconds: float) -> None:
        d = round(seconds * 1e6)
        _pg(ledger).execute(
            "UPDATE leases SET acquired_us = acquired_us - %s, renewed_us = renewed_us - %s, "
            "expires_us = expires_us - %s",
            (d, d, d),
        )

    def tamper_snapshot(self, ledger: BaseLedger, run: str, seq: int, **fields: Any) -> None:
        db = _pg(ledger)
        for name, value in fields.items():
            db.execute(
                f"UPDATE snapshots SET {name} = %s WHERE rid = %s AND seq = %s",
                (value, db.rid(run), seq),
            )


def test_open_ledger_routes_postgres_urls_with_a_schema() -> None:
    with _schema() as name:
        url = DSN.replace("postgresql://", "postgres://", 1) + f"?schema={name}&snapshot_every=3"
        with open_ledger(url) as ledger:
            pg = _pg(ledger)
            assert (pg.schema, pg.snapshot_every) == (name, 3)
            fill(ledger, "r", 5)
        with open_ledger(f"{DSN}?schema={name}") as ledger:
            assert ledger.run("r").head == 5
            assert ledger.verify("r").ok


def test_an_unreachable_server() -> None:
    with pytest.raises(LedgerUnavailable, match="cannot open ledger at postgresql://"):
        PostgresLedger("postgresql://postgres@127.0.0.1:1/test")


def test_a_missing_database() -> None:
    base = DSN.rsplit("/", 1)[0]
    with pytest.raises(LedgerUnavailable, match="telic_no_such_db"):
        PostgresLedger(f"{base}/telic_no_such_db")


def test_a_schema_with_foreign_tables_is_not_a_ledger() -> None:
    with _schema() as name:
        with psycopg.connect(DSN, autocommit=True) as db:
            db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
            db.execute(sql.SQL("CREATE TABLE {}.runs (x int)").format(sql.Identifier(name)))
        with pytest.raises(NotALedger, match="no telic_meta table"):
            PostgresLedger(DSN, schema=name)


def test_a_password_is_not_repeated_in_messages() -> None:
    with pytest.raises(LedgerUnavailable) as raised:
        PostgresLedger("postgresql://postgres:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(raised.value)


def test_a_lost_connection_is_ledger_unavailable() -> None:
    with _schema() as name, PostgresLedger(DSN, schema=name) as ledger:
        fill(ledger, "r", 3)
        (pid,) = ledger.execute("SELECT pg_backend_pid()")[0]
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(LedgerUnavailable, match="cannot open ledger at postgresql://"):
            ledger.run("r")


def test_append_groups_in_one_transaction_refuses_each_group_alone() -> None:
    from telic.canonical import encode
    from telic.errors import RunExists, SequenceConflict
    from telic.ledger import AppendGroup
    from telic.transition import Draft

    def tick(n: int) -> list[Draft]:
        return [
            Draft("tick.started", encode({"tick": n}), n, n),
            Draft("memory.updated", encode({"agent": "a", "key": "k", "value": n}), n, n, "a"),
        ]

    with _schema() as name, PostgresLedger(DSN, schema=name) as ledger:
        ledger.create_run("ok")
        ledger.create_run("stale")
        ledger.create_run("taken")
        ledger.append("stale", tick(1))
        ok, stale, taken, new = ledger.append_groups(
            [
                AppendGroup("ok", tick(1), expected=1),
                AppendGroup("stale", tick(2), expected=1),
                AppendGroup("taken", tick(1), create=True),
                AppendGroup("new", tick(1), create=True),
            ]
        )
        assert isinstance(ok, list) and [t.seq for t in ok] == [1, 2]
        assert isinstance(stale, SequenceConflict)
        assert isinstance(taken, RunExists)
        assert isinstance(new, list) and new[0].run == "new"
        assert [ledger.run(r).head for r in ("ok", "stale", "taken", "new")] == [2, 2, 0, 2]
        for r in ("ok", "stale", "new"):
            assert ledger.verify(r).ok
        assert ledger.append_groups([AppendGroup("new", tick(2), expected=3)])[0][0].seq == 3  # type: ignore[index]


def _ticks(n: int) -> list[Any]:
    from telic.canonical import encode
    from telic.transition import Draft

    return [
        Draft("tick.started", encode({"tick": n}), n, n),
        Draft("memory.updated", encode({"agent": "a", "key": "k", "value": n}), n, n, "a"),
    ]


def test_append_groups_of_many_runs_go_over_several_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from telic.errors import Fenced, LedgerOptionInvalid
    from telic.ledger import AppendGroup

    monkeypatch.setattr("telic.ledger.postgres.MIN_SHARE", 1)
    with _schema() as name, PostgresLedger(DSN, schema=name, connections=4) as ledger:
        runs = [f"r{i}" for i in range(10)]
        for r in runs:
            ledger.create_run(r)
        for n in range(3):
            answers = ledger.append_groups(
                [AppendGroup(r, _ticks(n), expected=2 * n + 1) for r in runs]
            )
            assert all(isinstance(a, list) and a[-1].seq == 2 * n + 2 for a in answers)
        assert len(ledger._writers) == 3  # pyright: ignore[reportPrivateUsage]
        assert all(ledger.run(r).head == 6 and ledger.verify(r).ok for r in runs)
        # A lease taken over by another holder fences its run on whichever connection.
        lease = ledger.leases.acquire("r7", "me", ttl_s=60)
        ledger.fence(lease)
        ledger.leases.release(lease)
        ledger.leases.acquire("r7", "other", ttl_s=60)
        answers = ledger.append_groups([AppendGroup(r, _ticks(3), expected=7) for r in runs])
        assert isinstance(answers[7], Fenced)
        assert [isinstance(a, list) for a in answers].count(True) == 9
        # A connection lost refuses the groups written on it, not the others'; the next
        # write opens it again.
        pid = ledger._writers[0].info.backend_pid  # pyright: ignore[reportPrivateUsage]
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        answers = ledger.append_groups(
            [AppendGroup(r, _ticks(4), expected=9) for r in runs if r != "r7"]
        )
        lost = [a for a in answers if isinstance(a, LedgerUnavailable)]
        assert 0 < len(lost) < len(answers)
        assert all(isinstance(a, (list, LedgerUnavailable)) for a in answers)
        heads = [ledger.run(r).head for r in runs if r != "r7"]
        assert sorted(heads) == sorted(
            8 if isinstance(a, LedgerUnavailable) else 10 for a in answers
        )
        answers = ledger.append_groups(
            [
                AppendGroup(r, _ticks(5), expected=h + 1)
                for r, h in zip([r for r in runs if r != "r7"], heads, strict=True)
            ]
        )
        assert all(isinstance(a, list) for a in answers)
        assert all(ledger.verify(r).ok for r in runs)
    with pytest.raises(LedgerOptionInvalid):
        PostgresLedger(DSN, connections=0)
    with _schema() as name, open_ledger(f"{DSN}?schema={name}&connections=1") as one:
        assert _pg(one).connections == 1


def test_a_share_written_together_refuses_each_group_alone() -> None:
    """A share without creations goes in five statements (no savepoint a group): a stale or
    fenced group writes nothing, and rows already stored under a key send the share group by
    group, refusing only the group they belong to."""
    from telic.errors import Fenced, SequenceConflict
    from telic.ledger import AppendGroup

    with _schema() as name, PostgresLedger(DSN, schema=name, connections=1) as ledger:
        for r in ("ok", "stale", "leased", "damaged"):
            ledger.create_run(r)
        ledger.append("stale", _ticks(0))
        ledger.leases.acquire("leased", "someone", ttl_s=3600)
        seen: list[str] = []
        real = ledger._store  # pyright: ignore[reportPrivateUsage]

        def store(*args: Any) -> Any:
            seen.append("one by one")
            return real(*args)

        ledger._store = store  # type: ignore[method-assign]  # pyright: ignore[reportPrivateUsage]
        ok, stale, leased = ledger.append_groups(
            [
                AppendGroup("ok", _ticks(1), expected=1),
                AppendGroup("stale", _ticks(1), expected=1),
                AppendGroup("leased", _ticks(1), expected=1),
            ]
        )
        assert seen == []  # written together
        assert isinstance(ok, list) and [t.seq for t in ok] == [1, 2]
        assert isinstance(stale, SequenceConflict)
        assert isinstance(leased, Fenced)
        assert [ledger.run(r).head for r in ("ok", "stale", "leased")] == [2, 2, 0]
        # a row stored beyond the damaged run's head (a writer that did not move it)
        rid = ledger.rid("damaged")
        ledger.execute(
            "INSERT INTO transitions VALUES (%s, 2, 0, NULL, 'tick.started', NULL, 1, 1, "
            "'\\x7b7d'::bytea, %s)",
            (rid, bytes(32)),
        )
        ok, damaged = ledger.append_groups(
            [
                AppendGroup("ok", _ticks(2), expected=3),
                AppendGroup("damaged", _ticks(2), expected=1),
            ]
        )
        assert seen == ["one by one", "one by one"]
        assert isinstance(ok, list) and ok[0].seq == 3
        assert isinstance(damaged, SequenceConflict)
        assert [ledger.run(r).head for r in ("ok", "damaged")] == [4, 0]
        assert ledger.verify("ok").ok and ledger.verify("stale").ok


def test_a_connection_more_takes_at_least_min_share_groups() -> None:
    """A share is written in five statements whatever its size: 100 groups go over two
    connections, not eight, and 49 over one."""
    from telic.ledger import AppendGroup
    from telic.ledger.postgres import MIN_SHARE

    assert MIN_SHARE == 50
    with _schema() as name, PostgresLedger(DSN, schema=name, connections=8) as ledger:
        runs = [f"r{i}" for i in range(100)]
        for r in runs:
            ledger.create_run(r)
        answers = ledger.append_groups([AppendGroup(r, _ticks(0), expected=1) for r in runs[:49]])
        assert all(isinstance(a, list) for a in answers)
        assert ledger._writers == []  # pyright: ignore[reportPrivateUsage]
        answers = ledger.append_groups(
            [AppendGroup(r, _ticks(1), expected=3 if i < 49 else 1) for i, r in enumerate(runs)]
        )
        assert all(isinstance(a, list) for a in answers)
        assert len(ledger._writers) == 1  # pyright: ignore[reportPrivateUsage]
        assert all(ledger.verify(r).ok for r in runs)
