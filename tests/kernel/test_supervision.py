"""Supervision through the kernel: crashed agents restart, and past the restart intensity the
supervisor escalates and the run fails, all of it in the ledger."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from telic.kernel import AgentSpec
from telic.minds.base import FunctionMind, View
from telic.policy import Policy
from telic.proposal import Proposal

from .kit import agent, config, finish, play, remember


def test_a_crashed_agent_restarts_and_the_others_are_untouched_under_one_for_one() -> None:
    cfg = config(
        agent("a", remember("k", 1), RuntimeError("boom"), finish()),
        agent("b", remember("k", 1), remember("k", 2), finish()),
    )
    played = play(cfg)
    assert [(t.kind, t.agent) for t in played.transitions() if t.kind.startswith("agent.")][
        2:4
    ] == [("agent.failed", "a"), ("agent.restarted", "a")]
    assert played.one("agent.restarted", "a").data["attempt"] == 1
    assert played.of("agent.restarted", "b") == []
    assert played.state()["agents"]["a"]["restarts"] == 1
    assert played.result is not None
    assert played.result.status == "completed"


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [("one_for_one", ["b"]), ("one_for_all", ["a", "b", "c"]), ("rest_for_one", ["b", "c"])],
)
def test_the_run_strategy_decides_who_restarts_with_a_crashed_agent(
    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"], restarted: list[str]
) -> None:
    steady = [remember("k", 1), remember("k", 2), finish()]
    cfg = config(
        agent("a", *steady),
        agent("b", remember("k", 1), RuntimeError("boom"), finish()),
        agent("c", *steady),
        strategy=strategy,
    )
    played = play(cfg)
    assert sorted(t.agent or "" for t in played.of("agent.restarted")) == restarted
    for name in restarted:
        if name != "b":
            assert played.of("agent.terminated", name)[0].data["reason"] == "shutdown"
            why = played.one("agent.restarted", name).data["reason"]
            assert why == f"{strategy}: 'b' exited (AgentCrash: RuntimeError: boom)"
    assert played.result is not None
    assert played.result.status == "completed"


def test_past_the_restart_intensity_the_supervisor_escalates_and_the_run_fails() -> None:
    def crash(view: View) -> Proposal:
        raise RuntimeError(f"crash in tick {view.tick}")

    cfg = config(
        AgentSpec("a", "worker", FunctionMind(crash)),
        agent("b", remember("k", 1), remember("k", 2), remember("k", 3), remember("k", 4)),
        intensity=2,
        period_s=5.0,
    )
    played = play(cfg)
    assert [t.tick for t in played.of("agent.restarted", "a")] == [1, 2]
    escalated = played.one("supervisor.escalated").data
    assert escalated["supervisor"] == "root"
    assert escalated["restarts"] == 3
    assert escalated["period_s"] == 5.0
    assert escalated["reason"] == "AgentCrash: RuntimeError: crash in tick 3"
    failed = played.one("run.failed")
    assert failed.tick == 3
    assert failed.data["reason"].startswith("supervisor gave up: AgentCrash: RuntimeError")
    assert played.kinds()[-1] == "run.failed"
    assert played.state()["status"] == "failed"
    assert played.result is not None
    assert played.result.status == "failed"


def test_restarts_spread_wider_than_the_period_do_not_escalate() -> None:
    crashes = iter([True, False, True, False, True, False])

    async def slow_and_flaky(view: View) -> Proposal:
        await asyncio.sleep(4.0)  # virtual: two crashes are 8 s apart, more than 5 s
        if next(crashes):
            raise RuntimeError("flaky")
        return remember("tick", view.tick)

    cfg = config(
        AgentSpec("a", "worker", FunctionMind(slow_and_flaky)),
        intensity=1,
        period_s=5.0,
        policy=Policy(stall_ticks=0),
    )
    played = play(cfg, max_ticks=6)
    assert len(played.of("agent.restarted", "a")) == 3
    assert "supervisor.escalated" not in played.kinds()
    assert played.state()["status"] == "running"
