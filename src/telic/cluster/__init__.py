"""Runs hosted on a Ray cluster over a shared PostgreSQL ledger (the ``telic[ray]`` extra).

- :mod:`telic.cluster.driver`: :class:`RayHost`, the client that starts runs on the cluster;
- :mod:`telic.cluster.actor`: the host actor of each node;
- :mod:`telic.cluster.host`: :class:`NodeHost`, what that actor runs (a kernel driving the
  node's runs);
- :mod:`telic.cluster.tasks`: tool calls as Ray tasks, placed by their declared resources.

See docs/distributed.md.
"""

from __future__ import annotations

try:
    import ray  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError:  # pragma: no cover - exercised without the extra
    from telic.errors import MissingExtra

    raise MissingExtra("ray", "ray") from None

from telic.cluster.driver import NAMESPACE, HostInfo, RayHost, ledger_url, require_postgres
from telic.cluster.host import HOSTED, NodeHost, StartRequest, is_cluster_run
from telic.cluster.tasks import on_ray, ray_options

__all__ = [
    "HOSTED",
    "NAMESPACE",
    "HostInfo",
    "NodeHost",
    "RayHost",
    "StartRequest",
    "is_cluster_run",
    "ledger_url",
    "on_ray",
    "ray_options",
    "require_postgres",
]
