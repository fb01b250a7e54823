"""MCP tools in: a real MCP server (the SDK's server API) started by the test, over stdio and
streamable HTTP on loopback; its tools under the kernel's allowlists, argument validation,
timeouts and approval; crashes and errors as typed ``tool.failed``, the server restarted."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from telic.clock import SystemClock
from telic.errors import (
    ConfigError,
    McpServerUnavailable,
    McpToolFailed,
    TelicError,
    ToolArgumentsInvalid,
)
from telic.kernel import AgentBudget, AgentSpec, Budget, Kernel, RunConfig
from telic.ledger import open_ledger
from telic.mcp import McpServer, McpServerSpec, connect
from telic.minds import FunctionMind, View
from telic.otel import SpanBuilder
from telic.policy import Policy
from telic.proposal import Proposal

from .conftest import SERVER


def _stdio(**kw: Any) -> McpServerSpec:
    return McpServerSpec("weather", command=(sys.executable, str(SERVER)), **kw)


def test_tools_come_with_the_servers_schema_and_hints() -> None:
    asyncio.run(_tools_come_with_the_servers_schema_and_hints())


async def _tools_come_with_the_servers_schema_and_hints() -> None:
    async with McpServer(_stdio(high_impact=("broken",))) as server:
        tools = {t.name: t for t in await server.list_tools()}
    assert {"forecast", "cancel_booking", "advice", "slow", "crash", "broken", "pid"} <= set(tools)
    forecast = tools["forecast"]
    assert forecast.schema["properties"]["day"]["type"] == "integer"
    assert set(forecast.schema["required"]) == {"city", "day"}
    assert forecast.source == "mcp:weather"
    assert forecast.version.startswith("sha256:")
    assert forecast.idempotent  # idempotentHint
    assert not forecast.high_impact
    assert tools["cancel_booking"].high_impact  # destructiveHint
    assert tools["broken"].high_impact  # marked by the spec
    assert forecast.validate({"city": "Lugano", "day": 2}) == {"city": "Lugano", "day": 2}
    with pytest.raises(ToolArgumentsInvalid, match="day"):
        forecast.validate({"city": "Lugano", "day": "two"})
    with pytest.raises(ToolArgumentsInvalid, match="required"):
        forecast.validate({"city": "Lugano"})


def test_calls_over_stdio_and_http_give_the_same_result(http_server: str) -> None:
    asyncio.run(_calls_over_stdio_and_http_give_the_same_result(http_server))


async def _calls_over_stdio_and_http_give_the_same_result(http_server: str) -> None:
    args = {"city": "Locarno", "day": 2}
    async with McpServer(_stdio()) as local:
        over_stdio = await local.call("forecast", args)
    async with McpServer(McpServerSpec("weather", url=http_server)) as remote:
        over_http = await remote.call("forecast", args)
        names = [t.name for t in await remote.list_tools()]
    assert over_stdio == over_http == {"city": "Locarno", "day": 2, "rain_mm": 13.0, "sunny": False}
    assert "forecast" in names


def test_errors_are_typed_and_a_crashed_server_is_started_again() -> None:
    asyncio.run(_errors_are_typed_and_a_crashed_server_is_started_again())


async def _errors_are_typed_and_a_crashed_server_is_started_again() -> None:
    async with McpServer(_stdio()) as server:
        with pytest.raises(McpToolFailed, match="broken"):
            await server.call("broken", {"reason": "no"})
        with pytest.raises(McpToolFailed, match="nosuch"):
            await server.call("nosuch", {})
        first = await server.call("pid", {})
        with pytest.raises(McpServerUnavailable, match="connection closed"):
            await server.call("crash", {})
        second = await server.call("pid", {})
        assert first != second  # a new process
        assert server.connections == 2


def test_a_server_that_cannot_start_is_a_typed_error() -> None:
    asyncio.run(_a_server_that_cannot_start_is_a_typed_error())


async def _a_server_that_cannot_start_is_a_typed_error() -> None:
    spec = McpServerSpec(
        "nothing", command=(sys.executable, "-c", "import sys; sys.exit(2)"), connect_timeout_s=5
    )
    async with McpServer(spec) as server:
        with pytest.raises(McpServerUnavailable, match="nothing"):
            await server.list_tools()


def test_a_spec_needs_exactly_one_transport() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        McpServerSpec("x")
    with pytest.raises(ConfigError, match="exactly one"):
        McpServerSpec("x", command=("a",), url="http://127.0.0.1:1/mcp")


# -- in a run ------------------------------------------------------------------------------


def _calls(*steps: Proposal) -> FunctionMind:
    """Proposes ``steps`` one per tick, then finishes."""

    def propose(view: View) -> Proposal:
        if view.tick <= len(steps):
            return steps[view.tick - 1]
        return Proposal(action="finish", args={"result": "done"})

    return FunctionMind(propose)


def _tool(name: str, **args: Any) -> Proposal:
    return Proposal(action="tool", args={"tool": name, "args": args})


async def _run(config: RunConfig) -> list[Any]:
    ledger = open_ledger("memory://")
    run = await Kernel(ledger, clock=SystemClock()).run(config, max_ticks=6)
    return list(ledger.read(run.run_id))


def test_a_run_uses_mcp_tools_under_the_kernels_policy() -> None:
    asyncio.run(_a_run_uses_mcp_tools_under_the_kernels_policy())


async def _a_run_uses_mcp_tools_under_the_kernels_policy() -> None:
    servers, tools = await connect([_stdio(timeout_s=5.0)])
    approvals: list[tuple[str, str]] = []

    async def approver(agent: str, tool: str, args: Mapping[str, Any]) -> bool:
        approvals.append((agent, tool))
        return args.get("booking") == "B-17"

    try:
        config = RunConfig(
            goal="use MCP tools",
            agents=[
                AgentSpec(
                    "caller",
                    "worker",
                    _calls(
                        _tool("forecast", city="Lugano", day=1),
                        _tool("forecast", city="Lugano", day="one"),  # fails the schema
                        _tool("broken", reason="bad input"),
                        _tool("cancel_booking", booking="B-17"),  # approved
                        _tool("slow", seconds=120),  # past the kernel's timeout (last: a
                        # timed-out call leaves the server to be started again)
                    ),
                    tools=("forecast", "slow", "broken", "cancel_booking"),
                ),
                AgentSpec(
                    "stranger",
                    "worker",
                    _calls(_tool("cancel_booking", booking="ALL")),  # not on its allowlist
                    tools=("forecast",),
                ),
            ],
            tools=tools,
            budget=Budget(ticks=8),
            policy=Policy(stall_ticks=0, verifier=None, fail_agent_on_tool_error=False),
            approver=approver,
        )
        transitions = await _run(config)
    finally:
        for s in servers:
            await s.aclose()
    kinds = [(t.kind, t.data.get("tool"), t.agent) for t in transitions]
    assert ("tool.completed", "forecast", "caller") in kinds
    assert ("tool.timeout", "slow", "caller") in kinds, kinds
    failed = [t.data for t in transitions if t.kind == "tool.failed"]
    assert [(f["tool"], f["error"]) for f in failed] == [("broken", "McpToolFailed")], kinds
    assert ("tool.completed", "cancel_booking", "caller") in kinds
    assert approvals == [("caller", "cancel_booking")]
    rejected = {(t.agent, t.data["check"]) for t in transitions if t.kind == "proposal.rejected"}
    assert ("caller", "arguments") in rejected
    assert ("stranger", "allowlist") in rejected
    # each call records the server and the schema hash of the tool it called
    started = [t.data for t in transitions if t.kind == "tool.started"]
    hashes = {t.name: t.version for t in tools}
    assert {(d["source"], d["version"]) for d in started if d["tool"] == "forecast"} == {
        ("mcp:weather", hashes["forecast"])
    }
    assert all(d["source"] == "mcp:weather" for d in started)
    # and its execute_tool span says it was an MCP tools/call
    builder = SpanBuilder()
    spans = builder.feed(transitions) + builder.close()
    forecast = next(s for s in spans if s.name == "execute_tool forecast")
    assert forecast.attributes["mcp.method.name"] == "tools/call"
    assert forecast.attributes["telic.tool.source"] == "mcp:weather"
    assert forecast.attributes["telic.tool.version"] == hashes["forecast"]
    # the approval of the destructive call is a pair of span events with who decided
    events = {e.name: e.attributes for sp in spans for e in sp.events}
    assert "approval.requested" in events
    assert events["approval.requested"]["telic.tool"] == "cancel_booking"
    assert "approval.granted" in events


def test_the_tool_call_budget_counts_mcp_calls() -> None:
    asyncio.run(_the_tool_call_budget_counts_mcp_calls())


async def _the_tool_call_budget_counts_mcp_calls() -> None:
    """An MCP server's tools spend the run's tool-call budget as the run's own tools do: the
    run stops when it is spent, and the call past it is never sent to the server."""
    servers, tools = await connect([_stdio(timeout_s=5.0)])
    try:
        config = RunConfig(
            goal="use MCP tools within a budget",
            agents=[
                AgentSpec(
                    "caller",
                    "worker",
                    _calls(*(_tool("forecast", city="Lugano", day=d) for d in (1, 2, 3))),
                    tools=("forecast",),
                )
            ],
            tools=tools,
            budget=Budget(ticks=8, tool_calls=2),
            policy=Policy(stall_ticks=0, verifier=None),
        )
        transitions = await _run(config)
    finally:
        for s in servers:
            await s.aclose()
    started = [t for t in transitions if t.kind == "tool.started"]
    assert len(started) == 2
    exhausted = [t.data for t in transitions if t.kind == "budget.exhausted"]
    assert [(e["dimension"], e["spent"], e["limit"]) for e in exhausted] == [("tool_calls", 2, 2)]
    stopped = next(t.data for t in transitions if t.kind == "run.stopped")
    assert "tool_calls" in stopped["reason"]


def test_an_agent_budget_stops_one_agent_and_not_the_other() -> None:
    asyncio.run(_an_agent_budget_stops_one_agent_and_not_the_other())


async def _an_agent_budget_stops_one_agent_and_not_the_other() -> None:
    """Two agents call the same MCP tool; ``thrifty`` may make two calls of its own: its third
    is rejected by the budget check, naming it and its limit, and never reaches the server,
    while ``free`` (no budget of its own) makes all of its calls; the run goes on."""
    servers, tools = await connect([_stdio(timeout_s=5.0)])
    days = (1, 2, 3, 4)
    try:
        config = RunConfig(
            goal="use MCP tools within each agent's budget",
            agents=[
                AgentSpec(
                    "thrifty",
                    "worker",
                    _calls(*(_tool("forecast", city="Lugano", day=d) for d in days)),
                    tools=("forecast",),
                    budget=AgentBudget(tool_calls=2),
                ),
                AgentSpec(
                    "free",
                    "worker",
                    _calls(*(_tool("forecast", city="Basel", day=d) for d in days)),
                    tools=("forecast",),
                ),
            ],
            tools=tools,
            budget=Budget(ticks=8, tool_calls=20),
            policy=Policy(stall_ticks=0, verifier=None),
        )
        ledger = open_ledger("memory://")
        result = await Kernel(ledger, clock=SystemClock()).run(config, max_ticks=6)
        transitions = list(ledger.read(result.run_id))
        state = ledger.state_at(result.run_id)
    finally:
        for s in servers:
            await s.aclose()
    completed = [(t.agent, t.data["args"]["day"]) for t in transitions if t.kind == "tool.started"]
    assert [d for a, d in completed if a == "thrifty"] == [1, 2]
    assert [d for a, d in completed if a == "free"] == [1, 2, 3, 4]
    rejected = [t.data for t in transitions if t.kind == "proposal.rejected"]
    assert [(r["agent"], r["check"]) for r in rejected] == [("thrifty", "budget")] * 2
    assert rejected[0]["limit"] == {
        "agent": "thrifty",
        "dimension": "tool_calls",
        "limit": 2.0,
        "spent": 2.0,
    }
    assert "'thrifty'" in rejected[0]["reason"] and "budget of 2" in rejected[0]["reason"]
    assert not any(t.kind == "budget.exhausted" for t in transitions)  # the run's is not
    own = state["agent_budgets"]
    assert set(own) == {"thrifty"}
    assert own["thrifty"]["limits"] == {"tool_calls": 2.0}
    assert own["thrifty"]["spent"]["tool_calls"] == 2
    assert state["spent"]["tool_calls"] == 6


# -- in a spec, through `telic run` ----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _telic_run(spec: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telic", "run", str(spec), "--db", str(db), "--out", str(db.parent)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


_TELIC = (sys.executable, "-m", "telic")
_DENIAL = ("--reason", "no cancellations today", "--by", "ops")


def _telic_run_denying(spec: Path, db: Path) -> subprocess.CompletedProcess[str]:
    """``telic run`` parks on the destructive call; ``telic deny`` from another process (as an
    operator would) lets it go on."""
    cmd = [sys.executable, "-m", "telic", "run", str(spec), "--db", str(db)]
    with subprocess.Popen(
        [*cmd, "--out", str(db.parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        try:
            run_id, proposal = _awaited_approval(db, proc)
            denied = subprocess.run(
                [*_TELIC, "deny", run_id, str(proposal), "--db", str(db), *_DENIAL],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=ROOT,
            )
            assert denied.returncode == 0, denied.stderr
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _awaited_approval(db: Path, proc: subprocess.Popen[str]) -> tuple[str, int]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        if db.exists():
            try:
                ledger = open_ledger(str(db), readonly=True)
            except TelicError:
                ledger = None
            if ledger is not None:
                with ledger:
                    for info in ledger.runs():
                        for t in ledger.read(info.id):
                            if t.kind == "approval.requested":
                                return info.id, int(t.data["proposal"])
        time.sleep(0.2)
    raise AssertionError("the run never asked for approval")


def _check_spec_run(db: Path) -> dict[str, Any]:
    ledger = open_ledger(str(db))
    run_id = ledger.runs()[0].id
    ts = list(ledger.read(run_id))
    assert ledger.state_at(run_id)["status"] == "completed"
    forecasts = [t for t in ts if t.kind == "tool.completed" and t.data["tool"] == "forecast"]
    assert len(forecasts) == 3
    rejected = {(t.agent, t.data["check"]) for t in ts if t.kind == "proposal.rejected"}
    # the injected advice made the reader propose cancel_booking: not on its allowlist
    assert ("reader", "allowlist") in rejected
    # the booker may, but the tool is destructive: the run waited, an operator denied it
    assert ("booker", "approval") in rejected
    denial = next(t for t in ts if t.kind == "approval.denied")
    assert (denial.data["by"], denial.data["reason"]) == ("ops", "no cancellations today")
    assert not any(t.kind == "tool.started" and t.data["tool"] == "cancel_booking" for t in ts)
    recorded: dict[str, Any] = ts[0].data["config"]["mcp"]["weather"]
    assert recorded["tools"]["forecast"].startswith("sha256:")
    return recorded


def test_the_example_spec_runs_a_stdio_server(tmp_path: Path) -> None:
    proc = _telic_run_denying(ROOT / "examples" / "mcp.toml", tmp_path / "mcp.db")
    assert proc.returncode == 0, proc.stderr
    assert _check_spec_run(tmp_path / "mcp.db")["transport"] == "stdio"


def test_a_spec_uses_a_streamable_http_server(tmp_path: Path, http_server: str) -> None:
    shutil.copy(ROOT / "examples" / "mcp_minds.py", tmp_path / "mcp_minds.py")
    text = (ROOT / "examples" / "mcp.toml").read_text()
    text = text.replace('command = ["python", "mcp_weather.py"]', f'url = "{http_server}"')
    text = text.replace("high_impact = []", 'tools = ["forecast", "advice", "cancel_booking"]')
    spec = tmp_path / "mcp.toml"
    spec.write_text(text)
    proc = _telic_run_denying(spec, tmp_path / "mcp.db")
    assert proc.returncode == 0, proc.stderr
    assert _check_spec_run(tmp_path / "mcp.db")["transport"] == "http"


_BUDGET_MINDS = """
from telic.minds import FunctionMind, View
from telic.proposal import Proposal


