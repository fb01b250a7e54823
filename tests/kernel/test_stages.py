"""Each stage of a tick alone (telic.kernel.stages): typed records in, records and verdicts out.

A stage is called on a booted run with a tick opened by hand; what it recorded is read back
from the ledger after its batch is committed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from telic.clock import VirtualClock
from telic.errors import MalformedOutput
from telic.kernel import Kernel, RunConfig
from telic.kernel.intake import Refused, admit
from telic.kernel.run import Run
from telic.kernel.stages import (
    Asked,
    Passing,
    Proposed,
    Tick,
    approve,
    ask,
    check,
    commit_effects,
    execute,
    explore,
    ground,
    record,
    resolve_conflicts,
    settle,
)
from telic.kernel.stages.shared import Unanswered, name_of
from telic.kinds import Claim, TickStarted
from telic.minds.base import FunctionMind, Mind
from telic.policy import Policy, Verdict
from telic.proposal import Proposal
from telic.tools import RetryPolicy, tool

from .kit import (
    Calls,
    Played,
    agent,
    call,
    config,
    echo_tool,
    new_ledger,
    on_virtual_time,
    plan,
    remember,
)


def _staged(cfg: RunConfig, body: Callable[[Run, Tick], Awaitable[None]]) -> Played:
    """Boot ``cfg`` as run ``r``, open tick 1 by hand, run ``body``, commit what is left."""
    ledger = new_ledger()

    async def scenario(clock: VirtualClock) -> None:
        run = await Kernel(ledger, clock=clock).boot(cfg, run_id="r")
        try:
            batch = run.batch()
            batch.add(TickStarted(tick=1), tick=1)
            t = Tick(run, batch, 1)
            await body(run, t)
            await run.commit(t.batch)
        finally:
            await run.close()

    on_virtual_time(scenario)
    return Played(ledger, "r")


def _made(t: Tick, name: str, proposal: Proposal, order: int = 0) -> Proposed:
    """``proposal`` recorded as ``name``'s ``proposal.made`` (what the record stage does)."""
    admitted = admit(proposal, name, max_bytes=t.batch.max_payload)
    assert not isinstance(admitted, Refused)
    seq = t.batch.add_encoded(
        "proposal.made", admitted.made, admitted.raw, tick=t.number, agent=name
    )
    return Proposed(name, t.run.role(name), order, admitted.proposal, seq, admitted.json)


def _own_checks(policy: Policy) -> tuple[str, ...]:
    return tuple(name_of(c) for c in policy.checks())


