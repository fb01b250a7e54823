"""A run's life: boot, step, until_done, and the three ways it ends, each a transition."""

from __future__ import annotations

from telic.clock import VirtualClock
from telic.kernel import Artifact, Budget, Kernel
from telic.policy import Policy
from telic.state import RunState
from telic.transition import Transition

from .kit import Played, agent, config, finish, new_ledger, on_virtual_time, play, remember


def test_boot_records_the_run_and_spawns_every_agent_in_order() -> None:
    ledger = new_ledger()
    cfg = config(agent("a", finish()), agent("b", finish()), budget=Budget(ticks=9))

    async def scenario(clock: VirtualClock) -> None:
        run = await Kernel(ledger, clock=clock).boot(cfg, run_id="r")
        assert [t.kind for t in ledger.read("r")] == [
            "run.booted",
            "agent.spawned",
            "agent.spawned",
        ]
        assert run.live_agents() == ["a", "b"]
        await run.close()

    on_virtual_time(scenario)
    booted = ledger.get("r", 1).data
    assert booted["goal"] == "test the kernel"
    assert [a["name"] for a in booted["agents"]] == ["a", "b"]
    assert booted["budget"] == {"ticks": 9.0}
    assert [t.data["agent"] for t in ledger.read("r", 2)] == ["a", "b"]
    assert all(t.causes == (1,) for t in ledger.read("r", 2))


def test_step_runs_one_tick_and_reports_whether_the_run_goes_on() -> None:
    ledger = new_ledger()
    cfg = config(agent("a", remember("k", 1), finish("done")))

    async def scenario(clock: VirtualClock) -> list[bool]:
        run = await Kernel(ledger, clock=clock).boot(cfg, run_id="r")
        first = await run.step()
        assert run.state.tick == 1
        assert run.state.memory == {"a": {"k": 1}}
        second = await run.step()
        third = await run.step()  # the run has ended: nothing more happens
        await run.close()
        return [first, second, third]

    assert on_virtual_time(scenario) == [True, False, False]
    played = Played(ledger, "r")
    assert played.kinds().count("tick.started") == 2
    assert played.one("run.completed").data["reason"] == "return condition met"


def _answer(state: RunState) -> list[Artifact]:
    return [Artifact("answer.json", "application/json", state.memory["a"])]


def test_until_done_completes_when_the_return_condition_holds_and_records_artifacts() -> None:
    cfg = config(agent("a", remember("answer", 42), finish({"answer": 42})), artifacts=_answer)
    played = play(cfg)
    assert played.result is not None
    assert played.result.status == "completed"
    assert played.result.head_hash == played.ledger.run("run").head_hash.hex()
    kinds = played.kinds()
    assert kinds[-2:] == ["artifact.recorded", "run.completed"]
    artifact = played.one("artifact.recorded").data
    assert artifact == {
        "name": "answer.json",
        "media_type": "application/json",
        "content": {"answer": 42},
    }
    assert played.one("run.completed").data["artifacts"] == ["answer.json"]
    assert played.state()["artifacts"]["answer.json"]["media_type"] == "application/json"


def _never(state: RunState) -> bool:
    return "never" in state.plan


def test_a_run_fails_with_a_reason_when_no_agent_is_left() -> None:
    # The return condition wants a plan key nobody sets; the only agent finishes.
    cfg = config(
        agent("a", finish()),
        return_condition=_never,
        return_description="a plan nobody makes",
    )
    played = play(cfg)
    assert played.result is not None
    assert played.result.status == "failed"
    assert played.one("run.failed").data["reason"] == "no live agents are left"
    assert played.state()["status"] == "failed"


def test_a_run_stops_when_a_budget_is_exhausted() -> None:
    cfg = config(
        agent("a", *(remember("i", i) for i in range(10))),
        budget=Budget(ticks=2),
        policy=Policy(stall_ticks=0),
    )
    played = play(cfg)
    assert played.result is not None
    assert (played.result.status, played.result.reason) == ("stopped", "budget exhausted: ticks")
    assert played.kinds().count("tick.started") == 2
    stopped = played.kinds().index("run.stopped")
    assert played.kinds()[stopped + 1 :] == ["agent.terminated"]
    assert played.of("agent.terminated")[-1].data["reason"] == "shutdown"


def test_max_ticks_leaves_the_run_running_and_stops_its_processes() -> None:
    cfg = config(agent("a", *(remember("i", i) for i in range(5))))
    played = play(cfg, max_ticks=2)
    assert played.result is not None
    assert played.result.status == "running"
    assert played.kinds().count("tick.completed") == 2
    assert "run.completed" not in played.kinds()


def test_agents_are_stopped_in_reverse_start_order_when_the_run_ends() -> None:
    steps = [remember("i", i) for i in range(3)]
    cfg = config(agent("a", *steps), agent("b", *steps), agent("c", *steps), budget=Budget(ticks=1))
    played = play(cfg)
    stopped = played.transitions()[played.kinds().index("run.stopped") + 1 :]
    assert [(t.kind, t.agent, t.data["reason"]) for t in stopped] == [
        ("agent.terminated", "c", "shutdown"),
        ("agent.terminated", "b", "shutdown"),
        ("agent.terminated", "a", "shutdown"),
    ]


def test_a_run_whose_agents_all_ended_for_good_fails_instead_of_ticking_on() -> None:
    cfg = config(
        agent("a", RuntimeError("gone"), restart="temporary"), policy=Policy(stall_ticks=0)
    )
    played = play(cfg, max_ticks=10)
    assert played.one("agent.failed", "a").data["message"] == "RuntimeError: gone"
    assert "agent.restarted" not in played.kinds()
    failed = played.one("run.failed")
    assert (failed.tick, failed.data["reason"]) == (1, "no live agents are left")
    assert played.kinds().count("tick.started") == 1


def test_every_committed_transition_is_published_once_in_order() -> None:
    ledger = new_ledger()
    published: list[Transition] = []
    cfg = config(agent("a", remember("k", 1), finish()), agent("b", RuntimeError("x"), finish()))

    async def scenario(clock: VirtualClock) -> str:
        kernel = Kernel(ledger, clock=clock, publish=published.extend)
        await kernel.run(cfg, run_id="r")
        return kernel.fork("r", 5, new_id="f")

    fork = on_virtual_time(scenario)
    assert [(t.run, t.seq) for t in published] == [
        *(("r", t.seq) for t in ledger.read("r")),
        (fork, 6),
    ]
    assert published[-1].kind == "run.forked"


def test_max_ticks_zero_boots_the_run_and_ticks_nothing() -> None:
    played = play(config(agent("a", finish())), max_ticks=0)
    assert played.kinds() == ["run.booted", "agent.spawned"]
    assert played.result is not None
    assert played.result.status == "running"
