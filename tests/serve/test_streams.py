"""Streams under failure, on a real uvicorn in a thread of the test and raw sockets: an idle
stream's heartbeats; a stuck client dropped with a final event while a healthy one and the
writer go on, then resuming with ``Last-Event-ID`` with no gap and no duplicate; ``GET
/events`` resumed mid-stream across two runs; a slow ledger read that does not stall a
heartbeat."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from tests.serve.conftest import bearer, free_port, tokens

from telic.kinds import MemoryUpdated
from telic.ledger import open_ledger
from telic.serve import Settings, create_app
from telic.transition import draft


@contextlib.contextmanager
def serving(db: Path, **settings: Any) -> Generator[tuple[str, Any]]:
    """``create_app`` under a real uvicorn on a free loopback port, in a thread."""
    cfg = Settings(spec_dir=db.parent / "specs", poll_s=0.02, resume_hosted=False, **settings)
    app = create_app(str(db), settings=cfg)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="uvicorn")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)


def append(db: Path, run: str, n: int, size: int = 16) -> None:
    """Another writer (its own connection): ``n`` memory updates in groups of 50."""
    with open_ledger(str(db)) as ledger:
        head = ledger.run(run).head
        for start in range(0, n, 50):
            group = [
                draft(MemoryUpdated(agent="w", key=f"k{i % 7}", value="x" * size), ts=1, tick=1)
                for i in range(start, min(n, start + 50))
            ]
            ledger.append(run, group, expected=head + 1)  # type: ignore[arg-type]
            head += len(group)


class RawClient:
    """An SSE client on a plain socket, which may stop reading (a tiny receive buffer)."""

    def __init__(self, url: str, path: str, token: str, last_id: str | None = None) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        self.sock.settimeout(60)
        extra = "" if last_id is None else f"Last-Event-ID: {last_id}\r\n"
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}\r\n".encode()
        )
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n", 1)[0], head

    def _until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            more = self.sock.recv(65536)
            if not more:
                raise EOFError("the server closed the stream")
            self.buf += more
        out, self.buf = self.buf.split(sep, 1)
        return out

    def frames(self) -> Iterator[tuple[str | None, str, Any]]:
        """(id, event, data) of each event; chunked transfer framing is stripped."""
        body = b""
        while True:
            size = int(self._until(b"\r\n"), 16)
            if size == 0:
                return
            while len(self.buf) < size + 2:
                more = self.sock.recv(65536)
                if not more:
                    raise EOFError("the server closed the stream mid-chunk")
                self.buf += more
            body += self.buf[:size]
            self.buf = self.buf[size + 2 :]
            while b"\n\n" in body:
                raw, body = body.split(b"\n\n", 1)
                fields: dict[str, str] = {}
                for line in raw.decode().split("\n"):
                    if line.startswith(":") or not line:
                        continue
                    name, _, value = line.partition(": ")
                    fields[name] = value
                if "data" in fields:
                    yield fields.get("id"), fields.get("event", ""), json.loads(fields["data"])

    def close(self) -> None:
        self.sock.close()


def test_an_idle_stream_sends_heartbeats(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    t = tokens(db, reader="read")
    with open_ledger(str(db)) as ledger:
        ledger.create_run("r")
    with (
        serving(db, heartbeat_s=0.1) as (url, _),
        httpx.Client(timeout=10) as c,
        c.stream("GET", url + "/runs/r/events", headers=bearer(t["reader"])) as r,
    ):
        lines = r.iter_lines()
        assert next(lines) == "retry: 1000"
        assert next(lines) == ""
        assert next(lines) == ": heartbeat"


def test_a_stuck_client_is_dropped_with_a_final_event_and_resumes_with_no_gap(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    t = tokens(db, reader="read")
    with open_ledger(str(db)) as ledger:
        ledger.create_run("r")
    total = 8000
    with serving(db, stream_queue=1024) as (url, _):
        stuck = RawClient(url, "/runs/r/events?from=1", t["reader"])
        healthy: list[int] = []

        def follow() -> None:
            with (
                httpx.Client(timeout=60) as c,
                c.stream("GET", url + "/runs/r/events?from=1", headers=bearer(t["reader"])) as r,
            ):
                for line in r.iter_lines():
                    if line.startswith("event: stream.dropped"):
                        raise AssertionError("the healthy client was dropped")
                    if line.startswith("id: "):
                        healthy.append(int(line[4:]))
                        if healthy[-1] == total:
                            return

        reader = threading.Thread(target=follow)
        reader.start()
        t0 = time.monotonic()
        append(db, "r", total, size=2000)  # ~12 MB: far more than the stuck socket holds
        written = time.monotonic() - t0
        reader.join(120)
        assert healthy == list(range(1, total + 1)), "the healthy client missed or repeated"

        # now the stuck client reads: what was written to it, in order, then the final event
        seen: list[int] = []
        last: Any = None
        for id_, event, data in stuck.frames():
            if event == "stream.dropped":
                last = data
                break
            assert id_ is not None
            seen.append(int(id_))
        stuck.close()
        assert last is not None, "the stuck client was never dropped"
        assert "behind" in last["reason"] and seen
        assert seen == list(range(1, len(seen) + 1)) and len(seen) < total
        assert last["last_event_id"] == str(seen[-1])

        # it reconnects to the same address (as EventSource does, ?from= and all) with
        # Last-Event-ID, and catches up from the ledger after that id: nothing lost or repeated
        again = RawClient(url, "/runs/r/events?from=1", t["reader"], last_id=last["last_event_id"])
        for id_, event, _ in again.frames():
            assert event != "stream.dropped"
            seen.append(int(id_ or 0))
            if seen[-1] == total:
                break
        again.close()
        assert seen == list(range(1, total + 1))
    assert written < 60  # the writer never waited on the stuck client


def test_every_runs_stream_resumes_across_runs_with_no_gap_and_no_duplicate(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    t = tokens(db, reader="read")
    with open_ledger(str(db)) as ledger:
        ledger.create_run("a")
        ledger.create_run("b")
        heads = {"a": 0, "b": 0}
    append(db, "a", 30)  # history before the stream: not part of it
    heads["a"] = 30
    with serving(db) as (url, _):
        first = RawClient(url, "/events", t["reader"])
        append(db, "a", 100)
        append(db, "b", 100)
        got: list[tuple[str, int]] = []
        last_id = None
        for id_, _, data in first.frames():
            got.append((data["run"], data["seq"]))
            last_id = id_
            if len(got) == 60:
                break
        first.close()
        # while it is away, both runs go on, and a third run is made
        append(db, "a", 70)
        append(db, "b", 70)
        with open_ledger(str(db)) as ledger:
            ledger.create_run("c")
        append(db, "c", 40)
        again = RawClient(url, "/events", t["reader"], last_id=last_id)
        for _, _, data in again.frames():
            got.append((data["run"], data["seq"]))
            if len(got) == 200 + 140 + 40:
                break
        again.close()
        bad = httpx.get(url + "/events", headers={**bearer(t["reader"]), "Last-Event-ID": "a:3"})
        assert bad.status_code == 400 and "GET /events" in bad.json()["detail"]
    for run_id, lo, hi in (("a", 31, 200), ("b", 1, 170), ("c", 1, 40)):
        assert [s for r, s in got if r == run_id] == list(range(lo, hi + 1)), run_id
    assert len(got) == len(set(got))


def test_a_slow_ledger_read_does_not_stall_a_heartbeat(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    t = tokens(db, reader="read")
    with open_ledger(str(db)) as ledger:
        ledger.create_run("r")
    with serving(db, heartbeat_s=0.05) as (url, app):
        ledger = app.state.telic.ledger
        original = ledger.state_at

        def slow_state_at(*args: Any, **kwargs: Any) -> Any:
            time.sleep(1.5)  # a read that takes long (a huge fold, a locked file)
            return original(*args, **kwargs)

        ledger.state_at = slow_state_at
        beats: list[float] = []

        def listen() -> None:
            with (
                httpx.Client(timeout=10) as c,
                c.stream("GET", url + "/runs/r/events", headers=bearer(t["reader"])) as r,
            ):
                for line in r.iter_lines():
                    if line == ": heartbeat":
                        beats.append(time.monotonic())
                        if len(beats) >= 40:
                            return

        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        slow = httpx.get(url + "/runs/r/state", headers=bearer(t["reader"]), timeout=10)
        t1 = time.monotonic()
        listener.join(30)
        ledger.state_at = original
    assert slow.status_code == 200 and t1 - t0 >= 1.5
    during = [b for b in beats if t0 <= b <= t1]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) >= 5 and max(gaps) < 0.75, gaps  # the loop kept beating meanwhile
