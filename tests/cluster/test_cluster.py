"""Runs on a real 3-node Ray cluster over the PostgreSQL ledger (issue 13).

Every packet stays on loopback: Ray gives its nodes the machine's outward address, so the
scenarios (``scenarios.py`` beside this file) run in a child process inside a network
namespace that has only loopback (``unshare -n``, then ``ip link set lo up``: Ray then uses
127.0.0.1), and reach PostgreSQL through its Unix socket, which the namespace does not cut.
The child runs every scenario on one cluster and prints their facts as JSON; each test here
asserts on its scenario's part. Without ``TELIC_PG_DSN``, the socket, or the right to
``unshare`` (root), every test skips with the reason; a child that prints no result fails
every test with its output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCENARIOS = HERE / "scenarios.py"
ORDER = ("resources", "models", "cli", "serving", "fencing", "failover", "status")
DSN = os.environ.get("TELIC_PG_DSN", "")
SOCKET_DIR = os.environ.get("TELIC_PG_SOCKET_DIR", "/var/run/postgresql")
TIMEOUT_S = 280

pytestmark = pytest.mark.cluster


def socket_dsn() -> str:
    """``TELIC_PG_DSN``'s user and database, through the server's Unix socket."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(DSN)
    user = parts.get("user") or "postgres"
    password = parts.get("password")
    auth = f"{user}:{password}" if password else str(user)
    port = f"&port={parts['port']}" if parts.get("port") else ""
    return f"postgresql://{auth}@/{parts.get('dbname') or 'postgres'}?host={SOCKET_DIR}{port}"


