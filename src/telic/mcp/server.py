"""telic as an MCP server: runs, transcripts, traces, state, diffs, verify, fork and resume as
MCP tools and resources, for MCP clients (an IDE, a desktop assistant, another agent).

:func:`build_server` returns the SDK's ``MCPServer`` over one ledger: run it on stdio
(``telic mcp --db URL``), or mount its streamable HTTP app in a server. Reading needs the
``read`` scope; fork and resume need ``operate``. Who may do what is decided by an
``authorize(scope) -> actor`` callable: over stdio the trust is the local OS user, as for the
CLI, so :func:`local_operator` grants every scope and names the user; an HTTP mount passes one
that checks the request's token. Every mutating call records its actor in the transition it
makes (``run.forked.by``, ``run.resumed.by``), and is reported to an optional
``audit(tool, run, headers, status)`` callable once it ended, refused or failed (``telic serve``
records it as ``api.called``, as it does every mutating HTTP request).
"""

from __future__ import annotations

import functools
import getpass
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Literal, ParamSpec, TypeVar

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from telic.errors import AccessError, RunNotResumable, SequenceError, TelicError
from telic.kernel import Kernel
from telic.ledger import BaseLedger, open_ledger
from telic.reducer import initial_state
from telic.state import RunState
from telic.transcript import render

__all__ = ["Authorize", "Scope", "build_server", "local_operator"]

Scope = Literal["read", "operate", "approve"]
Authorize = Callable[[Scope, Mapping[str, str] | None], str]
"""``authorize(scope, headers)``: who is acting if ``scope`` is granted; raises (a
:class:`~telic.errors.TelicError`, whose message the client sees) otherwise. ``headers`` are
the HTTP request's (None over stdio)."""

Audit = Callable[[str, str, Mapping[str, str] | None, int], None]
"""``audit(tool, run, headers, status)``: a mutating tool call ended with an HTTP-like status
(200 done, 403 refused, 400 failed)."""

PAGE = 200
"""The most transitions one ``trace`` call returns."""


def local_operator(scope: Scope, headers: Mapping[str, str] | None = None) -> str:
    """Over stdio the client runs as the local OS user, who may do anything the CLI can."""
    return f"{getpass.getuser()}@{socket.gethostname()} via mcp"


P = ParamSpec("P")
R = TypeVar("R")