def _forecasts(city: str) -> FunctionMind:
    def propose(view: View) -> Proposal:
        if view.tick <= 4:
            args = {"city": city, "day": view.tick}
            return Proposal(action="tool", args={"tool": "forecast", "args": args})
        return Proposal(action="finish", args={"result": "done"})

    return FunctionMind(propose)


def thrifty() -> FunctionMind:
    return _forecasts("Lugano")


def free() -> FunctionMind:
    return _forecasts("Basel")
"""


def test_a_spec_agent_budget_is_enforced_and_shown(tmp_path: Path) -> None:
    """``[agents.budget]`` in a spec, through ``telic run``: the agent over its own budget is
    refused, the other goes on, and ``telic show`` says who and which limit."""
    (tmp_path / "budget_minds.py").write_text(_BUDGET_MINDS)
    spec = tmp_path / "budgets.toml"
    spec.write_text(
        'goal = "forecasts within budgets"\n'
        "[[mcp_servers]]\n"
        'name = "weather"\n'
        f"command = [{str(sys.executable)!r}, {str(SERVER)!r}]\n"
        "[[agents]]\n"
        'name = "thrifty"\nrole = "worker"\ntools = ["forecast"]\n'
        'mind = "budget_minds:thrifty"\n'
        "budget = { tool_calls = 2 }\n"
        "[[agents]]\n"
        'name = "free"\nrole = "worker"\ntools = ["forecast"]\nmind = "budget_minds:free"\n'
        "[budget]\nticks = 8\n"
    )
    db = tmp_path / "budgets.db"
    proc = _telic_run(spec, db)
    assert proc.returncode == 0, proc.stderr
    ledger = open_ledger(str(db))
    run_id = ledger.runs()[0].id
    started = [t.agent for t in ledger.read(run_id) if t.kind == "tool.started"]
    assert started.count("thrifty") == 2 and started.count("free") == 4
    booted = next(iter(ledger.read(run_id, 1, 1)))
    assert [a.get("budget") for a in booted.data["agents"]] == [{"tool_calls": 2.0}, None]
    shown = subprocess.run(
        [*_TELIC, "show", run_id, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert shown.returncode == 0, shown.stderr
    assert "thrifty over its own budget (tool_calls 2/2) -> rejected" in shown.stdout
    state = subprocess.run(
        [*_TELIC, "state", run_id, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert state.returncode == 0, state.stderr
    lines = state.stdout.splitlines()
    assert any("thrifty" in x and "own budget tool_calls 2/2" in x for x in lines), lines
    assert not any("free" in x and "own budget" in x for x in lines), lines
    bad = spec.read_text().replace("tool_calls = 2", "tool_call = 2")
    spec.write_text(bad)
    proc = _telic_run(spec, tmp_path / "bad.db")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "tool_call" in proc.stderr


def test_a_spec_whose_server_does_not_start_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'goal = "g"\n[[mcp_servers]]\nname = "gone"\ncommand = ["python", "-c", "raise SystemExit(1)"]\n'
        'connect_timeout_s = 20\n[[agents]]\nname = "a"\nrole = "r"\nmind = "x:y"\n'
    )
    proc = _telic_run(spec, tmp_path / "bad.db")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "gone" in proc.stderr
