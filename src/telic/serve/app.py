"""The ASGI app: :func:`create_app` builds it; its lifespan opens the ledger, the event
kernel, the follower of other processes' commits, and the kernel that drives started runs.

Routes live in :mod:`telic.serve.routes` (one module per concern), permissions in
:mod:`telic.serve.auth`, error bodies in :mod:`telic.serve.problems`. ``/`` is left to the
dashboard's static files.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Route

from telic.access import TokenStore
from telic.clock import Clock, SystemClock
from telic.events import EventKernel, EventProcessor
from telic.events.catalogue import SYSTEM_RUN
from telic.events.follow import LedgerFollower
from telic.kernel import Kernel
from telic.kinds import CATALOGUE
from telic.ledger import default_holder, open_ledger
from telic.ledger.base import BaseLedger
from telic.serve import problems
from telic.serve.context import Context, Settings
from telic.serve.driver import KernelLoop
from telic.serve.fanout import Streams
from telic.serve.host import Host, Hosting
from telic.serve.limits import AuditCalls, LimitBody
from telic.serve.mcp import PATH as MCP_PATH
from telic.serve.mcp import McpEndpoint
from telic.serve.mcp import available as mcp_available
from telic.serve.routes import approvals, dashboard, reading, runs, streams
from telic.serve.workers import StreamWorkers, WorkerConfig

__all__ = ["create_app"]

API_VERSION = "1"


def _hosting(cfg: Settings, kernel: Kernel, group: asyncio.TaskGroup) -> Hosting:
    """This process's host, or the cluster's with ``cfg.ray``."""
    if cfg.ray is None:
        return Host(kernel, group, cfg.spec_dir)
    from telic.cluster import RayHost, ledger_url  # the ray extra: imported on use
    from telic.cluster.serving import ClusterRuns

    cluster = RayHost(cfg.ray, ledger_url(kernel.ledger))
    return ClusterRuns(cluster, kernel.ledger, cfg.spec_dir)


def create_app(
    ledger: BaseLedger | str,
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
    processors: Iterable[EventProcessor] = (),
) -> FastAPI:
    """The server for ``ledger`` (an open ledger, or a URL the app opens and closes).

    ``processors`` join the server's event kernel (e.g. :class:`telic.otel.OtelProcessor`):
    they see every transition the server follows, its own runs' and other processes'.
    """
    cfg = settings or Settings()
    extra = tuple(processors)
    clk: Clock = clock or SystemClock()
    mcp_endpoint = (
        McpEndpoint(anonymous_read=cfg.anonymous_read, host=cfg.host)
        if cfg.mcp and mcp_available()
        else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        opened = open_ledger(ledger) if isinstance(ledger, str) else None
        led = opened or ledger
        assert isinstance(led, BaseLedger)
        try:
            StreamWorkers.check(led, cfg.stream_workers)
            driver = KernelLoop()
            driver.start()
            try:
                async with (
                    EventKernel(led, clock=clk, processors=extra) as events,
                    asyncio.TaskGroup() as group,
                ):
                    follower = LedgerFollower(led, events, interval=cfg.poll_s)
                    streams = Streams(
                        {r: s for r, s in follower.positions().items() if r != SYSTEM_RUN},
                        keep=max(4096, 2 * cfg.stream_queue),
                        coalesce=cfg.stream_coalesce_s,
                    )
                    follower.sinks.append(streams.publish)
                    kernel = Kernel(
                        led,
                        clock=clk,
                        publish=driver.publisher(follower.publish),
                        holder=cfg.holder or default_holder(),
                        lease_ttl_s=cfg.lease_ttl_s,
                        node=cfg.node or socket.gethostname(),
                    )
                    host = _hosting(cfg, kernel, driver.group)
                    tokens = TokenStore(led, clock=clk)
                    reads = anyio.CapacityLimiter(cfg.read_threads)
                    ctx = Context(
                        led, tokens, events, follower, kernel, host, cfg, streams, reads, driver
                    )
                    watch = group.create_task(follower.run(), name="ledger follower")
                    if cfg.resume_hosted:
                        await driver.call(host.resume_served())
                    every = cfg.lease_ttl_s / 2 if cfg.sweep_s is None else cfg.sweep_s
                    if every > 0:  # failover: a task of the kernel loop's group
                        await driver.call(host.sweep_every(every))
                    try:
                        async with contextlib.AsyncExitStack() as stack:
                            if cfg.stream_workers:
                                workers = StreamWorkers(
                                    WorkerConfig.of(led.url, cfg), cfg.stream_workers
                                )
                                ctx.workers = await stack.enter_async_context(workers.running())
                            app.state.telic = ctx
                            if mcp_endpoint is not None:
                                await stack.enter_async_context(mcp_endpoint.running(led, tokens))
                            yield
                    finally:
                        watch.cancel()
                        await driver.stop()
                        host.close()
            finally:
                await driver.stop()
        finally:
            if opened is not None:
                opened.close()

    app = FastAPI(
        title="telic",
        version=API_VERSION,
        summary="Runs, transitions, live events and approvals of a telic ledger.",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    problems.install(app)
    for module in (runs, reading, streams, approvals):
        app.include_router(module.router)

    if mcp_endpoint is not None:
        # An ASGI app as the endpoint: Starlette hands it the request as it came.
        endpoint: Any = mcp_endpoint
        app.router.routes.append(Route(MCP_PATH, endpoint, methods=["GET", "POST", "DELETE"]))

    @app.get("/health", tags=["health"], summary="Liveness (no token needed)")
    async def health() -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        ctx: Context | None = getattr(app.state, "telic", None)
        body: dict[str, Any] = {
            "status": "ok",
            "streams": 0 if ctx is None else ctx.streams.open_streams,
        }
        if ctx is not None and ctx.workers is not None:
            body["stream_workers"] = ctx.workers.health()
        return body

    dashboard.install(app)  # last: its files take `/` and whatever no route took

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for kind, model in CATALOGUE.items():
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in body.pop("$defs", {}).items():
                    components.setdefault(name, sub)
                body["x-kind"] = kind
                components[model.__name__] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # pyright: ignore[reportAttributeAccessIssue]

    def tokens() -> TokenStore | None:
        ctx: Context | None = getattr(app.state, "telic", None)
        return None if ctx is None else ctx.tokens

    app.add_middleware(AuditCalls, tokens=tokens)
    app.add_middleware(LimitBody, limit=cfg.max_body)
    return app
