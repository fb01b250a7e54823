"""The cluster scenarios, run as a program inside a loopback-only network namespace.

``tests/cluster/test_cluster.py`` runs ``unshare -n sh -c 'ip link set lo up && exec python
tests/cluster/scenarios.py NAME...'`` and asserts on the JSON it prints (its last line, after
``RESULT ``). Inside, Ray's nodes take 127.0.0.1 (the only address there), and PostgreSQL is
reached through its Unix socket (``TELIC_CLUSTER_DSN``), which a network namespace does not
cut. Every scenario reports facts (counts, hashes, node ids), never a verdict of its own: the
test decides.

One 3-node ``ray.cluster_utils.Cluster`` serves every scenario of one invocation: the head, a
node with the custom resource ``special``, and a plain node (the one ``failover`` removes).
One local model server (:class:`telic.minds.testing.ModelServer`, on loopback, started before
the nodes so that their workers inherit ``VLLM_BASE_URL``) answers the model agents.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import psycopg  # noqa: E402
import ray  # noqa: E402
from psycopg import sql  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402
from swarm import GATEWAY, LAUNCH, LOCATE, PLACED, SWARM  # noqa: E402

from telic.cluster import RayHost, is_cluster_run  # noqa: E402
from telic.errors import ClusterError  # noqa: E402
from telic.kernel.approval import decide  # noqa: E402
from telic.ledger import BaseLedger  # noqa: E402
from telic.minds.testing import ModelServer, Reply, ServerRequest  # noqa: E402

LEASE_S = 5.0
OBJECT_STORE = 80 * 1024 * 1024
MARK = "RESULT "


@dataclass
class Env:
    cluster: Any
    head: Any
    special: Any
    plain: Any
    db: str
    dir: Path
    effects: Path
    host: RayHost
    models: ModelServer

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def spec(self, name: str, text: str) -> Path:
        path = self.dir / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path


@contextlib.contextmanager
def environment() -> Iterator[Env]:
    base = os.environ["TELIC_CLUSTER_DSN"]
    schema = "cluster_" + secrets.token_hex(4)
    db = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with tempfile.TemporaryDirectory(prefix="telic-cluster-") as tmp:
        effects = Path(tmp) / "effects.log"
        effects.touch()
        os.environ["TELIC_CLUSTER_EFFECTS"] = str(effects)  # the raylets' workers inherit it
        models = ModelServer().start()
        os.environ["VLLM_BASE_URL"] = models.openai_url
        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE},
        )
        try:
            special = cluster.add_node(
                num_cpus=1, object_store_memory=OBJECT_STORE, resources={"special": 1}
            )
            plain = cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
            cluster.wait_for_nodes()
            address = cluster.address
            assert address is not None
            host = RayHost(address, db, lease_s=LEASE_S)
            try:
                host.ensure_hosts()
                yield Env(
                    cluster, cluster.head_node, special, plain, db, Path(tmp), effects, host, models
                )
            finally:
                host.close()
        finally:
            ray.shutdown()
            cluster.shutdown()
            models.close()
            with psycopg.connect(base, autocommit=True) as conn:
                drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                conn.execute(drop)


# -- helpers ---------------------------------------------------------------------------


def hashes(ledger: BaseLedger, run_id: str, upto: int | None = None) -> list[str]:
    return [t.hash.hex() for t in ledger.read(run_id, 1, upto)]


def kinds(ledger: BaseLedger, run_id: str) -> list[str]:
    return [t.kind for t in ledger.read(run_id)]


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def hosting_node(env: Env, run_id: str) -> str | None:
    for h in env.host.hosts():
        if run_id in h.runs:
            return h.node
    return None


# -- scenarios -------------------------------------------------------------------------


def resources(env: Env) -> dict[str, Any]:
    """A tool needing ``special`` runs on the node that has it, from a run hosted on the head."""
    path = env.spec("locate", LOCATE)
    run_id = env.host.start(path, base_dir=HERE, node=env.head.node_id)
    hosted_on = hosting_node(env, run_id)
    status = env.host.wait(run_id, timeout=60)
    ran_on = [
        t.data["result"]["node"]
        for t in env.host.ledger.read(run_id)
        if t.kind == "tool.completed" and t.data["tool"] == "where"
    ]
    outcomes = {
        t.data["tool"]: [t.kind, t.data.get("error"), t.data.get("message")]
        for t in env.host.ledger.read(run_id)
        if t.kind in ("tool.completed", "tool.failed", "tool.timeout")
    }
    try:
        env.host.start(path, base_dir=HERE, node="f" * 56)
        no_node = "started"
    except ClusterError as exc:
        no_node = str(exc)
    time.sleep(4.5)  # past the slow call's 4 s, had its task not been cancelled
    slow = Path(str(env.effects) + ".slow")
    marks = slow.read_text(encoding="utf-8").splitlines() if slow.exists() else []
    return {
        "status": status,
        "hosted_on": hosted_on,
        "ran_on": ran_on,
        "outcomes": outcomes,
        "slow_marks": marks,
        "no_node": no_node,
        "nodes": {
            "head": env.head.node_id,
            "special": env.special.node_id,
            "plain": env.plain.node_id,
        },
        "verified": env.host.ledger.verify(run_id).ok,
    }


class Agents:
    """The model server's answers: each agent's first request asks for a ``pause``, every
    later one finishes; while ``gate`` is clear every request waits for it (so tries can be
    caught in flight)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, request: ServerRequest) -> Reply:
        found = re.search(r"\nagent: (\S+)\n", request.body["messages"][1]["content"])
        agent = found.group(1) if found else "?"
        with self._lock:
            self.seen[agent] = self.seen.get(agent, 0) + 1
            first = self.seen[agent] == 1
        self.gate.wait(120)
        if first:
            step = {"tool": "pause", "args": {"ms": 50}}
            return Reply.propose({"action": "tool", "args": step, "reason": "wait a bit"})
        return Reply.propose({"action": "finish", "args": {"result": agent}, "reason": "done"})


