"""``telic run SPEC``: the reference run from ``examples/trip.toml`` completes with each adapter
against a local model server, through the real entry point; a spec run resumes; every spec
error is one line on stderr and exit 1.

The server answers like the scripted roles: its responder reads the agent, role and tick from
the prompt, folds the same SQLite ledger (the kernel commits nothing while minds are asked, so
the head state is the view's state) and returns what the demo's role function proposes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telic.demo import DEFAULT_SEED, World
from telic.demo.roles import ROLES, explorer
from telic.kernel import AgentSpec
from telic.ledger import BaseLedger
from telic.ledger.sqlite import SQLiteLedger
from telic.minds import FunctionMind, View
from telic.minds.testing import ModelServer, Reply, ServerRequest
from telic.proposal import Proposal
from telic.state import RunState

ROOT = Path(__file__).resolve().parents[2]
TRIP = ROOT / "examples" / "trip.toml"
_WHO = re.compile(r"agent: (\S+)\nrole: (\S+)\ntick: (\d+)")


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():  # pyright: ignore[reportUnknownVariableType]
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:  # pyright: ignore[reportUnknownVariableType]
            yield from _texts(v)


class RoleResponder:
    """Answers a model request with the scripted role's proposal for the same view."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.world = World(DEFAULT_SEED)
        self.minds = {role: make(self.world) for role, (make, _) in ROLES.items()}
        self.explorers = explorer(self.world)
        self._ledger: BaseLedger | None = None
        self._lock = threading.Lock()
        self.asked: list[tuple[str, str, int]] = []

    def ledger(self) -> BaseLedger:
        with self._lock:
            if self._ledger is None:  # only read from: the kernel is the run's one writer
                self._ledger = SQLiteLedger(self.db, create=False)
            return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    def __call__(self, request: ServerRequest) -> Reply:
        found = next((m for t in _texts(request.body) if (m := _WHO.search(t))), None)
        assert found is not None, "the prompt names the agent, its role and the tick"
        agent, role, tick = found.group(1), found.group(2), int(found.group(3))
        self.asked.append((agent, role, tick))
        ledger = self.ledger()
        run_id = ledger.runs()[-1].id
        state = ledger.state_at(run_id)
        a = state["agents"][agent]
        view = View(
            agent=agent,
            role=role,
            tick=tick,
            goal=state["goal"],
            state=RunState(state),
            question=a["question"],
        )
        if role == "explorer":
            parent = AgentSpec(a["parent"], a["parent"], FunctionMind(lambda v: _idle()))
            mind = self.explorers(a["question"] or "", parent)
            proposal = mind.fn(view)
        else:
            proposal = self.minds[role](view)
        assert isinstance(proposal, Proposal)
        return Reply.propose(proposal.model_dump(mode="json", exclude={"model_calls"}))


def _idle() -> Proposal:
    return Proposal(action="remember", args={"key": "k", "value": 1})


