"""The distributed benchmark's measurements, made inside a loopback-only network namespace
(``bench/groups/distributed.py`` starts this program there and reads the JSON it prints).

1. One process: ``RUNS`` runs of the 6-agent swarm booted by one kernel on the PostgreSQL
   ledger and driven concurrently; wall time, CPU time, transitions.
2. A 3-node ``ray.cluster_utils.Cluster``: the same runs started through :class:`RayHost`,
   spread over the three nodes' hosts; wall time, the hosts' CPU time (from /proc),
   transitions.
3. Failover: ``FAILOVER_RUNS`` more runs; once they are under way, a node is removed; for
   each of its runs, the time from the removal to its next commit (on a survivor, after the
   lease of ``LEASE_S`` expired).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from cluster_swarm import SPEC  # noqa: E402
from telic.clock import SystemClock  # noqa: E402
from telic.kernel import Kernel, Run  # noqa: E402
from telic.ledger import open_ledger  # noqa: E402
from telic.spec import build_run  # noqa: E402

RUNS = 60
FAILOVER_RUNS = 30
LEASE_S = 5.0
OBJECT_STORE = 80 * 1024 * 1024
_ENDED = ("completed", "failed", "stopped")


def _db(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writes(db: str) -> dict[str, int]:
    """Rows written so far to the ledger's ``runs`` (one update per append) and ``leases``
    (one per acquire and renewal), from PostgreSQL's statistics."""
    base, _, schema = db.rpartition("schema=")
    out = {"appends": 0, "lease_writes": 0}
    time.sleep(1.0)  # the statistics are flushed about every second
    with psycopg.connect(base.rstrip("?&"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        for table, key in (("runs", "appends"), ("leases", "lease_writes")):
            row = conn.execute(
                "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables "
                "WHERE schemaname = %s AND relname = %s",
                (schema, table),
            ).fetchone()
            out[key] = int(row[0]) if row else 0
    return out


def local(db: str, spec: Path) -> dict[str, Any]:
    """The runs in this one process."""
    ledger = open_ledger(db)
    clock = SystemClock()

    async def drive(run: Run) -> None:
        try:
            while await run.step():
                pass
        finally:
            await run.close()

    async def main() -> list[str]:
        kernel = Kernel(ledger, clock=clock)
        built = [
            build_run(spec, base_dir=BENCH, clock=clock, overrides={"goal": f"bench-{i}"})
            for i in range(RUNS)
        ]
        runs = [await kernel.boot(b.config) for b in built]
        async with asyncio.TaskGroup() as group:
            for r in runs:
                group.create_task(drive(r))
        return [r.id for r in runs]

    try:
        before = _writes(db)
        cpu0, t0 = time.process_time(), time.perf_counter()
        ids = asyncio.run(main())
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        transitions = sum(ledger.run(r).head for r in ids)
        statuses = [ledger.state_at(r)["status"] for r in ids]
        after = _writes(db)
    finally:
        ledger.close()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "transitions": transitions,
        "statuses": statuses,
        "appends": after["appends"] - before["appends"],
    }


def cluster(db: str, spec: Path) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    from telic.cluster import RayHost

    c = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE}
    )
    try:
        c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        last = c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        c.wait_for_nodes()
        address = c.address
        assert address is not None
        host = RayHost(address, db, lease_s=LEASE_S)
        try:
            return _measure(c, last, host, spec, db)
        finally:
            host.close()
    finally:
        ray.shutdown()
        c.shutdown()


def _start_all(host: Any, spec: Path, n: int, nodes: list[str], prefix: str) -> dict[str, str]:
    def start(i: int) -> tuple[str, str]:
        node = nodes[i % len(nodes)]
        rid = host.start(spec, base_dir=BENCH, node=node, overrides={"goal": f"{prefix}-{i}"})
        return rid, node

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        return dict(pool.map(start, range(n)))


def _wait_ended(host: Any, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(host.status(r) in _ENDED for r in ids):
            return
        time.sleep(0.1)
    raise TimeoutError(f"runs did not end within {timeout} s")


def _measure(c: Any, last: Any, host: Any, spec: Path, db: str) -> dict[str, Any]:
    host.ensure_hosts()
    infos = host.hosts()
    pids = [int(h.host.split(":")[1]) for h in infos]
    nodes = [h.node for h in infos]
    writes0 = _writes(db)
    cpu0 = {p: _cpu_s(p) for p in pids}
    t0 = time.perf_counter()
    placed = _start_all(host, spec, RUNS, nodes, "bench")
    _wait_ended(host, list(placed), 600)
    wall = time.perf_counter() - t0
    cpu = sum(_cpu_s(p) - cpu0[p] for p in pids)
    ledger = host.ledger
    transitions = sum(ledger.run(r).head for r in placed)
    statuses = [host.status(r) for r in placed]
    writes1 = _writes(db)

    # failover: a node's runs commit again on a survivor
    placed2 = _start_all(host, spec, FAILOVER_RUNS, nodes, "failover")
    lost = [r for r, n in placed2.items() if n == last.node_id]
    deadline = time.monotonic() + 120
    while not all(ledger.run(r).head >= 40 for r in placed2):
        if time.monotonic() > deadline:
            raise TimeoutError("the failover runs never got under way")
        time.sleep(0.05)
    heads = {r: ledger.run(r).head for r in lost}
    removed_us = time.time_ns() // 1000
    c.remove_node(last)
    recommit: dict[str, float | None] = {}
    deadline = time.monotonic() + 120
    while len(recommit) < len(lost) and time.monotonic() < deadline:
        for r in lost:
            if r in recommit:
                continue
            after = [t for t in ledger.read(r, heads[r] + 1) if t.ts > removed_us]
            if after:
                recommit[r] = (after[0].ts - removed_us) / 1e6
        time.sleep(0.05)
    _wait_ended(host, list(placed2), 300)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "transitions": transitions,
        "statuses": statuses,
        "hosts": len(pids),
        "appends": writes1["appends"] - writes0["appends"],
        "lease_writes": writes1["lease_writes"] - writes0["lease_writes"],
        "failover_lost": len(lost),
        "recommit_s": [recommit.get(r) for r in lost],
        "failover_statuses": [host.status(r) for r in placed2],
        "failover_verified": all(ledger.verify(r).ok for r in placed2),
    }


def main() -> int:
    base = os.environ["TELIC_CLUSTER_DSN"]
    schemas = ["bench_local_" + secrets.token_hex(3), "bench_cluster_" + secrets.token_hex(3)]
    try:
        with tempfile.TemporaryDirectory(prefix="telic-bench-") as tmp:
            spec = Path(tmp) / "bench.toml"
            spec.write_text(SPEC, encoding="utf-8")
            result = {
                "local": local(_db(base, schemas[0]), spec),
                "cluster": cluster(_db(base, schemas[1]), spec),
                "load": os.getloadavg(),
            }
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            for s in schemas:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
