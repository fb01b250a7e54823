"""A real ``telic serve`` (a subprocess on a free loopback port) and real clients: SSE
across reconnects, other processes' runs live, and an approval that survives ``kill -9``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serve.conftest import HERE, Server, bearer, tokens
from tests.serve.parking import LAUNCH_SPEC, NAP_SPEC
from tests.serve.sse import Frame, frames

from telic.ledger import open_ledger

Serve = Callable[..., Server]


def _wait(url: str, headers: dict[str, str], pred: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 120
    body: Any = None
    while time.monotonic() < deadline:
        body = httpx.get(url, headers=headers, timeout=10).json()
        if pred(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{url} never satisfied the condition: {body}")


def _read_until(
    response: httpx.Response, stop: Callable[[Frame, list[Frame]], bool]
) -> list[Frame]:
    seen: list[Frame] = []
    for f in frames(response):
        seen.append(f)
        if stop(f, seen):
            break
    return seen


def test_an_sse_client_that_reconnects_with_last_event_id_sees_every_transition_once(
    tmp_path: Path, serve: Serve
) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, ops="operate")
    h = bearer(t["ops"])
    server = serve(db)
    started = httpx.post(
        server.url + "/runs", json={"toml": NAP_SPEC, "directory": str(HERE)}, headers=h, timeout=30
    )
    assert started.status_code == 201, started.text
    rid = started.json()["id"]
    url = f"{server.url}/runs/{rid}/events"
    ended = ("run.completed", "run.failed", "run.stopped")

    def head_reached(f: Frame, _: list[Frame]) -> bool:
        if f.event not in ended and f.event != "agent.terminated":
            return False
        info = httpx.get(f"{server.url}/runs/{rid}", headers=h, timeout=10).json()
        return (
            info["status"] in ("completed", "failed", "stopped") and int(f.id or 0) == info["head"]
        )

    with (
        httpx.Client(timeout=60) as a,
        httpx.Client(timeout=60) as b,
        b.stream("GET", url, params={"from": 1}, headers=h) as steady,
    ):
        with a.stream("GET", url, params={"from": 1}, headers=h) as first:
            part = _read_until(first, lambda f, seen: len(seen) == 25)
        # the run goes on while client A is away
        time.sleep(0.3)
        with a.stream("GET", url, headers={**h, "Last-Event-ID": part[-1].id or ""}) as second:
            rest = _read_until(second, head_reached)
        whole = _read_until(steady, head_reached)
    seqs = [int(f.id or 0) for f in part + rest]
    assert seqs == list(range(1, seqs[-1] + 1))  # every transition, exactly once
    assert [f.data["hash"] for f in part + rest] == [f.data["hash"] for f in whole]
    assert rest[-1].data["seq"] == whole[-1].data["seq"]
    with open_ledger(db) as ledger:
        assert [x.hash.hex() for x in ledger.read(rid)] == [f.data["hash"] for f in whole]
    # every stream the clients closed was noticed and let go
    deadline = time.monotonic() + 60
    while (streams := httpx.get(server.url + "/health").json()["streams"]) != 0:
        assert time.monotonic() < deadline, streams
        time.sleep(0.1)


def _append_from_another_process(db: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "telic", "demo", "--instant", "--db", db, "--out", str(cwd / "o")],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=300,
    )


def _follows_another_process(db: str, tmp_path: Path, serve: Serve, *args: str) -> None:
    t = tokens(db, reader="read")
    h = bearer(t["reader"])
    server = serve(db, *args)
    with (
        httpx.Client(timeout=120) as c,
        c.stream("GET", server.url + "/events", headers=h) as live,
    ):
        _append_from_another_process(db, tmp_path)
        got = _read_until(live, lambda f, _: f.event == "run.completed")
    runs = {f.data["run"] for f in got}
    assert len(runs) == 1
    (rid,) = runs
    seqs = [f.data["seq"] for f in got]
    assert seqs == list(range(1, seqs[-1] + 1))
    assert got[0].event == "run.booted" and (got[0].id or "").startswith(f"{rid}:1;")
    if args:  # the stream was a worker's, which followed the ledger itself
        assert httpx.get(server.url + "/health").json()["stream_workers"]["handed"] == 1


@pytest.mark.parametrize("args", [(), ("--stream-workers", "1")], ids=["in-process", "worker"])
def test_runs_written_by_another_process_on_sqlite_appear_live(
    tmp_path: Path, serve: Serve, args: tuple[str, ...]
) -> None:
    _follows_another_process(str(tmp_path / "ledger.db"), tmp_path, serve, *args)


@pytest.mark.skipif(not os.environ.get("TELIC_PG_DSN"), reason="set TELIC_PG_DSN")
@pytest.mark.parametrize("args", [(), ("--stream-workers", "1")], ids=["in-process", "worker"])
def test_runs_written_by_another_process_on_postgresql_appear_live(
    tmp_path: Path, serve: Serve, args: tuple[str, ...]
) -> None:
    import psycopg
    from psycopg import sql

    dsn = os.environ["TELIC_PG_DSN"]
    schema = f"serve_{uuid.uuid4().hex[:10]}"
    try:
        _follows_another_process(f"{dsn}?schema={schema}", tmp_path, serve, *args)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            conn.execute(drop)


def test_a_parked_approval_survives_kill_9_and_the_decision_completes_the_run(
    tmp_path: Path, serve: Serve
) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, ops="operate", reader="read", boss="approve")
    first = serve(db)
    started = httpx.post(
        first.url + "/runs",
        json={"toml": LAUNCH_SPEC, "directory": str(HERE)},
        headers=bearer(t["ops"]),
        timeout=30,
    )
    rid = started.json()["id"]
    parked = _wait(
        f"{first.url}/runs/{rid}", bearer(t["reader"]), lambda d: d["status"] == "paused"
    )
    proposal = parked["approvals"][0]["proposal"]
    first.kill()

    # the CLI sees it waiting while no server runs
    listed = subprocess.run(
        [sys.executable, "-m", "telic", "approvals", "--db", db, "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert f'"proposal": {proposal}' in listed.stdout and rid in listed.stdout

    second = serve(db)
    again = _wait(f"{second.url}/runs/{rid}", bearer(t["reader"]), lambda d: d["hosted"] is True)
    assert again["status"] == "paused" and again["approvals"][0]["proposal"] == proposal
    url = f"{second.url}/runs/{rid}/approvals/{proposal}"
    refused = httpx.post(url, json={"decision": "approve"}, headers=bearer(t["reader"]))
    assert refused.status_code == 403
    ok = httpx.post(
        url, json={"decision": "approve", "reason": "checked twice"}, headers=bearer(t["boss"])
    )
    assert ok.status_code == 200, ok.text
    done = _wait(
        f"{second.url}/runs/{rid}", bearer(t["reader"]), lambda d: d["status"] == "completed"
    )
    assert done["approvals"] == []
    second.stop()
    with open_ledger(db) as ledger:
        trail = [(x.kind, x.data) for x in ledger.read(rid)]
    granted = [d for k, d in trail if k == "approval.granted"]
    assert granted == [{"proposal": proposal, "by": "boss", "reason": "checked twice"}]
    assert [d["result"] for k, d in trail if k == "tool.completed"] == [{"launched": 7}]
    assert [k for k, _ in trail].count("run.resumed") == 1


def test_telic_resume_runs_a_fork_with_another_model_as_a_recorded_counterfactual(
    tmp_path: Path,
) -> None:
    shutil.copy(HERE / "parking.py", tmp_path / "parking.py")
    (tmp_path / "nap.toml").write_text(NAP_SPEC.replace("ticks = 40", "ticks = 40\n"))
    db = str(tmp_path / "ledger.db")

    def telic(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "telic", *args, "--db", db],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert telic("run", "nap.toml").returncode == 0
    with open_ledger(db) as ledger:
        parent = next(r.id for r in ledger.runs() if not r.id.startswith("telic-"))
    fork = telic("fork", parent, "--at", "20").stdout.strip()
    resumed = telic("resume", fork, "--model", "openai:gpt-4.1-mini")
    assert resumed.returncode == 0, resumed.stderr
    with open_ledger(db) as ledger:
        marks = [x.data for x in ledger.read(fork) if x.kind == "run.resumed"]
        assert ledger.state_at(fork)["status"] == "completed"
    assert marks[-1]["counterfactual"] == {"model": "openai:gpt-4.1-mini"}
    plain = telic("resume", parent)
    assert plain.returncode == 1 and "has ended" in plain.stderr


def test_the_server_stops_on_sigterm_with_a_stream_open(tmp_path: Path, serve: Serve) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, reader="read")
    with open_ledger(db) as ledger:
        ledger.create_run("r")
    server = serve(db)
    assert server.proc is not None
    with (
        httpx.Client(timeout=60) as c,
        c.stream("GET", server.url + "/runs/r/events", headers=bearer(t["reader"])) as r,
    ):
        assert next(r.iter_lines()) == "retry: 1000"
        t0 = time.monotonic()
        server.proc.terminate()
        server.proc.wait(30)  # an open stream does not hold the server up
        assert time.monotonic() - t0 < 20
