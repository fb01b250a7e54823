"""Stream workers: processes that serve a server's SSE streams, so that the kernel's process
only commits.

``telic serve --stream-workers N`` starts N worker processes (``python -m
telic.serve.streamer``). Each follows the ledger exactly as another server would (it tails a
SQLite file, or ``LISTEN``\\s on PostgreSQL) into channels of its own
(:mod:`telic.serve.fanout`). A stream request is still answered by the server's process up to
the point where it is known to be good (token and scope, the run, the seq, the pattern): then
the connection's socket is sent to a worker (``SCM_RIGHTS`` over a Unix socket pair, with the
checked request as JSON, :class:`~telic.serve.routes.streams.StreamRequest`), the server
closes its own descriptor and forgets the client. The worker writes the response head and the
stream, catch-up and live, with the same code the server would run.

Ownership, failure and shutdown:

- The server owns its workers. A worker that dies is started again (after
  ``restart_delay_s`` if it had lived less than that); the streams it served end (their
  clients see the connection close and reconnect with ``Last-Event-ID``, losing nothing).
- A worker ends when its end of the socket pair reads end-of-file: when the server closes it
  on shutdown, and when the server's process dies, even by ``kill -9`` (the kernel closes its
  descriptors), so no worker outlives its server. SIGINT is the server's to handle.
- If no worker can take a stream now (all restarting, or a full socket buffer), the server
  serves it itself: a stream is never refused for want of a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass
from typing import Final

import orjson

from telic.errors import ConfigError
from telic.ledger.base import BaseLedger
from telic.ledger.memory import MemoryLedger
from telic.serve.context import Settings

__all__ = ["StreamWorkers", "WorkerConfig"]

log = logging.getLogger(__name__)

_STOP_S: Final = 5.0
"""How long a worker has to exit once told to, before it is killed."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker is told when it starts (the first message on its socket pair, so that a
    ledger URL's password never shows in a process list)."""

    url: str
    heartbeat_s: float
    stream_queue: int
    stream_coalesce_s: float
    poll_s: float
    read_threads: int
    nice: int

    @classmethod
    def of(cls, url: str, cfg: Settings) -> WorkerConfig:
        return cls(
            url,
            cfg.heartbeat_s,
            cfg.stream_queue,
            cfg.stream_coalesce_s,
            cfg.stream_poll_s,
            cfg.read_threads,
            cfg.stream_worker_nice,
        )

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> WorkerConfig:
        return cls(**orjson.loads(raw))

    def settings(self) -> Settings:
        return Settings(
            heartbeat_s=self.heartbeat_s,
            stream_queue=self.stream_queue,
            stream_coalesce_s=self.stream_coalesce_s,
            read_threads=self.read_threads,
        )


class _Worker:
    """One worker process and the server's end of its socket pair."""

    def __init__(self, proc: asyncio.subprocess.Process, control: socket.socket) -> None:
        self.proc = proc
        self.control = control
        self.started = time.monotonic()


class StreamWorkers:
    """The server's stream workers: started with :meth:`running`, handed streams with
    :meth:`hand`."""

    def __init__(self, config: WorkerConfig, count: int, *, restart_delay_s: float = 1.0) -> None:
        self.config = config
        self.count = count
        self.restart_delay_s = restart_delay_s
        self._workers: list[_Worker | None] = [None] * count
        self._next = 0
        self.handed = 0
        """Streams handed to a worker so far."""
        self.restarts = 0
        """Workers started again after they died."""

    @classmethod
    def check(cls, ledger: BaseLedger, count: int) -> None:
        """:class:`ConfigError` unless ``ledger`` can be followed from other processes."""
        if count < 0:
            raise ConfigError(f"stream workers must be 0 or more, not {count}")
        if count and isinstance(ledger, MemoryLedger):
            raise ConfigError(
                "stream workers follow the ledger from their own processes: an in-memory "
                "ledger cannot be followed (use a SQLite file or PostgreSQL, or no workers)"
            )

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids."""
        return [w.proc.pid for w in self._workers if w is not None]

    def health(self) -> dict[str, int | list[int]]:
        """What ``/health`` says of the workers."""
        return {"pids": self.pids, "handed": self.handed, "restarts": self.restarts}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncGenerator[StreamWorkers]:
        """Start every worker and keep them alive; on exit, stop them (waits at most a few
        seconds, then kills)."""
        async with asyncio.TaskGroup() as group:
            keepers = [
                group.create_task(self._keep(slot), name=f"stream worker {slot}")
                for slot in range(self.count)
            ]
            try:
                yield self
            finally:
                for task in keepers:
                    task.cancel()

    async def _keep(self, slot: int) -> None:
        while True:
            worker = await self._spawn()
            self._workers[slot] = worker
            try:
                code = await worker.proc.wait()
            except asyncio.CancelledError:
                self._workers[slot] = None
                await asyncio.shield(self._stop(worker))
                raise
            self._workers[slot] = None
            worker.control.close()
            log.warning("stream worker %d (pid %d) exited with %s", slot, worker.proc.pid, code)
            self.restarts += 1
            lived = time.monotonic() - worker.started
            if lived < self.restart_delay_s:
                await asyncio.sleep(self.restart_delay_s - lived)

    async def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "telic.serve.streamer",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.sendall(self.config.to_json())
        ours.setblocking(False)
        return _Worker(proc, ours)

    async def _stop(self, worker: _Worker) -> None:
        worker.control.close()  # end-of-file: the worker ends its streams and exits
        try:
            async with asyncio.timeout(_STOP_S):
                await worker.proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
            await worker.proc.wait()

    def hand(self, transport: asyncio.Transport, request: bytes) -> bool:
        """Send the connection of ``transport`` to a worker with ``request``; on success,
        close it here (the worker has its own descriptor) and return True. False when no
        worker can take it now: the caller serves the stream."""
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        fd = sock.fileno()
        for _ in range(self.count):
            worker = self._workers[self._next]
            self._next = (self._next + 1) % self.count
            if worker is None or worker.proc.returncode is not None:
                continue
            try:
                socket.send_fds(worker.control, [request], [fd])
            except OSError:  # a full buffer, or a worker that just died: try another
                continue
            transport.abort()
            self.handed += 1
            return True
        return False
