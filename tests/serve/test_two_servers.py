"""Two ``telic serve`` processes on one ledger never drive the same run; when one is killed,
the other takes its runs over once their leases expire (a failover), and each run goes on
once, from what the ledger holds."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serve.conftest import HERE, Server, bearer, tokens
from tests.serve.parking import SLOW_NAP_SPEC

from telic.ledger import open_ledger

Serve = Callable[..., Server]
TTL = "2"


def _get(server: Server, path: str, headers: dict[str, str]) -> Any:
    return httpx.get(server.url + path, headers=headers, timeout=30).json()


def _wait(pred: Callable[[], Any], what: str, limit: float = 120) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"never: {what}")


def _failover(db: str, serve: Serve, finish: Path) -> None:
    t = tokens(db, ops="operate", reader="read")
    h = bearer(t["reader"])
    first = serve(db, "--lease-ttl", TTL)
    started = httpx.post(
        first.url + "/runs",
        json={"toml": SLOW_NAP_SPEC, "directory": str(HERE)},
        headers=bearer(t["ops"]),
        timeout=30,
    )
    assert started.status_code == 201, started.text
    rid = started.json()["id"]
    second = serve(db, "--lease-ttl", TTL)
    # The second server sees the run but leaves it to its owner, however long it looks.
    for _ in range(3):
        time.sleep(1)
        run = _get(second, f"/runs/{rid}", h)
        assert run["hosted"] is False and run["status"] == "running", run
    with open_ledger(db) as ledger:
        lease = ledger.leases.get(rid)
        assert lease is not None and lease.epoch == 1 and not lease.released
        before = ledger.run(rid).head
        assert [t.kind for t in ledger.read(rid)].count("run.resumed") == 0
        prefix = [(t.seq, t.hash) for t in ledger.read(rid)]
    first.kill()
    _wait(lambda: _get(second, f"/runs/{rid}", h)["hosted"], "the second server takes over")
    finish.touch()
    done = _wait(
        lambda: (r := _get(second, f"/runs/{rid}", h))["status"] == "completed" and r,
        "the run completes on the second server",
    )
    assert done["status"] == "completed"
    second.stop()  # graceful: releases what it holds
    with open_ledger(db) as ledger:
        assert ledger.verify(rid).ok
        trail = list(ledger.read(rid))
        assert [t.seq for t in trail] == list(range(1, len(trail) + 1))
        assert [(t.seq, t.hash) for t in trail[: len(prefix)]] == prefix  # nothing lost
        resumed = [t for t in trail if t.kind == "run.resumed"]
        assert len(resumed) == 1 and resumed[0].seq > before
        assert "taken over: the lease of" in resumed[0].data["reason"]
        lease = ledger.leases.get(rid)
        assert lease is not None and lease.epoch == 2 and lease.released


@pytest.fixture
def finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file whose existence tells the run's mind to finish (the servers inherit it)."""
    path = tmp_path / "finish-now"
    monkeypatch.setenv("TELIC_TEST_FINISH", str(path))
    return path


def test_two_servers_on_a_sqlite_ledger_fail_over(
    tmp_path: Path, serve: Serve, finish: Path
) -> None:
    _failover(str(tmp_path / "ledger.db"), serve, finish)


@pytest.mark.skipif(not os.environ.get("TELIC_PG_DSN"), reason="set TELIC_PG_DSN")
def test_two_servers_on_a_postgresql_ledger_fail_over(serve: Serve, finish: Path) -> None:
    import uuid

    import psycopg
    from psycopg import sql

    dsn = os.environ["TELIC_PG_DSN"]
    schema = f"telic_srv_{uuid.uuid4().hex[:10]}"
    try:
        _failover(f"{dsn}?schema={schema}", serve, finish)
    finally:
        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
