"""What a running server holds: the ledger, its tokens, the event kernel, the follower, the
kernel and the runs it drives. Built by the app's lifespan; routes get it with
``Depends(context)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from fastapi import Request

from telic.access import TokenStore
from telic.events import EventKernel
from telic.events.follow import LedgerFollower
from telic.kernel import Kernel
from telic.ledger.base import BaseLedger

if TYPE_CHECKING:
    from telic.serve.driver import KernelLoop
    from telic.serve.fanout import Streams
    from telic.serve.host import Hosting
    from telic.serve.workers import StreamWorkers

__all__ = ["Context", "Settings", "context"]


@dataclass(frozen=True, slots=True)
class Settings:
    """How the server behaves; ``telic serve``'s options."""

    anonymous_read: bool = False
    """Let requests without a token read (refused unless bound to loopback)."""
    max_body: int = 1024 * 1024
    """Request bodies above this many bytes get 413."""
    heartbeat_s: float = 15.0
    """An SSE comment line after this long without an event."""
    stream_queue: int = 1024
    """Events a live SSE client may fall behind by before it is dropped."""
    stream_coalesce_s: float = 0.005
    """How long a stream's readers are left to sleep after a commit, so that a burst of
    commits wakes each of them once (latency added at most this)."""
    read_threads: int = 8
    """Worker threads that read the ledger for requests (the event loop never waits on a
    read); more requests than this wait their turn."""
    poll_s: float = 0.05
    """How often the SQLite ledger is checked for other processes' commits."""
    spec_dir: Path = field(default_factory=lambda: Path(".telic") / "specs")
    """Where specs posted to ``POST /runs`` are kept (resume rebuilds runs from them)."""
    resume_hosted: bool = True
    """On start, resume the runs a server was driving when it stopped."""
    mcp: bool = True
    """Serve telic as an MCP server over streamable HTTP at ``/mcp`` (with the mcp extra)."""
    host: str = "127.0.0.1"
    """The address the server is bound to (the MCP endpoint guards loopback against DNS
    rebinding by the Host header)."""
    ray: str | None = None
    """A Ray cluster's address: start runs there (``telic serve --ray``), not in-process."""
    holder: str | None = None
    """The name the server holds its runs' leases under (unique per process by default)."""
    lease_ttl_s: float = 10.0
    """How long a run's lease lasts unrenewed: how soon another server takes over a run whose
    server died."""
    node: str = ""
    """Where the server runs (shown with its leases); the host name by default."""
    sweep_s: float | None = None
    """How often to look for served runs whose lease went stale (half the TTL by default;
    0 turns failover off)."""
    stream_workers: int = 0
    """Processes that serve the SSE streams (``telic serve --stream-workers``): each follows
    the ledger as another server would, and the server hands it each stream's connection once
    the request is checked, so that fanning events out to many clients never takes the
    kernel's CPU or its interpreter lock. 0 serves streams from the server's own process."""
    stream_worker_nice: int = 10
    """How much the stream workers lower their scheduling priority, so that when the CPU is
    short the kernel's process gets it first (clients wait, commits do not)."""
    stream_poll_s: float = 0.01
    """How often a stream worker checks a SQLite ledger for commits (PostgreSQL notifies)."""


@dataclass(slots=True)
class Context:
    ledger: BaseLedger
    tokens: TokenStore
    events: EventKernel
    follower: LedgerFollower
    kernel: Kernel
    host: Hosting
    settings: Settings
    streams: Streams
    reads: anyio.CapacityLimiter
    driver: KernelLoop
    """The kernel's thread: run operations (start, stop, resume) go through ``driver.call``."""
    workers: StreamWorkers | None = None
    """The stream workers, when the server has them."""


def context(request: Request) -> Context:
    ctx: Context = request.app.state.telic
    return ctx