def _answering(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """telic's errors reach the client as the tool's error message (one line, what to do)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except TelicError as exc:
            raise ToolError(str(exc)) from None

    return wrapper


def _diff(a: Any, b: Any, path: str = "") -> Iterator[dict[str, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        da: dict[str, Any] = a  # pyright: ignore[reportUnknownVariableType]
        db: dict[str, Any] = b  # pyright: ignore[reportUnknownVariableType]
        for k in sorted(set(da) | set(db)):
            yield from _diff(da.get(k), db.get(k), f"{path}.{k}" if path else k)
    elif a != b:
        yield {"path": path, "before": a, "after": b}


def _no_audit(tool: str, run: str, headers: Mapping[str, str] | None, status: int) -> None:
    """Over stdio nothing more is recorded than the transitions' actors."""


async def _audited(
    audit: Audit, tool: str, run: str, headers: Mapping[str, str] | None, call: Awaitable[R]
) -> R:
    """Await a mutating tool's work and report how it ended to ``audit``."""
    status = 400
    try:
        result = await call
        status = 200
        return result
    except AccessError:
        status = 403
        raise
    finally:
        audit(tool, run, headers, status)


def build_server(
    db: str | BaseLedger,
    *,
    authorize: Authorize = local_operator,
    audit: Audit = _no_audit,
    name: str = "telic",
) -> MCPServer:
    """An MCP server over the ledger at ``db``: a URL (opened now, closed by the caller's
    exit) or an open ledger (``telic serve``'s own; ``resume`` opens its URL again in a
    worker thread)."""
    ledger: BaseLedger = open_ledger(db) if isinstance(db, str) else db
    url = db if isinstance(db, str) else db.url
    lock = threading.Lock()  # resume runs in a worker thread with a ledger of its own
    server = MCPServer(
        name,
        instructions=(
            "telic's runs: every step of an agent swarm is a hash-chained transition. "
            "List runs, read transcripts, traces and state, verify chains; fork a run at a "
            "sequence number and resume it."
        ),
        log_level="WARNING",
    )
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True)

    def summary(run_id: str) -> dict[str, Any]:
        info = ledger.run(run_id)
        state = RunState(ledger.state_at(run_id) if info.head else initial_state())
        return {
            "id": info.id,
            "goal": state.goal,
            "status": state.status,
            "parent": None if info.parent is None else {"run": info.parent, "seq": info.fork_seq},
            "transitions": info.head,
            "head_hash": info.head_hash.hex(),
        }

    @server.tool(annotations=read_only)
    @_answering
    async def list_runs(ctx: Context) -> list[dict[str, Any]]:
        """Every run in the ledger, oldest first: id, goal, status, parent, size, head hash."""
        authorize("read", ctx.headers)
        return [summary(r.id) for r in ledger.runs()]

    @server.tool(annotations=read_only)
    @_answering
    async def transcript(run: str, ctx: Context) -> str:
        """The tick-level transcript of a run (BOOT, SPAWN, TICK lines, DONE)."""
        authorize("read", ctx.headers)
        return "\n".join(render(ledger.read(run), total=ledger.run(run).head))

    @server.tool(annotations=read_only)
    @_answering
    async def trace(run: str, ctx: Context, from_seq: int = 1, limit: int = 50) -> dict[str, Any]:
        """A page of a run's transitions from ``from_seq`` (at most 200); ``next`` is the
        ``from_seq`` of the next page, or null at the head."""
        authorize("read", ctx.headers)
        head = ledger.run(run).head
        limit = max(1, min(limit, PAGE))
        if from_seq < 1 or from_seq > max(head, 1):
            raise SequenceError(run, from_seq, head)
        last = min(head, from_seq + limit - 1)
        items = [t.to_json() for t in ledger.read(run, from_seq, last)]
        return {
            "run": run,
            "head": head,
            "transitions": items,
            "next": last + 1 if last < head else None,
        }

    @server.tool(annotations=read_only)
    @_answering
    async def state(run: str, ctx: Context, at: int | None = None) -> dict[str, Any]:
        """The folded state of a run at sequence ``at`` (default: the head)."""
        authorize("read", ctx.headers)
        return dict(ledger.state_at(run, at))

    @server.tool(annotations=read_only)
    @_answering
    async def diff(run: str, seq_a: int, seq_b: int, ctx: Context) -> list[dict[str, Any]]:
        """What changed in a run's state between two sequence numbers."""
        authorize("read", ctx.headers)
        return list(_diff(ledger.state_at(run, seq_a), ledger.state_at(run, seq_b)))

    @server.tool(annotations=read_only)
    @_answering
    async def verify(run: str, ctx: Context) -> dict[str, Any]:
        """Recompute a run's hash chain; name the first bad sequence number if it is broken."""
        authorize("read", ctx.headers)
        r = ledger.verify(run)
        return {
            "run": run,
            "ok": r.ok,
            "checked": r.checked,
            "first_bad": r.first_bad,
            "reason": r.reason,
            "head_hash": r.head_hash,
        }

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False))
    @_answering
    async def fork(run: str, at: int, ctx: Context) -> dict[str, Any]:
        """Fork a run after sequence ``at`` (copy-on-write); the new run records who asked."""

        async def work() -> dict[str, Any]:
            actor = authorize("operate", ctx.headers)
            with lock:
                new_id = Kernel(ledger).fork(run, at, by=actor)
            return {"id": new_id, "parent": {"run": run, "seq": at}, "by": actor}

        return await _audited(audit, "fork", run, ctx.headers, work())

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False))
    @_answering
    async def resume(run: str, ctx: Context) -> dict[str, Any]:
        """Resume a run (a fork, or one interrupted) to its end with the kernel: reference
        runs on a virtual clock, spec runs with their models. Returns how it ended."""

        async def work() -> dict[str, Any]:
            actor = authorize("operate", ctx.headers)

            def resumed() -> dict[str, Any]:
                with lock:
                    return _resume(url, run, actor)

            return await anyio.to_thread.run_sync(resumed)

        return await _audited(audit, "resume", run, ctx.headers, work())

    @server.resource("telic://runs", mime_type="application/json")
    @_answering
    async def runs_resource() -> list[dict[str, Any]]:
        """Every run in the ledger."""
        # A static resource gets no request context: the read scope is the endpoint's check
        # (every request to telic serve's /mcp needs it); over stdio the local user may read.
        return [summary(r.id) for r in ledger.runs()]

    @server.resource("telic://runs/{run}/transcript", mime_type="text/plain")
    @_answering
    async def transcript_resource(run: str, ctx: Context) -> str:
        """A run's transcript."""
        authorize("read", ctx.headers)
        return "\n".join(render(ledger.read(run), total=ledger.run(run).head))

    @server.resource("telic://runs/{run}/state", mime_type="application/json")
    @_answering
    async def state_resource(run: str, ctx: Context) -> dict[str, Any]:
        """A run's state at its head."""
        authorize("read", ctx.headers)
        return dict(ledger.state_at(run))

    _ = (list_runs, transcript, trace, state, diff, verify, fork, resume)
    _ = (runs_resource, transcript_resource, state_resource)
    return server


def _resume(db: str, run_id: str, actor: str) -> dict[str, Any]:
    """Resume ``run_id`` to its end in this (worker) thread, with a ledger of its own."""
    from telic.clock import Clock, SystemClock, VirtualClock

    ledger = open_ledger(db)
    try:
        booted = next(iter(ledger.read(run_id, 1, 1)), None)
        recorded: dict[str, Any] = (
            booted.data.get("config", {})
            if booted is not None and booted.kind == "run.booted"
            else {}
        )
        finish: Any = None
        clock: Clock
        if "demo" in recorded:
            from telic.demo import build

            config, _ = build(recorded["demo"]["seed"])
            clock = VirtualClock()
        elif "spec" in recorded:
            from telic.spec import build_run

            clock = SystemClock()
            built = build_run(
                recorded["spec"]["path"], model=recorded["spec"].get("model"), clock=clock
            )
            config, finish = built.config, built.aclose
        else:
            raise RunNotResumable(
                run_id, "only reference runs and runs booted from a spec can be resumed here"
            )

        async def main() -> str:
            run = await Kernel(ledger, clock=clock).resume(
                run_id, config, reason="resumed over MCP", by=actor
            )
            try:
                result = await run.until_done()
            finally:
                await run.close()
                if finish is not None:
                    await finish()
            return result.status

        status = clock.run(main())
        return {"run": run_id, "status": status, "head": ledger.run(run_id).head, "by": actor}
    finally:
        ledger.close()
