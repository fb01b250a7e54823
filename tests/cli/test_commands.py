"""Every CLI command through the real entry point, including bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.cli.conftest import Telic, last_run


@pytest.fixture
def demo_run(telic: Telic, db: Path) -> str:
    telic("demo", "--instant", "--db", str(db))
    return str(last_run(telic, db)["id"])


def test_runs_json(telic: Telic, db: Path, demo_run: str) -> None:
    runs = json.loads(telic("runs", "--db", str(db), "--json").stdout)
    assert [r["id"] for r in runs] == [demo_run]
    r = runs[0]
    assert r["goal"].startswith("Plan 3-day") and r["status"] == "completed" and r["parent"] is None
    assert r["transitions"] > 100


def test_trace_json_lines_and_filters(telic: Telic, db: Path, demo_run: str) -> None:
    lines = telic(
        "trace", demo_run, "--db", str(db), "--json", "--kind", "tool.*"
    ).stdout.splitlines()
    rows = [json.loads(x) for x in lines]
    assert rows and all(r["kind"].startswith("tool.") for r in rows)
    for key in ("seq", "tick", "kind", "agent", "payload", "causes", "ts", "hash"):
        assert key in rows[0]
    window = [
        json.loads(x)
        for x in telic(
            "trace", demo_run, "--db", str(db), "--json", "--from", "5", "--to", "9"
        ).stdout.splitlines()
    ]
    assert [r["seq"] for r in window] == [5, 6, 7, 8, 9]
    assert "tick.started" in telic("trace", demo_run, "--db", str(db)).stdout


def test_state_and_diff(telic: Telic, db: Path, demo_run: str) -> None:
    state = json.loads(telic("state", demo_run, "--db", str(db), "--json", "--at", "20").stdout)
    assert state["seq"] == 20 and state["goal"].startswith("Plan")
    final = json.loads(telic("state", demo_run, "--db", str(db), "--json").stdout)
    assert final["status"] == "completed" and set(final["plan"]) == {
        "transport",
        "hotel",
        "activities",
        "budget",
    }
    diff = json.loads(telic("diff", demo_run, "20", "40", "--db", str(db), "--json").stdout)
    assert any(d["path"] == "seq" and d["before"] == 20 and d["after"] == 40 for d in diff)
    assert "progress" in telic("state", demo_run, "--db", str(db)).stdout


def test_replay_and_verify(telic: Telic, db: Path, demo_run: str) -> None:
    rep = json.loads(telic("replay", demo_run, "--db", str(db), "--json").stdout)
    assert rep["ok"] and rep["checked"] >= 6
    assert telic("replay", demo_run, "--db", str(db), "--to", "50").returncode == 0
    assert telic("verify", demo_run, "--db", str(db)).returncode == 0
    assert telic("verify", "--all", "--db", str(db)).returncode == 0


def test_verify_fails_on_a_tampered_ledger(telic: Telic, db: Path, demo_run: str) -> None:
    with sqlite3.connect(db) as con:
        (payload,) = con.execute("SELECT payload FROM transitions WHERE seq = 30").fetchone()
        con.execute(
            "UPDATE transitions SET payload = ? WHERE seq = 30",
            (payload.replace(b'"', b"'", 1) if payload.count(b'"') > 2 else payload + b" ",),
        )
    proc = telic("verify", demo_run, "--db", str(db), check=False)
    assert proc.returncode == 1
    assert "seq 30" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_fork_then_resume_gives_a_different_ending(telic: Telic, db: Path, demo_run: str) -> None:
    # Fork at the end of tick 2 (before the exploration) and continue with another seed.
    trace = [
        json.loads(x)
        for x in telic(
            "trace", demo_run, "--db", str(db), "--json", "--kind", "tick.completed"
        ).stdout.splitlines()
    ]
    at = next(t["seq"] for t in trace if t["payload"]["tick"] == 2)
    forked = json.loads(telic("fork", demo_run, "--at", str(at), "--db", str(db), "--json").stdout)
    assert forked["parent"] == {"run": demo_run, "seq": at}
    fork_id = forked["id"]
    # The fork shares the parent's prefix: same state at the fork point.
    assert json.loads(
        telic("state", fork_id, "--at", str(at), "--db", str(db), "--json").stdout
    ) == json.loads(telic("state", demo_run, "--at", str(at), "--db", str(db), "--json").stdout)
    out = telic("resume", fork_id, "--seed", "3", "--instant", "--db", str(db)).stdout
    assert "DONE:" in out
    runs = {r["id"]: r for r in json.loads(telic("runs", "--db", str(db), "--json").stdout)}
    assert runs[fork_id]["status"] == "completed" and runs[fork_id]["parent"] == {
        "run": demo_run,
        "seq": at,
    }
    assert runs[fork_id]["head_hash"] != runs[demo_run]["head_hash"]
    parent_show = telic("show", demo_run, "--db", str(db)).stdout
    fork_show = telic("show", fork_id, "--db", str(db)).stdout
    assert parent_show != fork_show
    assert telic("verify", fork_id, "--db", str(db)).returncode == 0


def test_kill_9_during_demo_then_resume_completes_and_loses_nothing(
    telic: Telic, db: Path, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "telic", "demo", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "TELIC_DB"},
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if line.startswith("TICK 03"):
            break
    time.sleep(0.2)  # let the run get into tick 4
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()
    assert any(x.startswith("TICK 03") for x in seen), seen
    before = last_run(telic, db)
    rid = before["id"]
    prefix = [
        json.loads(x)["hash"]
        for x in telic("trace", rid, "--db", str(db), "--json").stdout.splitlines()
    ]
    assert before["status"] == "running"
    out = telic("resume", rid, "--instant", "--db", str(db)).stdout
    assert "RESUME:" in out and "DONE:" in out
    after = [
        json.loads(x)["hash"]
        for x in telic("trace", rid, "--db", str(db), "--json").stdout.splitlines()
    ]
    assert after[: len(prefix)] == prefix  # nothing committed was lost or changed
    assert last_run(telic, db)["status"] == "completed"
    assert telic("verify", rid, "--db", str(db)).returncode == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "r-nope"], "no run 'r-nope'"),
        (["state", "RUN", "--at", "999999"], "outside run"),
        (["trace", "RUN", "--from", "0"], "bad range"),
        (["fork", "RUN", "--at", "999999"], "outside run"),
        (["resume", "RUN"], "cannot be resumed"),
    ],
)
def test_errors_are_one_line_without_traceback(
    telic: Telic, db: Path, demo_run: str, args: list[str], needle: str
) -> None:
    proc = telic(*[demo_run if a == "RUN" else a for a in args], "--db", str(db), check=False)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_and_non_ledger_files(telic: Telic, tmp_path: Path) -> None:
    missing = telic("runs", "--db", str(tmp_path / "nope.db"), check=False)
    assert missing.returncode == 1 and "no ledger at" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    bad = telic("runs", "--db", str(junk), check=False)
    assert (
        bad.returncode == 1 and "not a telic ledger" in bad.stderr and "Traceback" not in bad.stderr
    )
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE t (x)")
    proc = telic("runs", "--db", str(other), check=False)
    assert proc.returncode == 1 and "not a telic ledger" in proc.stderr
    scheme = telic("runs", "--db", "mysql://x", check=False)
    assert scheme.returncode == 1 and "no ledger backend" in scheme.stderr


def test_every_command_and_option_has_help(telic: Telic) -> None:
    from typer.main import get_command

    from telic.cli import app

    group = get_command(app)
    commands = getattr(group, "commands", {})
    assert {
        "demo",
        "runs",
        "show",
        "trace",
        "state",
        "diff",
        "replay",
        "fork",
        "resume",
        "verify",
    } <= set(commands)
    for name, cmd in commands.items():
        assert cmd.help, f"command {name} has no help"
        for param in cmd.params:
            if param.param_type_name == "option":
                assert getattr(param, "help", None), f"option {param.name} of {name} has no help"
            else:
                assert getattr(param, "help", None) is not None or param.name in ("run_id",), (
                    f"argument {param.name} of {name} has no help"
                )
        assert telic(name, "--help").returncode == 0


@pytest.mark.parametrize("module", ["telic", "telic.cli"])
def test_every_module_entry_point_has_every_command(module: str, tmp_path: Path) -> None:
    """``python -m telic`` and ``python -m telic.cli`` both list the commands registered by the
    CLI's other modules (``python -m telic.cli`` once failed on a circular import)."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("demo", "serve", "approve", "cluster", "leases"):
        assert f" {command} " in proc.stdout, command
