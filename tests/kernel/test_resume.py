"""Crash and resume, and fork then resume: a run continues from what its ledger holds.

A tool that started with no recorded result is run again on resume only if it is idempotent
(otherwise its outcome is recorded as unknown); a tool whose result is in the ledger is never
run again; the interrupted tick is closed as invalid.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import telic.demo
from telic.clock import VirtualClock
from telic.errors import ChainBroken, RunNotResumable
from telic.kernel import AgentSpec, Kernel, RunConfig, RunResult
from telic.kinds import (
    AgentRecord,
    AgentSpawned,
    ProposalMade,
    RunBooted,
    TickStarted,
)
from telic.ledger import BaseLedger, SQLiteLedger, open_ledger
from telic.minds.base import Mind, ScriptedMind, View
from telic.policy import Policy
from telic.proposal import Proposal
from telic.transition import draft

from .kit import (
    Calls,
    Played,
    agent,
    call,
    config,
    echo_tool,
    finish,
    new_ledger,
    on_virtual_time,
    play,
    remember,
    stuck_tool,
)


def _resume(ledger: BaseLedger, cfg: RunConfig, run_id: str = "r") -> RunResult:
    async def scenario(clock: VirtualClock) -> RunResult:
        run = await Kernel(ledger, clock=clock).resume(run_id, cfg)
        return await run.until_done()

    return on_virtual_time(scenario)


def test_resume_after_a_crash_reruns_idempotent_tools_only_and_closes_the_tick(
    tmp_path: Path,
) -> None:
    path = tmp_path / "telic.db"
    before = Calls()
    fetch_started, send_started = asyncio.Event(), asyncio.Event()
    crashed = new_ledger(str(path))
    cfg = config(
        agent("a", call("echo", x=1), call("fetch", x=2), tools=["echo", "fetch"]),
        agent("b", remember("k", 1), call("send", x=3), tools=["send"]),
        tools=[
            echo_tool(before),
            stuck_tool(before, fetch_started, name="fetch", idempotent=True, timeout=3600),
            stuck_tool(before, send_started, name="send", timeout=3600),
        ],
    )

    async def scenario(clock: VirtualClock) -> None:
        run = await Kernel(crashed, clock=clock).boot(cfg, run_id="r")
        task = asyncio.create_task(run.until_done())
        await fetch_started.wait()
        await send_started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    on_virtual_time(scenario)
    assert before.by_tool == {"echo": [{"x": 1}], "fetch": [{"x": 2}], "send": [{"x": 3}]}

    # A new kernel process opens the ledger: tick 2 is open, both slow calls have no result.
    ledger = new_ledger(str(path))
    head = ledger.run("r").head
    state = ledger.state_at("r")
    assert state["tick_open"] and state["tick"] == 2
    assert sorted(p["tool"] for p in state["pending_tools"].values()) == ["fetch", "send"]
    assert ledger.get("r", head).kind == "tool.started"
    starts = {t.data["tool"]: t for t in ledger.read("r") if t.kind == "tool.started"}

    after = Calls()
    resumed_cfg = config(
        agent("a", finish("a done"), tools=["echo", "fetch"]),
        agent("b", finish("b done"), tools=["send"]),
        tools=[
            echo_tool(after),
            echo_tool(after, name="fetch"),
            echo_tool(after, name="send", idempotent=False),
        ],
    )
    result = _resume(ledger, resumed_cfg)
    assert result.status == "completed"
    # the idempotent call ran again, the other one did not; echo's recorded result stands
    assert after.by_tool == {"fetch": [{"x": 2}]}

    played = Played(ledger, "r")
    tail = played.transitions()[head:]
    assert [t.kind for t in tail[:5]] == [
        "run.resumed",
        "tool.started",
        "tool.completed",
        "tool.unknown",
        "tick.completed",
    ]
    resumed, again, done, unknown, closed = tail[:5]
    assert resumed.data == {"reason": "resumed", "head": head, "counterfactual": None}
    assert again.data["call_id"] == starts["fetch"].data["call_id"]
    assert (again.data["attempt"], again.causes) == (2, (starts["fetch"].seq,))
    assert done.data["result"] == {"x": 2}
    assert done.causes == (again.seq,)
    assert unknown.data["call_id"] == starts["send"].data["call_id"]
    assert unknown.causes == (starts["send"].seq,)
    assert (closed.data["tick"], closed.data["valid"]) == (2, False)
    assert [t.data["tick"] for t in played.of("tick.started")] == [1, 2, 3]
    assert played.state()["pending_tools"] == {}
    told = [o for o in played.observations("b") if o["source"] == "tool:send"]
    assert told[0]["content"]["error"] == "tool.unknown"


def test_resume_closes_a_tick_interrupted_before_any_effect() -> None:
    ledger = new_ledger()
    ledger.create_run("r")
    boot = RunBooted(goal="g", agents=(AgentRecord(name="a", role="worker"),), budget={})
    proposal = ProposalMade(
        agent="a", action="remember", args={"key": "k", "value": 1}, confidence=1.0
    )
    ledger.append(
        "r",
        [
            draft(boot, ts=1),
            draft(AgentSpawned(agent="a", role="worker"), ts=1, agent="a", causes=(1,)),
            draft(TickStarted(tick=1), ts=2, tick=1),
            draft(proposal, ts=2, tick=1, agent="a"),
        ],
        expected=1,
    )
    result = _resume(ledger, config(agent("a", finish())))
    played = Played(ledger, "r")
    assert played.kinds()[4:6] == ["run.resumed", "tick.completed"]
    assert played.of("tick.completed")[0].data["valid"] is False
    assert played.effects_of(4) == []  # the interrupted proposal was never accepted
    assert played.state()["memory"] == {}
    assert result.status == "completed"


def test_a_tool_whose_result_is_recorded_is_never_run_again_on_resume() -> None:
    ledger = new_ledger()
    first = Calls()
    cfg = config(
        agent("a", call("echo", x=1), remember("k", 1), tools=["echo"]), tools=[echo_tool(first)]
    )
    play(cfg, ledger=ledger, run_id="r", max_ticks=2)
    assert first.count("echo") == 1
    again = Calls()
    resumed = config(agent("a", finish(), tools=["echo"]), tools=[echo_tool(again)])
    assert _resume(ledger, resumed).status == "completed"
    assert again.count("echo") == 0
    assert Played(ledger, "r").kinds().count("tool.started") == 1


def test_an_ended_run_is_not_resumable() -> None:
    played = play(config(agent("a", finish())))
    with pytest.raises(RunNotResumable, match="fork it to continue"):
        _resume(played.ledger, config(agent("a", finish())), "run")


def test_fork_then_resume_continues_from_the_parents_prefix_with_another_ending() -> None:
    ledger = new_ledger()
    parent = play(
        config(agent("a", remember("choice", "A1"), remember("choice", "A2"), finish())),
        ledger=ledger,
        run_id="parent",
    )
    parent_head = ledger.run("parent").head
    at = parent.of("tick.completed")[0].seq

    async def fork_and_resume(clock: VirtualClock) -> tuple[str, RunResult]:
        kernel = Kernel(ledger, clock=clock)
        fork = kernel.fork("parent", at, new_id="fork")
        run = await kernel.resume(
            fork, config(agent("a", remember("choice", "B2"), finish())), reason="forked"
        )
        return fork, await run.until_done()

    fork, result = on_virtual_time(fork_and_resume)
    assert result.status == "completed"
    child = Played(ledger, fork)
    shared = parent.transitions()[:at]
    assert [t[1:] for t in child.transitions()[:at]] == [t[1:] for t in shared]
    assert [t.kind for t in child.transitions()[at : at + 2]] == ["run.forked", "run.resumed"]
    assert child.transitions()[at].data == {"parent": "parent", "at": at}
    assert child.transitions()[at + 1].data == {
        "reason": "forked",
        "head": at + 1,
        "counterfactual": None,
    }
    assert child.state()["memory"]["a"]["choice"] == "B2"
    assert child.state()["forked_from"] == {"run": "parent", "at": at}
    assert parent.state()["memory"]["a"]["choice"] == "A2"
    assert ledger.run("parent").head == parent_head  # the parent is untouched
    assert child.result is None


def test_a_fork_inside_a_tick_asks_that_tick_again() -> None:
    """Forked between a tick's start and its first proposal, the fork's resume asks the tick
    again under its own number (with the answers recorded before the fork point, as after a
    crash) instead of closing it empty."""
    ledger = new_ledger()
    steps = (remember("choice", "A1"), remember("choice", "A2"), finish())
    parent = play(config(agent("a", *steps)), ledger=ledger, run_id="parent")
    at = parent.of("tick.started")[1].seq  # tick 2 has started, nothing asked yet

    async def fork_and_resume(clock: VirtualClock) -> RunResult:
        kernel = Kernel(ledger, clock=clock)
        fork = kernel.fork("parent", at, new_id="fork")
        run = await kernel.resume(fork, config(agent("a", *steps[1:])), reason="forked")
        return await run.until_done()

    result = on_virtual_time(fork_and_resume)
    assert result.status == "completed"
    child = Played(ledger, "fork")
    tick2 = [t.kind for t in child.transitions()[at:] if t.tick == 2]
    assert tick2[:2] == ["run.forked", "run.resumed"]
    assert "proposal.made" in tick2  # asked again, not closed empty
    assert child.state()["memory"]["a"]["choice"] == "A2"


def test_an_approval_awaited_when_the_kernel_crashed_stays_parked_and_its_decision_continues_the_run() -> (
    None
):
    ledger = new_ledger()
    calls = Calls()
    asked = asyncio.Event()

    async def slow(agent_name: str, tool_name: str, args: Any) -> bool | None:
        asked.set()
        await asyncio.sleep(10 * 24 * 3600)
        return True

    async def yes(agent_name: str, tool_name: str, args: Any) -> bool | None:
        return True

    def launching(*steps: Proposal, approver: Any) -> RunConfig:
        return config(
            agent("a", *steps, tools=["launch"]),
            tools=[echo_tool(calls, name="launch", high_impact=True)],
            approver=approver,
            policy=Policy(approval_timeout_s=30 * 24 * 3600),
        )

    async def crash(clock: VirtualClock) -> None:
        run = await Kernel(ledger, clock=clock).boot(
            launching(call("launch", x=1), approver=slow), run_id="r"
        )
        task = asyncio.create_task(run.until_done())
        await asked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    on_virtual_time(crash)
    head = ledger.run("r").head
    assert ledger.state_at("r")["status"] == "paused"
    waiting = ledger.get("r", head - 1)
    assert waiting.kind == "approval.requested"

    result = _resume(ledger, launching(call("launch", x=2), finish(), approver=yes))
    played = Played(ledger, "r")
    resumed, paused, granted, accepted, started, completed, closed = played.transitions()[
        head : head + 7
    ]
    assert resumed.kind == "run.resumed"
    assert paused.kind == "run.paused"  # the request is still awaited after the restart
    assert played.ledger.state_at("r", paused.seq)["status"] == "paused"
    proposal = waiting.data["proposal"]
    assert granted.data == {"proposal": proposal, "by": "approver", "reason": ""}
    assert granted.causes == (proposal,)
    assert (accepted.kind, accepted.data["proposal"]) == ("proposal.accepted", proposal)
    assert (started.kind, started.data["args"]) == ("tool.started", {"x": 1})
    assert completed.kind == "tool.completed"
    assert (closed.kind, closed.data["valid"]) == ("tick.completed", False)
    assert played.ledger.state_at("r", granted.seq)["status"] == "running"
    # the decided call ran once; the next approval pauses and resumes the run as usual
    assert calls.by_tool == {"launch": [{"x": 1}, {"x": 2}]}
    assert result.status == "completed"


def test_an_explorer_in_flight_is_rebuilt_on_resume_and_reports_to_its_parent() -> None:
    ledger = new_ledger()
    calls = Calls()
    started = asyncio.Event()

    def digging(question: str, parent: AgentSpec) -> Mind:
        return ScriptedMind([call("stuck", x=1)])

    cfg = config(
        agent("a", remember("q", 1, confidence=0.1), remember("w", 1), tools=["stuck"]),
        tools=[stuck_tool(calls, started, timeout=3600)],
        explorer=digging,
    )

    async def crash(clock: VirtualClock) -> None:
        run = await Kernel(ledger, clock=clock).boot(cfg, run_id="r")
        task = asyncio.create_task(run.until_done())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    on_virtual_time(crash)
    head = ledger.run("r").head
    rebuilt: list[tuple[str, str]] = []

    def reporting(question: str, parent: AgentSpec) -> Mind:
        rebuilt.append((question, parent.name))
        return ScriptedMind([finish({"found": 42})])

    def parent_reads(view: View) -> Proposal:
        found = [o.content for o in view.observations if o.source == "explorer:explorer-1"]
        return remember("found", found)

    resumed = config(
        agent("a", remember("w", 2), parent_reads, finish(), tools=["stuck"]),
        tools=[stuck_tool(calls, name="stuck", timeout=3600)],
        explorer=reporting,
    )
    result = _resume(ledger, resumed)
    played = Played(ledger, "r")
    assert rebuilt == [("remember {'key': 'q', 'value': 1}", "a")]
    assert calls.count("stuck") == 1  # not idempotent: not run again
    assert played.transitions()[head].kind == "run.resumed"
    assert played.one("tool.unknown").agent == "explorer-1"
    assert played.one("observation.recorded").data["content"] == {"found": 42}
    assert played.one("agent.terminated", "explorer-1").data["reason"] == "normal"
    assert played.state()["memory"]["a"]["found"] == [{"found": 42}]
    assert result.status == "completed"


def test_the_reference_run_forked_and_resumed_with_another_seed_ends_differently() -> None:
    ledger = new_ledger()
    parent_cfg, _ = telic.demo.build(7)
    parent = play(parent_cfg, ledger=ledger, run_id="seven")
    at = parent.of("tick.completed")[1].seq

    async def fork_and_resume(clock: VirtualClock) -> RunResult:
        kernel = Kernel(ledger, clock=clock)
        fork = kernel.fork("seven", at, new_id="eight")
        other_cfg, _ = telic.demo.build(8)
        run = await kernel.resume(fork, other_cfg, reason="forked with seed 8")
        return await run.until_done()

    result = on_virtual_time(fork_and_resume)
    child = Played(ledger, "eight", result)
    assert result.status == "completed"
    assert [t[1:] for t in child.transitions()[:at]] == [t[1:] for t in parent.transitions()[:at]]
    assert child.kinds()[at : at + 2] == ["run.forked", "run.resumed"]
    assert child.one("run.booted").data["seed"] == 7  # the shared prefix is the parent's
    budget = {r: Played(ledger, r).state()["plan"]["budget"]["value"] for r in ("seven", "eight")}
    assert budget["seven"]["total_chf"] != budget["eight"]["total_chf"]
    assert result.head_hash != ledger.run("seven").head_hash.hex()


def _flip_a_byte(ledger: BaseLedger, seq: int) -> None:
    assert isinstance(ledger, SQLiteLedger)
    (payload,) = ledger.execute("SELECT payload FROM transitions WHERE seq = ?", (seq,))[0]
    assert isinstance(payload, bytes)
    edited = bytearray(payload)
    edited[len(edited) // 2] ^= 0x01
    ledger.execute("UPDATE transitions SET payload = ? WHERE seq = ?", (bytes(edited), seq))


def test_resume_refuses_a_tampered_chain_between_its_snapshot_and_the_head(
    tmp_path: Path,
) -> None:
    """Resume verifies what it folds (from the nearest snapshot to the head); `verify` the rest."""
    path = tmp_path / "telic.db"

    def script(first: int) -> RunConfig:
        steps = [remember(f"k{i}", i) for i in range(first, 8)]
        return config(agent("a", *steps, finish()), policy=Policy(stall_ticks=0))

    def played() -> BaseLedger:
        ledger = open_ledger(path, snapshot_every=9)
        play(script(0), ledger=ledger, run_id="r", max_ticks=6)
        return ledger

    ledger = played()
    head, snap = ledger.run("r").head, ledger.last_snapshot("r")
    assert 0 < snap < head - 2
    _flip_a_byte(ledger, head - 1)
    with pytest.raises(ChainBroken, match=f"at sequence {head - 1}"):
        _resume(ledger, script(6))
    ledger.close()

    path.unlink()
    ledger = played()
    early = ledger.last_snapshot("r") - 3  # folded into the snapshot: resume never reads it
    _flip_a_byte(ledger, early)
    assert ledger.verify("r").first_bad == early
    assert _resume(ledger, script(6)).status == "completed"
    ledger.close()
