"""Runs hosted on a Ray cluster (issue 13): a 3-node local cluster against one process.

``bench/cluster_child.py`` does the measuring inside a network namespace with only loopback
(``unshare -n``; Ray then gives its nodes 127.0.0.1, so every packet stays on this machine),
reaching PostgreSQL through its Unix socket: 60 concurrent runs of 6 agents with 20 ms of
simulated tool latency per call, first in one process (one kernel on the ledger), then on the
cluster (each node's host actor drives a third); then a node is removed mid-run and the time
until each of its runs commits again on a survivor is taken (leases of 5 s).

Figures: the aggregate transitions/s of each; the CPU time per transition of the cluster's
hosts over that of the one process (the overhead of hosting on Ray: leases, fenced appends,
actor calls; target <= 1.5x); the failover time (target <= 10 s). One measurement of each
(a cluster run takes a minute), on a machine other work is loading: the load is printed.
Needs root (for ``unshare``) and ``TELIC_PG_DSN``; without them it prints why and measures
nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from harness import Figure, fdatasync_latency_us

GROUP = "distributed"
_CHILD = Path(__file__).resolve().parent.parent / "cluster_child.py"
_ROOT = _CHILD.parent.parent


def _socket_dsn(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    sockets = os.environ.get("TELIC_PG_SOCKET_DIR", "/var/run/postgresql")
    user = parts.get("user") or "postgres"
    port = f"&port={parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}@/{parts.get('dbname') or 'postgres'}?host={sockets}{port}"


def _why_not() -> str | None:
    if not os.environ.get("TELIC_PG_DSN"):
        return "set TELIC_PG_DSN"
    if shutil.which("unshare") is None:
        return "unshare is missing"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        return "unshare -n is not permitted (run as root)"
    return None


def collect(repeats: int) -> list[Figure]:
    reason = _why_not()
    if reason is not None:
        print(f"distributed: not measured: {reason}", file=sys.stderr)
        return []
    env = {
        **os.environ,
        "TELIC_CLUSTER_DSN": _socket_dsn(os.environ["TELIC_PG_DSN"]),
        "PYTHONPATH": os.pathsep.join([str(_ROOT / "src"), str(_CHILD.parent)]),
    }
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable,
         str(_CHILD)],
        capture_output=True, text=True, env=env, cwd=_ROOT, timeout=1200,
    )  # fmt: skip
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"the cluster benchmark failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    r = json.loads(lines[-1].removeprefix("RESULT "))
    loc, clu = r["local"], r["cluster"]
    load = f"load {load_before:.1f} -> {r['load'][0]:.1f} on {os.cpu_count()} cores"
    local_rate = loc["transitions"] / loc["wall_s"]
    cluster_rate = clu["transitions"] / clu["wall_s"]
    local_cpu_us = loc["cpu_s"] / loc["transitions"] * 1e6
    cluster_cpu_us = clu["cpu_s"] / clu["transitions"] * 1e6
    recommit = [s for s in clu["recommit_s"] if s is not None]
    missing = len(clu["recommit_s"]) - len(recommit)
    ok = all(s == "completed" for s in [*loc["statuses"], *clu["statuses"]])
    ended = all(s == "completed" for s in clu["failover_statuses"])
    fsync_us = fdatasync_latency_us()
    return [
        Figure(GROUP, "one process: transitions/s (60 runs x 6 agents, 20 ms tools)",
               local_rate, "tr/s", None, note=f"{loc['transitions']} transitions; {load}"),
        Figure(GROUP, "3-node Ray cluster: transitions/s (same runs)", cluster_rate, "tr/s",
               None, note=f"{clu['transitions']} transitions; all completed: {ok}"),
        Figure(GROUP, "one process: CPU per transition", local_cpu_us, "us", None),
        Figure(GROUP, "cluster hosts: CPU per transition", cluster_cpu_us, "us", None,
               note=f"{clu['hosts']} host processes"),
        Figure(GROUP, "cluster / one process: CPU per transition", cluster_cpu_us / local_cpu_us,
               "x", 1.5),
        Figure(GROUP, "cluster / one process: wall time per transition",
               local_rate / cluster_rate, "x", None),
        Figure(GROUP, "cluster: PostgreSQL appends/s (one NOTIFY each)",
               clu["appends"] / clu["wall_s"], "/s", None,
               note=f"{clu['transitions'] / max(1, clu['appends']):.1f} transitions per append; "
               f"lease writes {clu['lease_writes'] / clu['wall_s']:.0f}/s"),
        Figure(GROUP, "one process: PostgreSQL appends/s", loc["appends"] / loc["wall_s"], "/s",
               None, note=f"{loc['transitions'] / max(1, loc['appends']):.1f} transitions per "
               "append"),
        Figure(GROUP, "disk: write + fdatasync (bounds NOTIFYing commits, see docs)", fsync_us,
               "us", None, note=f"at most {1e6 / fsync_us:,.0f} serialized commits/s"),
        Figure(GROUP, "node removed -> its runs commit again (max)",
               max(recommit) if recommit else float("inf"), "s", 10.0,
               note=f"{len(recommit)} runs moved, median {statistics.median(recommit):.1f} s, "
               f"{missing} never; lease 5 s; all ended completed: {ended}; verified: "
               f"{clu['failover_verified']}" if recommit else "no run moved"),
    ]  # fmt: skip