def _model_calls(ledger: BaseLedger, run_id: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"called": [], "failed": []}
    for t in ledger.read(run_id):
        if t.kind == "model.called":
            out["called"].append([t.agent, t.data.get("node"), t.data["retries"]])
        elif t.kind == "model.failed":
            out["failed"].append([t.agent, t.data.get("node"), t.data["attempt"], t.data["error"]])
    return out


def models(env: Env) -> dict[str, Any]:
    """Model calls as Ray tasks: an agent whose calls need ``special`` (its run hosted on the
    head) has every request sent from that node; then two agents needing ``gateway`` (one
    unit on each of two nodes added here) have a try in flight on each when one of the two
    nodes is removed."""
    ledger = env.host.ledger
    agents = Agents()
    env.models.responder = agents
    placed = env.host.start(env.spec("placed", PLACED), base_dir=HERE, node=env.head.node_id)
    placed_on = hosting_node(env, placed)
    placed_status = env.host.wait(placed, timeout=60)
    placed_requests = sum(agents.seen.values())

    gateways = [
        env.cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE, resources={"gateway": 1})
        for _ in range(2)
    ]
    env.cluster.wait_for_nodes()
    agents.seen.clear()
    agents.gate.clear()
    lost = env.host.start(env.spec("gateway", GATEWAY), base_dir=HERE, node=env.head.node_id)
    try:
        wait_for(lambda: sum(agents.seen.values()) >= 2, 60, "a try in flight on each gateway")
        before = hashes(ledger, lost)
        env.cluster.remove_node(gateways[0])
        wait_for(
            lambda: any(t.kind == "model.failed" for t in ledger.read(lost)),
            60,
            "the lost try is recorded",
        )
    finally:
        agents.gate.set()
    lost_status = env.host.wait(lost, timeout=90)
    after = _model_calls(ledger, lost)
    env.cluster.remove_node(gateways[1])  # the later scenarios count the nodes alive
    return {
        "nodes": {
            "head": env.head.node_id,
            "special": env.special.node_id,
            "removed": gateways[0].node_id,
            "survivor": gateways[1].node_id,
        },
        "placed": {
            "status": placed_status,
            "verified": ledger.verify(placed).ok,
            "hosted_on_head": placed_on == env.head.node_id,
            "calls": _model_calls(ledger, placed),
            "requests": placed_requests,
            "latency_ms": [
                t.data["latency_ms"] for t in ledger.read(placed) if t.kind == "model.called"
            ],
            "kinds": [k for k in kinds(ledger, placed) if not k.startswith("lease")],
        },
        "lost": {
            "status": lost_status,
            "verified": ledger.verify(lost).ok,
            "prefix_kept": hashes(ledger, lost, len(before)) == before,
            "calls": after,
            "requests": dict(agents.seen),
        },
    }