def _telic(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "200", **(env or {})}
    for key in ("TELIC_DB", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        environ.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "telic", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=environ,
    )


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _run_reference(tmp_path: Path, api: str) -> tuple[Path, str, ModelServer, RoleResponder]:
    db = tmp_path / "ledger.db"
    responder = RoleResponder(db)
    server = ModelServer(responder=responder).start()
    env = {"OPENAI_BASE_URL": server.openai_url, "ANTHROPIC_BASE_URL": server.anthropic_url}
    try:
        stdout = _ok(
            _telic(
                tmp_path,
                "run",
                str(TRIP),
                "--model",
                f"{api}:any",
                "--db",
                str(db),
                "--out",
                str(tmp_path / "out"),
                env=env,
            )
        )
    except BaseException:
        server.close()
        responder.close()
        raise
    return db, stdout, server, responder


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_the_reference_run_completes_with_each_adapter(tmp_path: Path, api: str) -> None:
    db, stdout, server, responder = _run_reference(tmp_path, api)
    try:
        assert stdout.startswith('BOOT: goal="Plan 3-day Basel to Ticino trip under CHF 600"')
        assert (
            "SPAWN: 6 agents (researcher, planner, budgeter, skeptic, verifier, coordinator)"
            in stdout
        )
        assert "return condition met" in stdout and "exploration spawned" in stdout
        runs = json.loads(_ok(_telic(tmp_path, "runs", "--db", str(db), "--json")))
        assert len(runs) == 1 and runs[0]["status"] == "completed"
        run_id = runs[0]["id"]

        result = json.loads((tmp_path / "out" / run_id / "result.json").read_text())
        assert result["within_budget"] and result["plan"]["budget"]["total_chf"] <= 600
        assert (tmp_path / "out" / run_id / "itinerary.md").read_text().startswith("# Plan 3-day")

        trace = [
            json.loads(line)
            for line in _ok(
                _telic(tmp_path, "trace", run_id, "--db", str(db), "--json")
            ).splitlines()
        ]
        booted = trace[0]["payload"]
        assert booted["config"] == {"spec": {"path": str(TRIP), "model": f"{api}:any"}}
        # The spec's supervision tree: two teams under the root, and the coordinator.
        assert [(t["name"], t["agents"]) for t in booted["supervision"]["teams"]] == [
            ("research", ["researcher", "skeptic"]),
            ("planning", ["planner", "budgeter", "verifier"]),
        ]
        spawned = {
            t["payload"]["agent"]: t["payload"]["supervisor"]
            for t in trace
            if t["kind"] == "agent.spawned"
        }
        assert {a: spawned[a] for a in ("researcher", "planner", "coordinator")} == {
            "researcher": "research",
            "planner": "planning",
            "coordinator": "root",
        }
        explorers = [t["payload"] for t in trace if t["kind"] == "agent.spawned"][6:]
        assert explorers and all(
            e["supervisor"] == spawned[e["parent"]] for e in explorers
        )  # an explorer joins its parent's team
        calls = [t for t in trace if t["kind"] == "model.called"]
        assert len(calls) == len(server.requests) > 6  # every request the server got, recorded
        assert {r.api for r in server.requests} == {api}
        for c in calls:
            p = c["payload"]
            assert p["error"] is None and p["input_tokens"] > 0 and p["output_tokens"] > 0
            assert p["model"].endswith("any")
        assert any(role == "explorer" for _, role, _ in responder.asked)
        assert all("# This run's plan" in json.dumps(r.body) for r in server.requests)
        spent = json.loads(_ok(_telic(tmp_path, "state", run_id, "--db", str(db), "--json")))[
            "spent"
        ]
        assert spent["tokens"] == sum(
            c["payload"]["input_tokens"] + c["payload"]["output_tokens"] for c in calls
        )
        _ok(_telic(tmp_path, "verify", run_id, "--db", str(db)))
        _ok(_telic(tmp_path, "replay", run_id, "--db", str(db)))
    finally:
        server.close()
        responder.close()


def test_a_fork_of_a_spec_run_resumes_from_its_recorded_spec(tmp_path: Path) -> None:
    db, _, server, responder = _run_reference(tmp_path, "openai")
    try:
        run_id = json.loads(_ok(_telic(tmp_path, "runs", "--db", str(db), "--json")))[0]["id"]
        trace = [
            json.loads(line)
            for line in _ok(
                _telic(
                    tmp_path, "trace", run_id, "--db", str(db), "--json", "--kind", "tick.completed"
                )
            ).splitlines()
        ]
        at = trace[1]["seq"]  # the end of tick 2
        fork = json.loads(
            _ok(_telic(tmp_path, "fork", run_id, "--at", str(at), "--db", str(db), "--json"))
        )
        env = {"OPENAI_BASE_URL": server.openai_url}
        before = len(server.requests)
        out = _ok(
            _telic(
                tmp_path,
                "resume",
                fork["id"],
                "--db",
                str(db),
                "--out",
                str(tmp_path / "out"),
                env=env,
            )
        )
        assert "return condition met" in out and len(server.requests) > before
        runs = json.loads(_ok(_telic(tmp_path, "runs", "--db", str(db), "--json")))
        assert [r["status"] for r in runs] == ["completed", "completed"]
        state = json.loads(_ok(_telic(tmp_path, "state", fork["id"], "--db", str(db), "--json")))
        assert set(state["supervision"]["teams"]) == {"research", "planning"}  # rebuilt
        assert (tmp_path / "out" / fork["id"] / "result.json").exists()
        _ok(_telic(tmp_path, "verify", "--all", "--db", str(db)))
        instant = _telic(tmp_path, "resume", fork["id"], "--db", str(db), "--instant")
        assert instant.returncode == 1 and "Traceback" not in instant.stderr
        seeded = _telic(tmp_path, "resume", fork["id"], "--db", str(db), "--seed", "3")
        assert seeded.returncode == 1 and "--seed does not apply" in seeded.stderr
    finally:
        server.close()
        responder.close()


