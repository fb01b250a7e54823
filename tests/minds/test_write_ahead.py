"""Nothing answered is paid for twice: ``telic run`` is killed with SIGKILL while one agent's
model call has been answered and another's is still out; ``telic resume`` asks the same tick
again and reuses the recorded answer. The server counts the requests.

Real parts only: the CLI in a subprocess, a SQLite ledger file, the local model server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from telic.errors import LedgerError
from telic.ledger.sqlite import SQLiteLedger
from telic.minds.testing import ModelServer, Reply, ServerRequest

SPEC = """
goal = "Write-ahead model calls"
model = "openai:gpt-4.1-mini"

[budget]
ticks = 5

[scheduler]
max_retries = 0
timeout_s = 30

[policy]
mind_timeout_s = 60

[[agents]]
name = "fast"
role = "planner"

[[agents]]
name = "slow"
role = "verifier"
"""


def _agent(request: ServerRequest) -> str:
    text = json.dumps(request.body)
    return "fast" if "agent: fast" in text else "slow"


def _tick(request: ServerRequest) -> str:
    """The tick number the prompt asks about."""
    found = re.search(r"\ntick: (\d+)", request.body["messages"][1]["content"])
    assert found is not None
    return found.group(1)


def _finish(who: str) -> Reply:
    return Reply.propose(
        {"action": "finish", "args": {"result": who}, "confidence": 1.0, "reason": "done"},
        input_tokens=500,
        output_tokens=50,
    )


def _kinds(db: Path) -> list[tuple[str, str | None, int, dict[str, Any]]]:
    ledger = SQLiteLedger(str(db))
    try:
        runs = ledger.runs()
        if not runs:
            return []
        return [(t.kind, t.agent, t.tick, t.data) for t in ledger.read(runs[0].id)]
    finally:
        ledger.close()


def test_a_kill_mid_tick_then_resume_buys_no_answered_call_again(tmp_path: Path) -> None:
    resumed = threading.Event()

    def responder(request: ServerRequest) -> Reply:
        who = _agent(request)
        if who == "slow" and not resumed.is_set():
            return Reply.hang()  # still out when the process dies
        return _finish(who)

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    db = tmp_path / "ledger.db"
    with ModelServer(responder=responder) as server:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.openai_url,
            "OPENAI_API_KEY": "test-key",
        }
        cmd = [sys.executable, "-m", "telic", "run", str(spec), "--db", str(db)]
        proc = subprocess.Popen(
            cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    written = _kinds(db) if db.exists() else []
                except LedgerError:  # the run is still creating the file
                    written = []
                answered = any(k == "model.called" and a == "fast" for k, a, _, _ in written)
                out = {_agent(r) for r in server.requests}
                if answered and "slow" in out:
                    break
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.05)
            else:
                raise AssertionError("the run never reached the middle of its first tick")
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        before = [(_agent(r), _tick(r)) for r in server.requests]
        assert before == [("fast", "1"), ("slow", "1")] or before == [
            ("slow", "1"),
            ("fast", "1"),
        ]
        written = _kinds(db)
        assert [k for k, _, _, _ in written][-2:] == ["tick.started", "model.called"]

        resumed.set()
        ledger = SQLiteLedger(str(db))
        try:
            rid = ledger.runs()[0].id
        finally:
            ledger.close()
        done = subprocess.run(
            [sys.executable, "-m", "telic", "resume", rid, "--db", str(db)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        after = [(_agent(r), _tick(r)) for r in server.requests[len(before) :]]
        shown = subprocess.run(
            [sys.executable, "-m", "telic", "show", rid, "--db", str(db)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert after == [("slow", "1")]  # the same question (tick 1), and only the unanswered one
    transitions = _kinds(tmp_path / "ledger.db")
    calls = [(a, tick) for k, a, tick, _ in transitions if k == "model.called"]
    assert sorted(calls) == [("fast", 1), ("slow", 1)]
    ticks = [d["tick"] for k, _, _, d in transitions if k == "tick.started"]
    assert ticks == [1]  # tick 1 was asked again, not closed and started anew
    statuses = [d for k, _, _, d in transitions if k == "run.completed"]
    assert len(statuses) == 1

    # the transcript says what the calls took, and the resumed tick is below RESUME
    lines = shown.stdout.splitlines()
    resume = next(i for i, line in enumerate(lines) if line.startswith("RESUME:"))
    assert lines[resume - 1].startswith("TICK 01: models: 1 call, 550 tokens, USD 0.0003")
    assert lines[resume + 1].startswith("TICK 01 (resumed): models: 1 call, 550 tokens")
    assert "return condition met" in lines[resume + 1]
