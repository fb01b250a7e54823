"""The Ray actor around a :class:`~telic.cluster.host.NodeHost`: one per node, named after it.

Why one host actor per node rather than one actor per run: a Ray actor is a worker process,
and a run is a few asyncio tasks; hosting many runs in one process per node costs one
interpreter (and one ledger connection) per node instead of one per run, and starting a run
costs a method call, not a process start. What a per-run actor would buy from Ray (a restart
elsewhere when its node dies) the lease sweeper gives here: the hosts of the surviving nodes
resume a lost host's runs once their leases have expired, from the ledger.

The host runs on an event loop of its own, in a thread the actor starts in its constructor,
so that it lives (and sweeps) whether or not anyone calls it; the actor's methods hand their
work to that loop and await it. The actor is detached (it outlives the driver that made it)
and pinned to its node (``strategies.NodeAffinitySchedulingStrategy(soft=False)``); Ray restarts it on
the same node if its process dies (``max_restarts=-1``), never elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from telic.cluster._ray import ray
from telic.cluster.host import NodeHost, StartRequest

__all__ = ["HostActor", "actor_name"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def actor_name(node_id: str) -> str:
    """The name of the host actor of node ``node_id`` (in the cluster's namespace)."""
    return f"telic-host-{node_id}"


class _HostThread:
    """A NodeHost on an event loop in a thread of its own."""

    def __init__(self, db: str, node_id: str, options: dict[str, Any]) -> None:
        self.node_id = node_id
        self.host_id = f"{node_id[:12]}:{os.getpid()}"
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._failed: BaseException | None = None
        self.host: NodeHost | None = None
        self._thread = threading.Thread(
            target=self._main, args=(db, options), name="telic-host", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._failed is not None:
            raise self._failed

    def _main(self, db: str, options: dict[str, Any]) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.host = NodeHost(db, host_id=self.host_id, node_id=self.node_id, **options)
        except BaseException as exc:
            self._failed = exc
            self._started.set()
            return
        self._started.set()
        try:
            self.loop.run_until_complete(self.host.serve())
        except BaseException:
            log.exception("the telic host on node %s stopped", self.node_id)
        finally:
            self.host.close()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wrap_future(future)


class _HostActor:
    """Ray's view of a node's host (see the module)."""

    def __init__(self, db: str, node_id: str, options: dict[str, Any]) -> None:
        self._thread = _HostThread(db, node_id, options)

    def _host(self) -> NodeHost:
        host = self._thread.host
        assert host is not None
        return host

    async def describe(self) -> dict[str, Any]:
        """The host's id, node and the runs it drives."""
        host = self._host()
        return {
            "host": host.host_id,
            "node": host.node_id,
            "runs": host.hosted(),
            "lost": dict(host.lost),
        }

    async def start(self, request: StartRequest) -> str:
        return await self._thread.call(self._host().start(request))

    async def stop(self, run_id: str, reason: str) -> bool:
        return await self._thread.call(self._host().stop(run_id, reason=reason))


HostActor: Any = ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=64)(_HostActor)
"""The actor class (``HostActor.options(...).remote(db, node_id, options)``)."""