def failover(env: Env) -> dict[str, Any]:
    """12 swarm runs over 3 nodes and one parked on an approval, their spec files deleted
    once they started; the plain node is removed mid-run."""
    ledger = env.host.ledger
    swarm = env.spec("swarm", SWARM)
    nodes = [env.head.node_id, env.special.node_id, env.plain.node_id]
    runs: dict[str, str] = {}
    for i in range(12):
        node = nodes[i % 3]
        rid = env.host.start(swarm, base_dir=HERE, node=node, overrides={"goal": f"swarm-{i}"})
        runs[rid] = node
    launch = env.spec("launch", LAUNCH)
    parked = env.host.start(launch, base_dir=HERE, node=env.plain.node_id)
    # The spec files are gone before the loss: a survivor rebuilds a run from the spec text
    # its run.booted recorded (the driver sent it), never from the file.
    swarm.unlink()
    launch.unlink()
    wait_for(lambda: ledger.state_at(parked)["status"] == "paused", 60, "the launch run parks")
    lost = [r for r, n in runs.items() if n == env.plain.node_id]
    wait_for(lambda: all(ledger.run(r).head >= 20 for r in runs), 60, "every run is under way")
    before = {r: hashes(ledger, r) for r in [*runs, parked]}
    heads_before = {r: len(h) for r, h in before.items()}
    removed_at = time.time()
    env.cluster.remove_node(env.plain)
    removed_us = int(removed_at * 1_000_000)

    def first_commit_after(rid: str) -> float | None:
        for t in ledger.read(rid, heads_before[rid] + 1):
            if t.ts > removed_us:
                return (t.ts - removed_us) / 1e6
        return None

    wait_for(
        lambda: all(
            ledger.state_at(r)["status"] in ("completed", "failed", "stopped") for r in runs
        ),
        150,
        "every swarm run ends",
    )
    parked_status = ledger.state_at(parked)["status"]
    parked_kinds = kinds(ledger, parked)
    decide(
        ledger,
        parked,
        _requested(ledger, parked),
        granted=True,
        by="tester",
        reason="approved after the move",
        now_us=lambda: time.time_ns() // 1000,
    )
    parked_end = env.host.wait(parked, timeout=60)
    # the effects of this scenario's runs (others' runs write to the same file)
    effects = [
        ln for ln in env.effects.read_text(encoding="utf-8").splitlines() if ln.startswith("swarm-")
    ]
    started: dict[str, int] = {}
    completed: list[str] = []
    unknown = 0
    for r in runs:
        calls: dict[str, str] = {}
        for t in ledger.read(r):
            if t.kind == "tool.started" and t.data["tool"] == "effect":
                key = t.data["args"]["key"]
                calls[t.data["call_id"]] = key
                started[key] = started.get(key, 0) + 1
            elif t.kind == "tool.completed" and t.data["tool"] == "effect":
                completed.append(calls[t.data["call_id"]])
            elif t.kind == "tool.unknown":
                unknown += 1
    return {
        "runs": list(runs),
        "lost": lost,
        "parked": parked,
        "status": {r: ledger.state_at(r)["status"] for r in runs},
        "verified": {r: ledger.verify(r).ok for r in [*runs, parked]},
        "prefix_kept": {
            r: hashes(ledger, r, heads_before[r]) == before[r] for r in [*runs, parked]
        },
        "heads_before": heads_before,
        "resumed": {r: kinds(ledger, r).count("run.resumed") for r in runs},
        "recommit_s": {r: first_commit_after(r) for r in lost},
        "spec_files_left": [p.exists() for p in (swarm, launch)],
        "parked_status_after_move": parked_status,
        "parked_resumed": parked_kinds.count("run.resumed"),
        "parked_end": parked_end,
        "effect_lines": effects,
        "effect_started": started,
        "effect_completed": completed,
        "unknown": unknown,
    }