def test_records_are_frozen_and_passing_adds_a_check_to_a_new_record() -> None:
    made = Proposed("a", "worker", 0, remember("k", 1), 3, {})
    passing = Passing(made, ("schema",))
    later = passing.passed("conflict")
    assert later.checks == ("schema", "conflict")
    assert passing.checks == ("schema",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        passing.checks = ()  # type: ignore[misc]


def test_ask_opens_the_tick_and_gets_one_reply_per_live_agent_in_agent_order() -> None:
    ledger = new_ledger()
    cfg = config(agent("b", remember("x", 1)), agent("a", remember("y", 2)))

    async def scenario(clock: VirtualClock) -> Asked:
        run = await Kernel(ledger, clock=clock).boot(cfg, run_id="r")
        try:
            asked = await ask(run)
            await run.commit(asked.tick.batch)
            return asked
        finally:
            await run.close()

    asked = on_virtual_time(scenario)
    assert asked.tick.number == 1
    assert asked.agents == ("b", "a")
    assert [getattr(r, "proposal", None) for r in asked.replies] == [
        remember("x", 1),
        remember("y", 2),
    ]
    assert asked.limit > 0
    assert Played(ledger, "r").kinds()[-1] == "tick.started"


def test_record_turns_each_reply_into_a_proposal_or_a_rejection_in_agent_order() -> None:
    cfg = config(agent("a"), agent("b"), agent("c"), agent("d"))
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        replies = (
            admit(remember("k", 1), "a", max_bytes=t.batch.max_payload),
            Refused("it was not a proposal"),
            MalformedOutput("no JSON in the reply"),
            Unanswered(),
        )
        got["recorded"] = await record(t, Asked(t, ("a", "b", "c", "d"), replies, 3.0))

    played = _staged(cfg, body)
    recorded = got["recorded"]
    assert [(p.agent, p.order) for p in recorded.proposed] == [("a", 0)]
    assert recorded.proposed[0].seq == played.one("proposal.made").seq
    assert recorded.crashed == ("d",)  # no answer: killed, its supervisor restarts it
    assert recorded.invalid
    assert played.rejections() == [
        ("schema", "it was not a proposal"),
        ("schema", "model output is not a valid proposal: no JSON in the reply"),
    ]
    assert played.one("agent.restarted").agent == "d"


def test_check_passes_what_every_check_passes_and_names_them() -> None:
    calls = Calls()
    cfg = config(agent("a", tools=("echo",)), agent("b"), tools=[echo_tool(calls)])
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        ok = _made(t, "a", call("echo", x=1), 0)
        refused = _made(t, "b", call("echo", x=1), 1)  # b may not use echo
        got["passing"] = check(t, (ok, refused))
        got["ok"] = ok

    played = _staged(cfg, body)
    passing = got["passing"]
    assert [p.made for p in passing] == [got["ok"]]
    assert passing[0].checks == _own_checks(Policy())
    assert [c for c, _ in played.rejections("b")] == ["allowlist"]


def test_check_refuses_under_a_user_checks_name_when_it_raises() -> None:
    @dataclasses.dataclass(frozen=True)
    class Broken:
        name: str = "broken"

        def check(self, proposal: Proposal, ctx: Any) -> Verdict:
            raise RuntimeError("boom")

    cfg = config(agent("a"), policy=Policy(extra=(Broken(),)))
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        got["passing"] = check(t, (_made(t, "a", remember("k", 1)),))

    played = _staged(cfg, body)
    assert got["passing"] == ()
    assert played.rejections() == [("broken", "the check failed (RuntimeError: boom)")]


def _explorer(question: str, parent: Any) -> Mind:
    return FunctionMind(lambda view: Proposal(action="finish", args={"result": question}))


def test_explore_spawns_an_explorer_for_a_low_confidence_action() -> None:
    cfg = config(agent("a"), explorer=_explorer)
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        sure = Passing(_made(t, "a", remember("k", 1)), ("schema",))
        unsure = Passing(_made(t, "a", remember("q", 2, confidence=0.1)), ("schema",))
        got["kept"] = await explore(t, (sure, unsure))
        got["sure"] = sure

    played = _staged(cfg, body)
    assert got["kept"] == (got["sure"],)
    spawned = played.one("exploration.spawned")
    assert spawned.data["explorer"] == "explorer-1"
    assert played.one("agent.spawned", "explorer-1").causes == (spawned.seq,)
    assert [c for c, _ in played.rejections()] == ["confidence"]


def test_explore_refuses_low_confidence_when_the_run_has_no_explorer() -> None:
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        unsure = Passing(_made(t, "a", remember("q", 2, confidence=0.1)))
        got["kept"] = await explore(t, (unsure,))

    played = _staged(config(agent("a")), body)
    assert got["kept"] == ()
    assert "the run has no explorer" in played.rejections()[0][1]
    assert not played.of("agent.spawned", "explorer-1")


def test_resolve_conflicts_keeps_one_winner_per_resource_and_marks_the_survivors() -> None:
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        first = Passing(_made(t, "a", plan("day1", "Lugano"), 0), ("schema",))
        second = Passing(_made(t, "b", plan("day1", "Bellinzona"), 1), ("schema",))
        alone = Passing(_made(t, "b", remember("k", 1), 1), ("schema",))
        got["out"] = resolve_conflicts(t, (first, second, alone))
        got["seqs"] = (first.made.seq, second.made.seq, alone.made.seq)

    played = _staged(config(agent("a"), agent("b")), body)
    first, second, alone = got["seqs"]
    assert [(p.made.seq, p.checks) for p in got["out"]] == [
        (first, ("schema", "conflict")),
        (alone, ("schema", "conflict")),
    ]
    resolved = played.one("conflict.resolved")
    assert (resolved.data["winner"], resolved.data["losers"]) == (first, [second])
    assert [c for c, _ in played.rejections("b")] == ["conflict"]


def test_ground_refuses_an_unsupported_claim_and_names_the_agent_to_restore() -> None:
    got: dict[str, Any] = {}
    invented = Claim(key="price", value=99, evidence=())

    async def body(run: Run, t: Tick) -> None:
        honest = Passing(_made(t, "a", remember("k", 1)))
        liar = Passing(_made(t, "b", remember("p", 99, claims=[invented]), 1))
        got["grounded"] = ground(t, (honest, liar))
        got["honest"] = honest

    played = _staged(config(agent("a"), agent("b")), body)
    grounded = got["grounded"]
    assert grounded.passing == (got["honest"],)  # no claims: nothing to ground
    assert grounded.hallucinated == ("b",)
    assert played.one("hallucination.detected").agent == "b"
    assert [c for c, _ in played.rejections("b")] == ["grounding"]


def test_approve_waits_for_the_approver_and_refuses_a_denial() -> None:
    calls = Calls()
    risky = echo_tool(calls, name="wire", high_impact=True)
    asked: list[int] = []

    async def approver(agent_name: str, tool_name: str, args: Any) -> bool:
        asked.append(int(args["x"]))
        return int(args["x"]) == 1

    cfg = config(
        agent("a", tools=("wire",)), agent("b", tools=("wire",)), tools=[risky], approver=approver
    )
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        yes = Passing(_made(t, "a", call("wire", x=1)), ("schema",))
        no = Passing(_made(t, "b", call("wire", x=2), 1), ("schema",))
        got["out"] = await approve(t, (yes, no))

    played = _staged(cfg, body)
    assert asked == [1, 2]
    assert [(p.made.agent, p.checks) for p in got["out"]] == [("a", ("schema", "approval"))]
    assert [t.kind for t in played.transitions()].count("run.paused") == 2
    assert played.one("approval.granted").agent == "a"
    assert played.one("approval.denied").agent == "b"
    assert calls.count("wire") == 0  # approving runs nothing


def test_commit_effects_records_effects_and_hands_over_tool_calls() -> None:
    calls = Calls()
    cfg = config(agent("a"), agent("b", tools=("echo",)), tools=[echo_tool(calls)])
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        mem = Passing(_made(t, "a", remember("k", 1)), ("schema",))
        use = Passing(_made(t, "b", call("echo", x=3), 1), ("schema", "conflict"))
        got["calls"] = await commit_effects(t, (mem, use))

    played = _staged(cfg, body)
    (tc,) = got["calls"]
    started = played.one("tool.started")
    assert (tc.agent, tc.tool.name, tc.args, tc.started, tc.attempt) == (
        "b",
        "echo",
        {"x": 3},
        started.seq,
        1,
    )
    assert tc.call_id == started.data["call_id"]
    assert played.one("memory.updated").agent == "a"
    accepted = played.of("proposal.accepted")
    assert [a.data["checks"] for a in accepted] == [["schema"], ["schema", "conflict"]]
    assert calls.count("echo") == 0  # committed, not run: that is the execute stage


def test_execute_runs_calls_in_their_agents_and_retries_an_idempotent_one() -> None:
    tries = 0

    @tool(timeout=1.0, idempotent=True, retry=RetryPolicy(attempts=3, backoff_s=0.5))
    async def flaky(x: int) -> dict[str, int]:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise ConnectionError(f"try {tries}")
        return {"x": x}

    cfg = config(agent("a", tools=("flaky",)), tools=[flaky])
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        made = _made(t, "a", call("flaky", x=5))
        (tc,) = await commit_effects(t, (Passing(made),))
        got["executed"] = await execute(t, (tc,))

    played = _staged(cfg, body)
    assert got["executed"].failed == ()
    trail = [
        (t.kind, t.data.get("attempt")) for t in played.transitions() if t.kind.startswith("tool.")
    ]
    assert trail == [
        ("tool.started", 1),
        ("tool.failed", None),
        ("tool.started", 2),
        ("tool.failed", None),
        ("tool.started", 3),
        ("tool.completed", None),
    ]
    assert not played.of("agent.failed")


def test_execute_reports_a_call_that_failed_for_good_and_its_supervisor_restarts_the_agent() -> (
    None
):
    @tool(timeout=1.0)
    async def broken(x: int) -> dict[str, int]:
        raise ValueError("no")

    cfg = config(agent("a", tools=("broken",)), tools=[broken])
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        (tc,) = await commit_effects(t, (Passing(_made(t, "a", call("broken", x=1))),))
        got["executed"] = await execute(t, (tc,))
        got["nothing"] = await execute(t, ())

    played = _staged(cfg, body)
    assert got["executed"].failed == ("a",)
    assert got["nothing"].failed == ()
    assert played.one("tool.failed").data["error"] == "ValueError"
    assert played.one("agent.failed").agent == "a"
    assert played.one("agent.restarted").agent == "a"


def test_settle_closes_the_tick_and_a_failing_progress_function_marks_the_run() -> None:
    def progress(state: Any) -> float:
        raise ZeroDivisionError("progress")

    cfg = config(agent("a"), progress=progress)
    got: dict[str, Any] = {}

    async def body(run: Run, t: Tick) -> None:
        await settle(t, invalid=False, hallucinated=())
        got["fault"] = run.fault

    played = _staged(cfg, body)
    closed = played.one("tick.completed")
    assert closed.data["valid"] is False
    assert "the progress function failed" in got["fault"]


def test_settle_restores_the_run_after_a_hallucination() -> None:
    async def body(run: Run, t: Tick) -> None:
        await settle(t, invalid=False, hallucinated=("a",))

    played = _staged(config(agent("a")), body)
    assert played.one("state.restored").data["reason"] == "hallucination by a"
    assert played.one("agent.restarted").agent == "a"
    assert played.one("tick.completed").data["valid"] is False