def test_a_spec_of_function_minds_and_local_tools_runs_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "mytools.py").write_text(
        """
from telic.minds import FunctionMind
from telic.proposal import Proposal
from telic.tools import tool

@tool
async def echo(text: str) -> dict[str, str]:
    \"\"\"Echo.\"\"\"
    return {"text": text}

def mind() -> FunctionMind:
    def propose(view):
        if not view.observations:
            return Proposal(action="tool", args={"tool": "echo", "args": {"text": "hi"}})
        return Proposal(action="finish", args={"result": view.observations[-1].content})
    return FunctionMind(propose, name="echoer")
"""
    )
    (tmp_path / "local.toml").write_text(
        """
goal = "say hi"
tools = ["mytools:echo"]
[budget]
ticks = 5
[[agents]]
name = "a"
role = "echoer"
mind = "mytools:mind"
tools = ["echo"]
"""
    )
    db = tmp_path / "l.db"
    out = _ok(_telic(tmp_path, "run", "local.toml", "--db", str(db)))
    assert "return condition met" in out
    runs = json.loads(_ok(_telic(tmp_path, "runs", "--db", str(db), "--json")))
    assert runs[0]["status"] == "completed"


def test_a_run_that_does_not_complete_exits_1(tmp_path: Path) -> None:
    (tmp_path / "idle.py").write_text(
        """
from telic.minds import FunctionMind
from telic.proposal import Proposal

def mind() -> FunctionMind:
    return FunctionMind(
        lambda view: Proposal(action="remember", args={"key": "t", "value": view.tick})
    )
"""
    )
    (tmp_path / "idle.toml").write_text(
        'goal = "wait"\n[budget]\nticks = 2\n[[agents]]\nname = "a"\nrole = "r"\nmind = "idle:mind"\n'
    )
    proc = _telic(tmp_path, "run", "idle.toml", "--db", str(tmp_path / "l.db"))
    assert proc.returncode == 1 and "TICK 02" in proc.stdout
    assert proc.stderr.count("\n") == 1 and "not completed" in proc.stderr


def test_lenient_reference_functions_count_ill_formed_items_as_missing() -> None:
    from telic.demo import lenient_progress, lenient_ready, lenient_trip_left
    from telic.reducer import initial_state

    state = initial_state()
    state["plan"] = {
        "transport": {"value": {"mode": "train", "total_chf": 64.0}, "seq": 1},
        "hotel": {"value": "the cheap one", "seq": 2},
        "budget": {"value": {"total": "about 300"}, "seq": 3},
        "extra": {"value": {"total_chf": "n/a"}, "seq": 4},
    }
    typed = RunState(state)
    assert lenient_progress(typed) == pytest.approx(0.2)
    assert lenient_ready(typed) is False
    assert lenient_trip_left(typed) == pytest.approx(600 - 64)


# -- bad specs -------------------------------------------------------------------------------

GOOD = """
goal = "g"
model = "openai:any"
tools = "telic.demo:reference_tools"

[policy]
resolvers = { "plan:*" = "budgeter" }

[[agents]]
name = "researcher"
role = "researcher"
tools = ["train_fares"]
"""


