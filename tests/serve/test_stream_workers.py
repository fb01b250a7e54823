"""``telic serve --stream-workers N``: streams handed to worker processes (a real server in a
subprocess, real clients): every transition exactly once across a reconnect, a worker that
dies is started again and its clients see a clean end, and no worker outlives its server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serve.conftest import Server, bearer, tokens
from tests.serve.sse import Frame, frames

from telic.canonical import encode
from telic.errors import ConfigError
from telic.ledger import open_ledger
from telic.serve.workers import StreamWorkers
from telic.transition import Draft

Serve = Callable[..., Server]


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for init to reap it is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _until(what: str, pred: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + 60
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def _append(db: str, run: str, n: int) -> None:
    with open_ledger(db) as ledger:
        head = ledger.run(run).head
        drafts = [
            Draft(
                "memory.updated", encode({"agent": "w", "key": "k", "value": head + i}), 0, 1, "w"
            )
            for i in range(n)
        ]
        ledger.append(run, drafts, expected=head + 1)


def _take(it: Iterator[Frame], n: int) -> list[Frame]:
    got: list[Frame] = []
    for f in it:
        if f.id is not None:
            got.append(f)
            if len(got) == n:
                break
    return got


def _health(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(server.url + "/health", timeout=10).json()
    return body


def test_a_stream_served_by_a_worker_sees_every_transition_once_across_a_reconnect(
    tmp_path: Path, serve: Serve
) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, reader="read")
    h = bearer(t["reader"])
    with open_ledger(db) as ledger:
        ledger.create_run("r")
    _append(db, "r", 30)  # history to catch up on
    server = serve(db, "--stream-workers", "2")
    url = server.url + "/runs/r/events"
    with httpx.Client(timeout=60) as c:
        with c.stream("GET", url, params={"from": 1}, headers=h) as first:
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("text/event-stream")
            it = frames(first)
            part = _take(it, 20)
            _append(db, "r", 30)  # live, from another process, while the client reads
            part += _take(it, 20)
        _append(db, "r", 30)  # while it is away
        resume = {**h, "Last-Event-ID": part[-1].id or ""}
        with c.stream("GET", url, params={"from": 1}, headers=resume) as second:
            rest = _take(frames(second), 90 - len(part))
    seqs = [int(f.id or 0) for f in part + rest]
    assert seqs == list(range(1, 91))  # every transition, exactly once, in order
    with open_ledger(db) as ledger:
        assert [x.hash.hex() for x in ledger.read("r")] == [f.data["hash"] for f in part + rest]
    workers = _health(server)["stream_workers"]
    assert workers["handed"] == 2 and len(workers["pids"]) == 2  # neither served in-process
    # a bad request is still answered by the server itself, as a 4xx
    assert httpx.get(server.url + "/runs/nope/events", headers=h).status_code == 404
    assert httpx.get(url, headers={"Authorization": "Bearer telic_wrong"}).status_code == 401


def test_a_live_stream_handed_to_a_worker_starts_at_the_servers_head(
    tmp_path: Path, serve: Serve
) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, reader="read")
    with open_ledger(db) as ledger:
        ledger.create_run("r")
    _append(db, "r", 10)
    server = serve(db, "--stream-workers", "1")
    with (
        httpx.Client(timeout=60) as c,
        c.stream("GET", server.url + "/runs/r/events", headers=bearer(t["reader"])) as live,
    ):
        it = frames(live)
        _append(db, "r", 5)
        got = _take(it, 5)
    assert [int(f.id or 0) for f in got] == [11, 12, 13, 14, 15]


def test_every_runs_stream_is_served_by_a_worker_and_resumes_with_its_cursor(
    tmp_path: Path, serve: Serve
) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, reader="read")
    h = bearer(t["reader"])
    with open_ledger(db) as ledger:
        ledger.create_run("a")
        ledger.create_run("b")
    server = serve(db, "--stream-workers", "1")
    with httpx.Client(timeout=60) as c:
        with c.stream("GET", server.url + "/events", headers=h) as live:
            it = frames(live)
            _append(db, "a", 5)
            _append(db, "b", 5)
            part = _take(it, 7)
        _append(db, "a", 5)
        with c.stream(
            "GET", server.url + "/events", headers={**h, "Last-Event-ID": part[-1].id or ""}
        ) as again:
            rest = _take(frames(again), 8)
    got = [(f.data["run"], f.data["seq"]) for f in part + rest]
    assert sorted(got) == [("a", s) for s in range(1, 11)] + [("b", s) for s in range(1, 6)]
    assert _health(server)["stream_workers"]["handed"] == 2


def test_a_worker_that_dies_is_restarted_and_its_clients_see_a_clean_end(
    tmp_path: Path, serve: Serve
) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, reader="read")
    h = bearer(t["reader"])
    with open_ledger(db) as ledger:
        ledger.create_run("r")
    _append(db, "r", 10)
    server = serve(db, "--stream-workers", "1")
    url = server.url + "/runs/r/events"
    with httpx.Client(timeout=60) as c:
        with c.stream("GET", url, params={"from": 1}, headers=h) as first:
            it = frames(first)
            part = _take(it, 10)
            (pid,) = _health(server)["stream_workers"]["pids"]
            os.kill(pid, 9)
            assert list(it) == []  # the stream ends: no error, nothing more
        restarted = _until(
            "the worker is started again",
            lambda: (
                (w := _health(server)["stream_workers"])["restarts"] == 1
                and len(w["pids"]) == 1
                and w["pids"]
            ),
        )
        assert restarted != [pid]
        _append(db, "r", 10)
        with c.stream("GET", url, headers={**h, "Last-Event-ID": part[-1].id or ""}) as second:
            rest = _take(frames(second), 10)
    assert [int(f.id or 0) for f in part + rest] == list(range(1, 21))
    assert _health(server)["stream_workers"]["handed"] == 2


def test_killing_the_server_leaves_no_worker_behind(tmp_path: Path, serve: Serve) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, reader="read")
    with open_ledger(db) as ledger:
        ledger.create_run("r")
    server = serve(db, "--stream-workers", "2")
    pids = _health(server)["stream_workers"]["pids"]
    assert len(pids) == 2 and all(_running(p) for p in pids)
    with (
        httpx.Client(timeout=60) as c,
        c.stream("GET", server.url + "/runs/r/events", headers=bearer(t["reader"])) as r,
    ):
        lines = r.iter_lines()
        assert next(lines) == "retry: 1000"
        server.kill()  # kill -9: no chance to stop its workers
        _until("every worker has exited", lambda: not any(_running(p) for p in pids))
        assert [line for line in lines if line] == []  # the client's stream ended with them


def test_sigterm_stops_the_server_and_its_workers_with_a_stream_open(
    tmp_path: Path, serve: Serve
) -> None:
    db = str(tmp_path / "ledger.db")
    t = tokens(db, reader="read")
    with open_ledger(db) as ledger:
        ledger.create_run("r")
    server = serve(db, "--stream-workers", "1")
    assert server.proc is not None
    pids = _health(server)["stream_workers"]["pids"]
    with (
        httpx.Client(timeout=60) as c,
        c.stream("GET", server.url + "/runs/r/events", headers=bearer(t["reader"])) as r,
    ):
        lines = r.iter_lines()
        assert next(lines) == "retry: 1000"
        server.proc.terminate()
        server.proc.wait(30)  # it stops (uvicorn ends by re-raising the SIGTERM)
        assert [line for line in lines if line] == []
    assert not any(_running(p) for p in pids)  # stopped before the server returned


def test_stream_workers_need_a_ledger_other_processes_can_follow(tmp_path: Path) -> None:
    with open_ledger("memory://") as ledger, pytest.raises(ConfigError, match="in-memory"):
        StreamWorkers.check(ledger, 1)
    run = subprocess.run(
        [sys.executable, "-m", "telic", "serve", "--db", "memory://", "--stream-workers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode != 0
    assert "--stream-workers" in run.stderr and "Traceback" not in run.stderr
