"""Kernel bugs the simulator found (issue 16), each with the seed that showed it.

Each test failed before its fix: the first started a tick its budget no longer allowed
(``python -m telic.sim --seed 198 --plan '[{"seam":"crash","op":4,"when":"after"}]'``), the
second let a KeyError escape ``Kernel.run`` (``--seed 366``, a mind raising once), the third
hung (the same swarm with a tool call instead of a finish).
"""

from __future__ import annotations

from telic.clock import VirtualClock
from telic.kernel import Budget, Kernel
from telic.kernel.tick import run_tick
from telic.kinds import Claim
from telic.policy import Policy
from telic.sim.loop import SimClock, drive
from telic.tools import tool

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
    remember,
)


def test_resume_runs_the_end_of_tick_checks_the_dead_process_missed() -> None:
    """The process died after a tick's ``tick.completed`` was committed and before the
    checks that would have stopped the run (its tick budget was spent): the resumed run
    must stop, not start one more tick."""
    ledger = new_ledger()
    cfg = config(
        agent("a", remember("k", 1), repeat_last=True),
        budget=Budget(ticks=1),
        policy=Policy(stall_ticks=10),
    )

    async def scenario(clock: VirtualClock) -> str:
        run = await Kernel(ledger, clock=clock).boot(cfg, run_id="r")
        await run_tick(run)  # committed through tick.completed; then the process dies
        await run.close()
        resumed = await Kernel(ledger, clock=clock).resume("r", cfg)
        result = await resumed.until_done()
        return result.status

    status = on_virtual_time(scenario)
    played = Played(ledger, "r")
    assert status == "stopped"
    assert played.state()["spent"]["ticks"] == 1
    assert played.kinds().count("tick.started") == 1
    assert played.one("run.stopped").data["reason"] == "budget exhausted: ticks"


def test_an_agent_stopped_by_a_group_restart_can_still_finish_its_proposal() -> None:
    """Under one_for_all, a crash of one agent stops its temporary sibling for good; the
    sibling's proposal of the same tick (finish) must not make the kernel raise."""
    ledger = new_ledger()
    cfg = config(
        agent("a", RuntimeError("the mind failed"), finish()),
        agent("b", finish(), restart="temporary"),
        strategy="one_for_all",
    )

    async def scenario(clock: VirtualClock) -> str:
        result = await Kernel(ledger, clock=clock).run(cfg, run_id="r")
        return result.status

    assert on_virtual_time(scenario) == "completed"
    played = Played(ledger, "r")
    assert [t.data["reason"] for t in played.of("agent.terminated", "b")][:1] == ["shutdown"]


def test_a_tool_call_of_an_agent_stopped_by_a_group_restart_is_refused_not_awaited() -> None:
    """The same, with a tool call: it was accepted and sent to the stopped agent's process,
    which no task served any more, and the tick waited for it forever."""
    ledger = new_ledger()
    calls = Calls()
    cfg = config(
        agent("a", RuntimeError("the mind failed"), finish()),
        agent("b", call("echo", x=1), finish(), restart="temporary", tools=("echo",)),
        tools=[echo_tool(calls)],
        strategy="one_for_all",
    )

    clock = SimClock()

    async def scenario() -> str:
        result = await Kernel(ledger, clock=clock).run(cfg, run_id="r")
        return result.status

    # On the simulator's loop a hang is a result, not a test that never ends.
    ran = drive(clock, scenario(), virtual_deadline=3600, real_timeout_s=60)
    assert (ran.hang, ran.error, ran.value) == (None, None, "completed")
    played = Played(ledger, "r")
    assert calls.count("echo") == 0
    assert played.of("tool.started") == []
    assert ("supervision", played.rejections("b")[0][1]) == played.rejections("b")[0]


def test_a_hallucinating_agent_killed_under_one_for_all_is_restarted_before_the_next_tick() -> None:
    """The kernel took the killed agent's exit for the supervisor's whole reaction and began
    the next tick while the group restart was still stopping the temporary sibling, whose
    request then waited forever (``python -m telic.sim --seed 85 --plan '[]'``)."""
    ledger = new_ledger()
    bogus = Claim(key="n", value=12345, evidence=(2,))  # seq 2 is agent.spawned
    cfg = config(
        agent("a", remember("k", 1), remember("k", 2, claims=[bogus]), finish()),
        agent(
            "b", remember("j", 1), remember("j", 2), remember("j", 3), finish(), restart="temporary"
        ),
        strategy="one_for_all",
    )
    clock = SimClock()

    async def scenario() -> str:
        result = await Kernel(ledger, clock=clock).run(cfg, run_id="r")
        return result.status

    ran = drive(clock, scenario(), virtual_deadline=3600, real_timeout_s=60)
    assert (ran.hang, ran.error) == (None, None)
    played = Played(ledger, "r")
    assert played.of("hallucination.detected", "a")
    assert [t.data["reason"] for t in played.of("agent.terminated", "b")] == ["shutdown"]
    assert played.of("agent.restarted", "a")


def test_a_hallucinating_agent_a_group_restart_already_stopped_is_not_killed_again() -> None:
    """A temporary agent flagged for a hallucination, stopped for good in the same tick by a
    group restart (a sibling's tool failed): killing it at the end of the tick raised KeyError
    out of ``Kernel.run`` (``python -m telic.sim --seed 661``)."""

    @tool(name="broken", timeout=5.0)
    async def broken(x: int) -> dict[str, int]:
        raise RuntimeError(f"broken {x}")

    ledger = new_ledger()
    bogus = Claim(key="n", value=12345, evidence=(2,))  # seq 2 is agent.spawned
    cfg = config(
        agent("a", call("broken", x=1), finish(), tools=("broken",)),
        agent("b", remember("j", 1, claims=[bogus]), finish(), restart="temporary"),
        tools=[broken],
        strategy="one_for_all",
    )
    clock = SimClock()

    async def scenario() -> str:
        result = await Kernel(ledger, clock=clock).run(cfg, run_id="r")
        return result.status

    ran = drive(clock, scenario(), virtual_deadline=3600, real_timeout_s=60)
    assert (ran.hang, ran.error) == (None, None)
    played = Played(ledger, "r")
    assert played.of("hallucination.detected", "b")
    assert played.of("tool.failed", "a")
    assert played.of("agent.restarted", "a")
    assert not played.of("agent.restarted", "b")
