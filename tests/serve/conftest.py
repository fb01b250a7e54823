"""Fixtures for the server: the app in-process through httpx, and a real ``telic serve`` on a
free loopback port (a subprocess, which tests may ``kill -9``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from telic.access import TokenStore
from telic.ledger import open_ledger
from telic.serve import Settings, create_app

HERE = Path(__file__).parent


def tokens(db: Path | str, **scopes: str) -> dict[str, str]:
    """Create one token per ``name=scope`` in the ledger; returns name -> token."""
    with open_ledger(db) as ledger:
        store = TokenStore(ledger)
        return {name: store.create(name, scope.split(","))[0] for name, scope in scopes.items()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def in_process(
    db: Path | str, body: Callable[[httpx.AsyncClient], Awaitable[None]], **settings: object
) -> None:
    """Run ``body`` against the app (lifespan included) through httpx's ASGI transport."""

    async def main() -> None:
        cfg = Settings(spec_dir=Path(str(db)).parent / "specs", **settings)  # type: ignore[arg-type]
        app = create_app(str(db), settings=cfg)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://telic.test"
            ) as client,
        ):
            await body(client)

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``telic serve`` in a subprocess; ``kill()`` is ``kill -9``."""

    def __init__(self, db: str, cwd: Path, args: tuple[str, ...] = ()) -> None:
        self.db = db
        self.cwd = cwd
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
        log = self.cwd / f"serve-{self.port}.log"
        with log.open("wb") as sink:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "telic",
                    "serve",
                    "--db",
                    self.db,
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                cwd=self.cwd,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = log.read_text(errors="replace")
                raise AssertionError(f"telic serve exited {self.proc.returncode}: {out}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("telic serve did not answer /health within 60 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(db: str, *args: str) -> Server:
        server = Server(db, tmp_path, args).start()
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()