def _requested(ledger: BaseLedger, run_id: str) -> int:
    asked = [int(t.data["proposal"]) for t in ledger.read(run_id) if t.kind == "approval.requested"]
    return asked[-1]


def fencing(env: Env) -> dict[str, Any]:
    """A host paused (SIGSTOP) past its lease; another takes its run over; continued
    (SIGCONT), its next append is refused."""
    ledger = env.host.ledger
    swarm = env.spec("fence", SWARM)
    rid = env.host.start(
        swarm, base_dir=HERE, node=env.special.node_id, overrides={"goal": "fenced"}
    )
    actor = ray.get_actor(f"telic-host-{env.special.node_id}", namespace="telic")
    # The actor's methods are untyped: ray.get cannot tell a reference from a list of them.
    described = cast("dict[str, Any]", ray.get(actor.describe.remote(), timeout=30))
    pid = int(described["host"].split(":")[1])
    wait_for(lambda: ledger.run(rid).head >= 15, 60, "the run is under way")
    first = ledger.leases.get(rid)
    assert first is not None
    os.kill(pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    time.sleep(0.3)  # a renewal already on its way to PostgreSQL lands
    held = ledger.leases.get(rid)
    try:
        try:
            # Usually a few seconds (the lease, then a sweep); once, in a full CI run, more
            # than 60 s: the wait is generous, and a timeout says what the lease table held.
            wait_for(
                lambda: (le := ledger.leases.get(rid)) is not None and le.epoch > first.epoch,
                150,
                "another host takes the run over",
            )
        except TimeoutError as exc:
            leases = [(le.run_id, le.holder, le.epoch, le.released) for le in ledger.leases.all()]
            stale = [le.run_id for le in ledger.leases.stale()]
            raise TimeoutError(f"{exc}; leases {leases}; stale {stale}") from None
        taken_after = time.monotonic() - stopped_at
        head_at_takeover = ledger.run(rid).head
    finally:
        os.kill(pid, signal.SIGCONT)
    status = env.host.wait(rid, timeout=90)
    after = cast("dict[str, Any]", ray.get(actor.describe.remote(), timeout=30))
    second = ledger.leases.get(rid)
    assert held is not None and second is not None
    ks = kinds(ledger, rid)
    return {
        "status": status,
        "verified": ledger.verify(rid).ok,
        "first": {"holder": first.holder, "epoch": first.epoch},
        "second": {"holder": second.holder, "epoch": second.epoch},
        "taken_after_s": taken_after,
        "held_expires_us": held.expires_us,
        "second_acquired_us": second.acquired_us,
        "head_at_takeover": head_at_takeover,
        "old_host_lost": after["lost"].get(rid),
        "resumed": ks.count("run.resumed"),
        "seqs_contiguous": [t.seq for t in ledger.read(rid)] == list(range(1, len(ks) + 1)),
    }


def serving(env: Env) -> dict[str, Any]:
    """``telic serve --ray``: a run posted to it is hosted on the cluster, and its event
    stream (and that of a run started elsewhere) follows live, in order, with catch-up."""
    import httpx
    from tests.serve.sse import frames

    from telic.access import TokenStore

    token = TokenStore(env.host.ledger).create("ops", ["operate"])[0]
    headers = {"Authorization": f"Bearer {token}"}
    port = _free_port()
    log = env.dir / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "telic", "serve", "--db", env.db, "--port", str(port),
                "--ray", env.address, "--spec-dir", str(env.dir / "specs"),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(url), 60, "telic serve answers")
        posted = httpx.post(
            url + "/runs",
            json={"toml": SWARM.replace('"swarm"', '"served"'), "directory": str(HERE)},
            headers=headers,
            timeout=60,
        )
        posted.raise_for_status()
        served = posted.json()["id"]
        other = env.host.start(
            env.spec("other", SWARM), base_dir=HERE, overrides={"goal": "elsewhere"}
        )
        streams: dict[str, dict[str, Any]] = {rid: {} for rid in (served, other)}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            live = {rid: pool.submit(_stream, url, rid, headers, frames) for rid in streams}
            for rid, future in live.items():
                streams[rid]["live"] = future.result()
        # a late client catches up from seq 1 once the run has ended
        for rid in streams:
            streams[rid]["late"] = _stream(url, rid, headers, frames)
        for rid in streams:
            last = list(env.host.ledger.read(rid))[-1]
            streams[rid]["end_us"] = last.ts
        heads = {rid: env.host.ledger.run(rid).head for rid in (served, other)}
        return {
            "served": served,
            "other": other,
            "served_hosted_on": _hosted_by_booted(env, served),
            "heads": heads,
            "streams": streams,
            "status": {rid: env.host.status(rid) for rid in (served, other)},
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _hosted_by_booted(env: Env, run_id: str) -> bool:
    booted = next(iter(env.host.ledger.read(run_id, 1, 1)))
    return booted.data["config"].get("hosted") == "ray"


def _stream(url: str, rid: str, headers: dict[str, str], frames: Any) -> dict[str, list[int]]:
    """The seqs a client reading from seq 1 gets, and when (µs) each arrived."""
    import httpx

    seqs: list[int] = []
    received: list[int] = []
    with (
        httpx.Client(timeout=120) as client,
        client.stream("GET", f"{url}/runs/{rid}/events", params={"from": 1}, headers=headers) as r,
    ):
        for f in frames(r):
            if f.id is not None:
                seqs.append(int(f.id))
                received.append(time.time_ns() // 1000)
            if f.event in ("run.completed", "run.failed", "run.stopped"):
                break
    return {"seqs": seqs, "received_us": received}


def _up(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: Env) -> dict[str, Any]:
    """``telic run SPEC --ray ADDRESS``: the run is hosted on the cluster, its transcript
    printed from the ledger as it goes."""
    path = env.spec("cli", LOCATE)
    done = subprocess.run(
        [
            sys.executable, "-m", "telic", "run", str(path), "--ray", env.address,
            "--db", env.db, "--out", str(env.dir / "out"),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    started = [ln for ln in lines if ln.startswith("run ") and "started on the Ray cluster" in ln]
    rid = started[0].split()[1] if started else None
    hosted = rid is not None and is_cluster_run(env.host.ledger, rid)
    return {
        "exit": done.returncode,
        "stdout": done.stdout[-3000:],
        "stderr": done.stderr[-2000:],
        "run": rid,
        "hosted": hosted,
        "status": env.host.status(rid) if rid else None,
    }


def status(env: Env) -> dict[str, Any]:
    """``telic cluster status --json`` after the others (one node removed by then)."""
    done = subprocess.run(
        [
            sys.executable, "-m", "telic", "cluster", "status", "--ray", env.address,
            "--db", env.db, "--json",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    table = subprocess.run(
        [sys.executable, "-m", "telic", "cluster", "status", "--ray", env.address, "--db", env.db],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    ledger = env.host.ledger
    runs = [i.id for i in ledger.runs() if i.head and is_cluster_run(ledger, i.id)]
    report = json.loads(done.stdout) if done.returncode == 0 else None
    return {
        "exit": done.returncode,
        "stderr": done.stderr[-2000:],
        "report": report,
        "runs": runs,
        "table_exit": table.returncode,
        "table": table.stdout[-4000:],
        "table_stderr": table.stderr[-2000:],
    }


SCENARIOS: dict[str, Callable[[Env], dict[str, Any]]] = {
    "resources": resources,
    "models": models,
    "cli": cli,
    "serving": serving,
    "fencing": fencing,
    "failover": failover,
    "status": status,
}


def main(names: list[str]) -> int:
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    with environment() as env:
        results["_setup_s"] = time.monotonic() - t0
        for name in names:
            t = time.monotonic()
            try:
                results[name] = SCENARIOS[name](env)
            except Exception:
                results[name] = {"error": traceback.format_exc()}
            results[name]["_seconds"] = time.monotonic() - t
    print(MARK + json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
