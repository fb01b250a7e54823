"""A stream worker's process: ``python -m telic.serve.streamer FD`` (started by
:class:`~telic.serve.workers.StreamWorkers`, never by hand).

FD is its end of a Unix socket pair with the server. The first message is the
:class:`~telic.serve.workers.WorkerConfig`; every later one is a checked
:class:`~telic.serve.routes.streams.StreamRequest` with one client socket attached. The worker
follows the ledger like another server would (:class:`~telic.events.follow.LedgerFollower`
into its own :class:`~telic.serve.fanout.Streams`) and serves each stream with the server's
own stream code, writing to the socket directly. End-of-file on the socket pair (the server
stopped or died) ends every stream and the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

import anyio

from telic.events.catalogue import SYSTEM_RUN
from telic.events.follow import LedgerFollower
from telic.ledger import open_ledger
from telic.ledger.base import BaseLedger
from telic.serve.context import Settings
from telic.serve.fanout import Streams
from telic.serve.routes.streams import HEAD, StreamRequest, open_stream
from telic.serve.workers import WorkerConfig

__all__ = ["main"]

log = logging.getLogger(__name__)

_MESSAGE = 1 << 16
"""The largest message on the socket pair (a request with a resumed all-runs cursor)."""


@dataclass(frozen=True, slots=True)
class _Feed:
    """What the worker's streams read from (the :class:`~telic.serve.routes.streams.Feed`)."""

    ledger: BaseLedger
    streams: Streams
    reads: anyio.CapacityLimiter
    settings: Settings


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _receive(control: socket.socket) -> tuple[bytes, list[int]] | None:
    """The next message and its descriptors; None at end-of-file."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(control, _MESSAGE, 1)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(control, _settle, ready)
            try:
                await ready
            finally:
                loop.remove_reader(control)
            continue
        if not msg and not fds:
            return None
        return msg, fds


async def _stream(feed: _Feed, raw: bytes, fd: int) -> None:
    """Serve one handed stream until it ends, the client goes away, or the worker stops. A
    stream that fails is logged and ends alone, as it would in the server."""
    sock = socket.socket(fileno=fd)
    try:
        await _write_stream(feed, StreamRequest.from_json(raw), sock)
    except Exception:
        log.exception("a handed stream failed")
    finally:
        sock.close()


async def _write_stream(feed: _Feed, req: StreamRequest, sock: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    body, done = open_stream(feed, req)

    async def gone() -> None:
        while await reader.read(4096):
            pass

    async def write() -> None:
        writer.write(HEAD)
        async for chunk in body:
            writer.write(chunk)
            await writer.drain()

    try:
        async with asyncio.TaskGroup() as group:
            watch = group.create_task(gone())
            writing = group.create_task(write())
            await asyncio.wait([watch, writing], return_when=asyncio.FIRST_COMPLETED)
            watch.cancel()
            writing.cancel()
    except* OSError:
        pass  # the client went away mid-write
    finally:
        await body.aclose()
        done()
        writer.close()


async def serve(control: socket.socket) -> None:
    """Read the config, follow the ledger, and serve every stream handed over ``control``."""
    control.setblocking(False)
    first = await _receive(control)
    if first is None:
        return
    config = WorkerConfig.from_json(first[0])
    if config.nice:
        os.nice(config.nice)
    ledger = open_ledger(config.url, readonly=True)  # a worker never writes
    try:
        follower = LedgerFollower(ledger, None, interval=config.poll_s)
        settings = config.settings()
        streams = Streams(
            {r: s for r, s in follower.positions().items() if r != SYSTEM_RUN},
            keep=max(4096, 2 * settings.stream_queue),
            coalesce=settings.stream_coalesce_s,
        )
        follower.sinks.append(streams.publish)
        feed = _Feed(ledger, streams, anyio.CapacityLimiter(settings.read_threads), settings)
        async with asyncio.TaskGroup() as group:
            watch = group.create_task(follower.run(), name="ledger follower")
            clients: set[asyncio.Task[None]] = set()
            while (got := await _receive(control)) is not None:
                raw, fds = got
                for extra in fds[1:]:
                    os.close(extra)
                if fds:
                    task = group.create_task(_stream(feed, raw, fds[0]))
                    clients.add(task)
                    task.add_done_callback(clients.discard)
            watch.cancel()
            for task in clients:
                task.cancel()
    finally:
        ledger.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server handles Ctrl-C and tells us
    control = socket.socket(fileno=int(argv[1]))
    with contextlib.closing(control):
        asyncio.run(serve(control))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