@pytest.mark.parametrize(
    ("name", "text", "args", "expect"),
    [
        ("missing file", None, (), "no such file"),
        ("bad TOML", "goal = \n[[agents]", (), "not valid TOML"),
        (
            "unknown field",
            GOOD.replace('role = "researcher"', 'role = "researcher"\nnmae = 1'),
            (),
            "unknown field 'agents.0.nmae'",
        ),
        ("unknown table", GOOD + "\n[budjet]\nticks = 3\n", (), "unknown field 'budjet'"),
        ("missing goal", GOOD.replace('goal = "g"', ""), (), "goal is required"),
        (
            "bad import module",
            GOOD.replace("telic.demo:reference_tools", "telic.nowhere:tools"),
            (),
            "cannot import 'telic.nowhere'",
        ),
        (
            "bad import attribute",
            GOOD.replace("telic.demo:reference_tools", "telic.demo:nothing"),
            (),
            "has no attribute 'nothing'",
        ),
        (
            "not an import path",
            GOOD.replace("telic.demo:reference_tools", "reference_tools"),
            (),
            "not an import path",
        ),
        (
            "not tools",
            GOOD.replace("telic.demo:reference_tools", "telic.demo:GOAL"),
            (),
            "must be a Tool",
        ),
        (
            "tools factory with arguments",
            GOOD.replace("telic.demo:reference_tools", "telic.demo:World"),
            (),
            "a tools factory takes no arguments",
        ),
        (
            "unknown tool",
            GOOD.replace('["train_fares"]', '["teleport"]'),
            (),
            "lists tool 'teleport'",
        ),
        (
            "unknown resolver",
            GOOD.replace('"budgeter"', '"cheapest"'),
            (),
            "unknown resolver 'cheapest'",
        ),
        (
            "bad return condition",
            GOOD.replace('goal = "g"', 'goal = "g"\nreturn_condition = "telic.demo:GOAL"'),
            (),
            "is not callable",
        ),
        ("no model", GOOD.replace('model = "openai:any"', ""), (), "has no model"),
        ("bad scheduler", GOOD + "\n[scheduler]\nmax_inflight = 3\n", (), "[scheduler]"),
        (
            "team with an unknown role",
            GOOD + '\n[[teams]]\nname = "t"\nroles = ["reseacher"]\n',
            (),
            "supervision tree: team 't' lists role 'reseacher', which no agent has",
        ),
        (
            "agent in two teams",
            GOOD
            + '\n[[teams]]\nname = "t"\nroles = ["researcher"]\n'
            + '\n[[teams]]\nname = "u"\nagents = ["researcher"]\n',
            (),
            "agent 'researcher' is in two teams, 't' and 'u'",
        ),
        (
            "team cycle",
            GOOD
            + '\n[[teams]]\nname = "t"\nroles = ["researcher"]\nteams = ["u"]\n'
            + '\n[[teams]]\nname = "u"\nteams = ["t"]\n',
            (),
            "teams form a cycle: t -> u -> t",
        ),
        (
            "bad team strategy",
            GOOD + '\n[[teams]]\nname = "t"\nroles = ["researcher"]\nstrategy = "all"\n',
            (),
            "teams.0.strategy: Input should be 'one_for_one', 'one_for_all' or 'rest_for_one'",
        ),
        (
            "unknown team key",
            GOOD + '\n[[teams]]\nname = "t"\nrole = ["researcher"]\n',
            (),
            "unknown field 'teams.0.role'",
        ),
        (
            "unknown provider",
            GOOD,
            ("--model", "gpt-4o"),
            "unknown provider in model string 'gpt-4o'",
        ),
        (
            "unknown provider prefix",
            GOOD,
            ("--model", "openia:gpt-4o"),
            "unknown provider in model string 'openia:gpt-4o'",
        ),
    ],
)
def test_spec_errors_are_one_line_and_exit_1(
    tmp_path: Path, name: str, text: str | None, args: tuple[str, ...], expect: str
) -> None:
    spec = tmp_path / "spec.toml"
    if text is not None:
        spec.write_text(text)
    proc = _telic(tmp_path, "run", str(spec), *args, "--db", str(tmp_path / "l.db"))
    assert proc.returncode == 1, (name, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("telic: "), (name, proc.stderr)
    assert expect in lines[0], (name, lines[0])
    assert not (tmp_path / "l.db").exists()  # nothing is booted from a bad spec


def test_run_help_describes_every_option(tmp_path: Path) -> None:
    out = _ok(_telic(tmp_path, "run", "--help"))
    for option in ("SPEC", "--model", "--db", "--out"):
        assert option in out
