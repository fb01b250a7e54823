"""``telic serve --ray ADDRESS``: the server starts and stops runs on the cluster.

:class:`ClusterRuns` stands in for the server's in-process :class:`~telic.serve.host.Host`:
``POST /runs`` boots the run on a host of the cluster (the posted spec is written to the
server's spec directory, and its text travels to the host: the nodes need not see that
directory; the modules it names must be importable on them), ``POST .../stop`` asks
the host that drives it. The server drives nothing itself, and resumes nothing when it
starts: the cluster's hosts resume their own runs. Its streams follow every run through the
PostgreSQL ledger's ``LISTEN/NOTIFY`` (:mod:`telic.events.follow`), whichever node commits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from telic.cluster.driver import RayHost
from telic.cluster.host import is_cluster_run
from telic.errors import RunNotHosted, RunNotResumable
from telic.ledger import BaseLedger
from telic.serve.models import ResumeIn, StartIn

__all__ = ["ClusterRuns"]

_ENDED: Final = frozenset({"completed", "failed", "stopped"})


class ClusterRuns:
    """The runs a server hosts on a Ray cluster (see the module)."""

    def __init__(self, cluster: RayHost, ledger: BaseLedger, spec_dir: Path) -> None:
        self.cluster = cluster
        self.ledger = ledger
        self._spec_dir = spec_dir

    def hosts(self, run_id: str) -> bool:
        """Whether the cluster drives ``run_id`` (booted there and not ended)."""
        try:
            if not is_cluster_run(self.ledger, run_id):
                return False
            return self.ledger.state_at(run_id)["status"] not in _ENDED
        except Exception:
            return False

    def close(self) -> None:
        self.cluster.close()

    async def resume_served(self) -> list[str]:
        return []  # the cluster's hosts resume their runs themselves

    async def sweep_every(self, every_s: float) -> None:
        """Nothing to sweep here: the cluster's hosts take over their lost runs themselves."""

    async def start(self, body: StartIn, *, by: str) -> str:
        path = body.save(self._spec_dir)
        return await asyncio.to_thread(
            self.cluster.start, path, model=body.model, base_dir=body.directory
        )

    async def resume(self, run_id: str, body: ResumeIn, *, by: str) -> None:
        raise RunNotResumable(
            run_id,
            "this server hosts runs on a Ray cluster, whose hosts resume a run by themselves "
            "when its owner is lost",
        )

    async def stop(self, run_id: str, *, by: str, reason: str) -> None:
        status = self.ledger.state_at(run_id)["status"]
        if status in _ENDED:
            raise RunNotHosted(run_id, f"it has ended ({status}); there is nothing to stop")
        stopped = await asyncio.to_thread(self.cluster.stop, run_id, reason=f"{reason} (by {by})")
        if not stopped:
            raise RunNotHosted(
                run_id, "no host of the cluster drives it (another process does, or none does)"
            )
