"""What the browser tests (and ``bench/groups/dashboard.py``) need: a real ``telic serve`` in a
subprocess on a free loopback port, Debian's Chromium driven by Playwright, a synthetic run of
any length, and a spec of function minds whose run can be watched, forked, resumed and
approved."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from telic.kinds import AgentRecord, MemoryUpdated, ObservationRecorded, RunBooted
from telic.ledger import BaseLedger
from telic.transition import draft

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Debian's Chromium, headless, with nothing reaching out to the network."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def telic(cwd: Path, *args: str) -> str:
    """Run the real ``telic`` entry point; its stdout, or an AssertionError with stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "telic", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "TELIC_DB"},
    )
    if proc.returncode != 0:
        raise AssertionError(f"telic {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def token(cwd: Path, db: Path, name: str, *scopes: str) -> str:
    args = ["token", "create", name, "--db", str(db), "--json"]
    for s in scopes:
        args += ["--scope", s]
    return str(json.loads(telic(cwd, *args))["token"])


class Server:
    """``telic serve`` on a ledger, in a subprocess, on a free loopback port."""

    def __init__(self, cwd: Path, db: Path, *, anonymous_read: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--db", str(db), "--port", str(self.port)]
        args += ["--spec-dir", str(cwd / "specs")]
        if anonymous_read:
            args.append("--anonymous-read")
        self.log = (cwd / f"serve-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "telic", *args],
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "TELIC_DB"},
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"telic serve exited {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise AssertionError("telic serve did not answer /health in 30 s") from None
                time.sleep(0.05)

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def synthetic_run(ledger: BaseLedger, run_id: str, transitions: int, *, batch: int = 1000) -> None:
    """A run of ``transitions`` transitions (a boot, then agents' memory updates and
    observations), appended in groups: a long run without the time it takes to run one."""
    ledger.create_run(run_id)
    ts = 1_700_000_000_000_000
    boot = RunBooted(
        goal=f"a synthetic run of {transitions} transitions",
        agents=(AgentRecord(name="a", role="worker"), AgentRecord(name="b", role="worker")),
        budget={"ticks": 1_000_000.0},
    )
    ledger.append(run_id, [draft(boot, ts=ts)], expected=1)
    seq = 2
    while seq <= transitions:
        drafts = []
        for s in range(seq, min(transitions, seq + batch - 1) + 1):
            agent = "a" if s % 2 else "b"
            if s % 3:
                payload: Any = ObservationRecorded(
                    agent=agent, source="synthetic", content={"n": s}
                )
            else:
                payload = MemoryUpdated(agent=agent, key=f"k{s % 7}", value=s)
            drafts.append(draft(payload, ts=ts + s, tick=s // 100, agent=agent))
        ledger.append(run_id, drafts, expected=seq)
        seq += len(drafts)


SWARM = '''
"""Function minds and local tools for the dashboard's browser tests."""
import asyncio

from telic.minds import FunctionMind
from telic.proposal import Proposal
from telic.tools import tool

STEPS = 10


@tool
async def step(n: int) -> dict[str, int]:
    """One slow step, so a watcher sees the run grow."""
    await asyncio.sleep(0.5)
    return {"n": n}


@tool
async def pay(amount: int) -> dict[str, int]:
    """Pay for something: high-impact, needs a human's approval."""
    return {"paid": amount}


def progress(state) -> float:
    return min(1.0, state.spent.tool_calls / STEPS)


def stepper() -> FunctionMind:
    def propose(view):
        done = [o for o in view.observations if o.source == "tool:step"]
        if len(done) < STEPS:
            return Proposal(action="tool", args={"tool": "step", "args": {"n": len(done) + 1}},
                            reason=f"step {len(done) + 1} of {STEPS}")
        return Proposal(action="finish", args={"result": {"steps": len(done)}})
    return FunctionMind(propose, name="stepper")


def payer() -> FunctionMind:
    def propose(view):
        if not any(o.source == "tool:pay" for o in view.observations):
            return Proposal(action="tool", args={"tool": "pay", "args": {"amount": 120}},
                            reason="the hotel needs a deposit")
        return Proposal(action="finish", args={"result": "paid"})
    return FunctionMind(propose, name="payer")
'''

STEPS_SPEC = """
goal = "take ten slow steps"
tools = ["swarm:step"]
progress = "swarm:progress"
[budget]
ticks = 20
tool_calls = 12
[[agents]]
name = "walker"
role = "walker"
mind = "swarm:stepper"
tools = ["step"]
"""

TEAM_SPEC = """
goal = "walk, two of us as a team"
tools = ["swarm:step"]
intensity = 2
[budget]
ticks = 20
tool_calls = 40
[policy]
stall_ticks = 0
[[agents]]
name = "w1"
role = "walker"
mind = "swarm:stepper"
tools = ["step"]
[[agents]]
name = "lead"
role = "lead"
mind = "swarm:stepper"
tools = ["step"]
[[agents]]
name = "w2"
role = "walker"
mind = "swarm:stepper"
tools = ["step"]
[[teams]]
name = "walkers"
roles = ["walker"]
strategy = "one_for_all"
intensity = 4
period_s = 10
"""

PAY_SPEC = """
goal = "pay the deposit, with a human's approval"
tools = ["swarm:pay"]
high_impact = ["pay"]
[budget]
ticks = 5
[[agents]]
name = "treasurer"
role = "treasurer"
mind = "swarm:payer"
tools = ["pay"]
"""


def write_swarm(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "swarm.py").write_text(SWARM)
    return directory
