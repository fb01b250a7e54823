"""What ``telic cluster status`` shows: the nodes (from Ray), the runs each node's host drives,
and every run's lease with its age (from the ledger, on the ledger's own clock)."""

from __future__ import annotations

from typing import Any

from telic.cluster._ray import ray
from telic.cluster.driver import RayHost
from telic.errors import TelicError

__all__ = ["cluster_status"]


def cluster_status(cluster: RayHost) -> dict[str, Any]:
    """``{"nodes": [...], "leases": [...]}`` (see ``telic cluster status --json``)."""
    hosts = {h.node: h for h in cluster.hosts()}
    nodes: list[dict[str, Any]] = []
    for n in ray.nodes():
        node_id = str(n["NodeID"])
        resources: dict[str, float] = {
            str(k): float(v)
            for k, v in dict(n.get("Resources") or {}).items()
            if not str(k).startswith("node:") and str(k) not in ("memory", "object_store_memory")
        }
        h = hosts.get(node_id)
        nodes.append(
            {
                "node": node_id,
                "address": str(n.get("NodeManagerAddress", "")),
                "alive": bool(n.get("Alive")),
                "host": None if h is None else h.host,
                "runs": [] if h is None else list(h.runs),
                "resources": resources,
            }
        )
    nodes.sort(key=lambda d: (not d["alive"], d["node"]))
    ledger = cluster.ledger
    now = ledger.leases.now_us()
    leases: list[dict[str, Any]] = []
    for le in ledger.leases.all():
        try:
            status = str(ledger.state_at(le.run_id)["status"])
        except TelicError:  # a lease taken before its run was created (or a damaged run)
            status = "unknown"
        leases.append(
            {
                "run": le.run_id,
                "status": status,
                "holder": le.holder,
                "node": le.node,
                "epoch": le.epoch,
                "age_s": (now - le.acquired_us) / 1e6,
                "renewed_s_ago": (now - le.renewed_us) / 1e6,
                "expires_in_s": (le.expires_us - now) / 1e6,
                "released": le.released,
            }
        )
    return {"nodes": nodes, "leases": leases}