def why_not() -> str | None:
    """Why the scenarios cannot run here, or None."""
    if not DSN:
        return "set TELIC_PG_DSN (e.g. postgresql://postgres@127.0.0.1:5432/test) to run them"
    try:
        import ray  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        return "ray is not installed: pip install 'telic[ray]'"
    if not Path(SOCKET_DIR).is_dir() or not any(Path(SOCKET_DIR).glob(".s.PGSQL.*")):
        return f"no PostgreSQL Unix socket in {SOCKET_DIR} (set TELIC_PG_SOCKET_DIR)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare and ip (util-linux, iproute2) are needed for a loopback-only namespace"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        return f"unshare -n is not permitted here ({probe.stderr.decode(errors='replace')[:200]})"
    return None


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    reason = why_not()
    if reason is not None:
        pytest.skip(reason)
    env = {
        **os.environ,
        "TELIC_CLUSTER_DSN": socket_dsn(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
        "RAY_DEDUP_LOGS": "0",
    }
    cmd = [
        "unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
        sys.executable, str(SCENARIOS), *ORDER,
    ]  # fmt: skip
    # In a session of its own, so that a timeout takes the child's whole process group
    # (its Ray processes included) with it.
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        try:
            stderr = proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:  # a daemon of its own session still holds the pipe
            stderr = ""
        pytest.fail(f"the cluster scenarios took over {TIMEOUT_S} s:\n{stderr[-3000:]}")
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        pytest.fail(
            f"the cluster scenarios printed no result (exit {done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return json.loads(lines[-1].removeprefix("RESULT "))


def part(results: dict[str, Any], name: str) -> dict[str, Any]:
    got: dict[str, Any] | None = results.get(name)
    if got is None:
        pytest.fail(f"the scenario {name!r} reported nothing")
    if "error" in got:
        pytest.fail(f"the scenario {name!r} failed:\n{got['error']}")
    return got


def test_a_tool_needing_a_custom_resource_runs_only_on_the_node_that_has_it(
    results: dict[str, Any],
) -> None:
    r = part(results, "resources")
    assert r["status"] == "completed"
    assert r["verified"]
    assert r["hosted_on"] == r["nodes"]["head"]  # the run lives on the head...
    assert r["ran_on"] == [r["nodes"]["special"]]  # ...its call ran where `special` is
    assert r["no_node"].startswith("no live node ffff"), r["no_node"]  # a ClusterError


def test_a_ray_task_past_its_timeout_is_cancelled_and_its_errors_are_the_tools_own(
    results: dict[str, Any],
) -> None:
    r = part(results, "resources")
    assert r["outcomes"]["slow"][0] == "tool.timeout"
    assert r["slow_marks"] == ["start"]  # cancelled: it never reached its end
    assert r["outcomes"]["broken"] == ["tool.failed", "ValueError", "broken on purpose"]


def test_an_agents_model_calls_needing_a_custom_resource_are_sent_only_from_its_node(
    results: dict[str, Any],
) -> None:
    r = part(results, "models")
    placed, nodes = r["placed"], r["nodes"]
    assert placed["status"] == "completed" and placed["verified"]
    assert placed["hosted_on_head"]  # the run lives on the head...
    # ...and each of its requests was sent from the node with `special`, none failed
    assert placed["calls"] == {"called": [["asker", nodes["special"], 0]] * 2, "failed": []}
    assert placed["requests"] == 2  # the server saw exactly the recorded calls
    assert placed["kinds"] == [
        "run.booted", "agent.spawned",
        "tick.started", "model.called", "proposal.made", "proposal.accepted",
        "tool.started", "tool.completed", "tick.completed",
        "tick.started", "model.called", "proposal.made", "proposal.accepted",
        "agent.terminated", "tick.completed", "run.completed",
    ]  # fmt: skip


def test_a_model_call_whose_node_is_removed_is_a_recorded_failure_then_a_retry(
    results: dict[str, Any],
) -> None:
    r = part(results, "models")
    lost, nodes = r["lost"], r["nodes"]
    assert lost["status"] == "completed" and lost["verified"]
    assert lost["prefix_kept"]  # nothing committed before the loss changed
    # one try was in flight on each gateway node; the removed node's became a model.failed...
    ((agent, node, attempt, error),) = lost["calls"]["failed"]
    assert (node, attempt) == (None, 1) and "Ray task was lost" in error, error
    # ...then the retry was answered from the survivor, as was every other call
    called = lost["calls"]["called"]
    assert {n for _, n, _ in called} == {nodes["survivor"]}
    assert [a for a, _, retries in called if retries == 1] == [agent]
    # the lost try's answer (a pause) reached no one: its retry was answered with a finish
    other = "y" if agent == "x" else "x"
    assert [a for a, _, _ in called].count(agent) == 1
    assert [a for a, _, _ in called].count(other) == 2
    assert sum(lost["requests"].values()) == len(called) + 1  # the lost try reached the server


def test_telic_run_with_ray_hosts_the_run_and_prints_its_transcript(
    results: dict[str, Any],
) -> None:
    r = part(results, "cli")
    assert r["exit"] == 0, (r["stdout"], r["stderr"])
    assert r["hosted"] and r["status"] == "completed"
    assert "BOOT: goal=" in r["stdout"] and "DONE:" in r["stdout"]


def test_serve_hosts_runs_on_the_cluster_and_streams_them_live_in_order(
    results: dict[str, Any],
) -> None:
    r = part(results, "serving")
    assert r["served_hosted_on"]  # booted by a cluster host, not by the server
    for rid in (r["served"], r["other"]):
        assert r["status"][rid] == "completed"
        head = r["heads"][rid]
        live, late = r["streams"][rid]["live"], r["streams"][rid]["late"]
        assert live["seqs"] == list(range(1, head + 1)), rid  # in order, no gap, no duplicate
        assert late["seqs"] == list(range(1, head + 1)), rid  # catch-up after the end
        # live: most of the run reached the client before the run's last commit
        before_end = sum(1 for t in live["received_us"] if t < r["streams"][rid]["end_us"])
        assert before_end > head // 2, (rid, before_end, head)


def test_a_host_paused_past_its_lease_is_fenced_when_it_continues(
    results: dict[str, Any],
) -> None:
    r = part(results, "fencing")
    assert r["status"] == "completed"
    assert r["verified"]
    assert r["seqs_contiguous"]
    assert r["second"]["epoch"] > r["first"]["epoch"]
    assert r["second"]["holder"] != r["first"]["holder"]
    # taken over only once the paused owner's lease had expired (on PostgreSQL's clock)
    assert r["second_acquired_us"] >= r["held_expires_us"]
    # continued, the old host found the run lost: its append refused (Fenced), or its renewal
    # (LeaseLost), whichever it tried first; nothing of it reached the chain
    assert r["old_host_lost"] in ("Fenced", "LeaseLost")
    assert r["resumed"] == 1


def test_a_lost_node_loses_nothing_committed_and_runs_no_effect_twice(
    results: dict[str, Any],
) -> None:
    r = part(results, "failover")
    assert len(r["runs"]) == 12 and len(r["lost"]) == 4
    assert all(s == "completed" for s in r["status"].values()), r["status"]
    assert all(r["verified"].values()), r["verified"]
    assert all(r["prefix_kept"].values()), r["prefix_kept"]
    assert r["spec_files_left"] == [False, False]  # rebuilt from the recorded spec text
    for rid in r["lost"]:
        assert r["resumed"][rid] == 1, rid  # resumed once, on a survivor
        assert r["recommit_s"][rid] is not None and r["recommit_s"][rid] < 30, r["recommit_s"]
    lines: list[str] = r["effect_lines"]
    assert len(lines) == len(set(lines)), "a non-idempotent effect ran twice"
    assert set(lines) <= set(r["effect_started"])  # nothing ran that was not on record first
    assert all(n == 1 for n in r["effect_started"].values())  # never started again on resume
    assert set(r["effect_completed"]) <= set(lines)  # every recorded result had its effect


def test_a_run_parked_on_approval_stays_parked_across_the_move(results: dict[str, Any]) -> None:
    r = part(results, "failover")
    assert r["parked_status_after_move"] == "paused"
    assert r["parked_resumed"] == 1
    assert r["verified"][r["parked"]]
    assert r["prefix_kept"][r["parked"]]
    assert r["parked_end"] == "completed"  # granted after the move, it ran on a survivor


def test_cluster_status_shows_nodes_runs_and_leases(results: dict[str, Any]) -> None:
    r = part(results, "status")
    assert r["exit"] == 0, r["stderr"]
    report = r["report"]
    alive = [n for n in report["nodes"] if n["alive"]]
    assert len(alive) == 2  # the failover removed one of the three
    assert any(not n["alive"] for n in report["nodes"])
    assert {le["run"] for le in report["leases"]} >= set(r["runs"])
    assert all(le["age_s"] >= 0 for le in report["leases"])
    assert r["table_exit"] == 0, r["table_stderr"]
    assert "epoch" in r["table"] and r["runs"][0] in r["table"]
