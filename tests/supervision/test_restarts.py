"""Restart types, kill, and the four strategies."""

from __future__ import annotations

import asyncio

import pytest

from telic.supervision import ChildCount, ChildSpec, RestartType, Supervisor

from .kit import Puppets, Recorder, forever, run, settle

# -- restart types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "after_crash", "after_return"),
    [
        ("permanent", True, True),
        ("transient", True, False),
        ("temporary", False, False),
    ],
)
def test_restart_types(restart: RestartType, after_crash: bool, after_return: bool) -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = Supervisor("root", [p.spec("a", restart=restart)], on_event=rec, intensity=5)
        await sup.start()
        await settle()
        p.crash("a")
        await settle()
        restarted = rec.lines() == ["failed a RuntimeError", "restarted a #1"]
        assert restarted == after_crash
        assert rec.take()[0] == "failed a RuntimeError"
        assert [c.id for c in sup.which_children()] == ([] if restart == "temporary" else ["a"])
        if not after_crash:
            await sup.stop()
            return
        p.finish("a")
        await settle()
        expected = ["terminated a normal"] + (["restarted a #2"] if after_return else [])
        assert rec.take() == expected
        info = sup.which_children()[0]
        assert (info.running, info.restarts) == (after_return, 2 if after_return else 1)
        await sup.stop()

    run(scenario)


@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
def test_kill_is_an_abnormal_exit(restart: RestartType) -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = Supervisor("root", [p.spec("a", restart=restart), p.spec("b")], on_event=rec)
        await sup.start()
        await settle()
        assert sup.kill("a", "hallucination")
        await settle()
        if restart == "temporary":
            assert rec.take() == ["terminated a hallucination"]
            assert [c.id for c in sup.which_children()] == ["b"]
        else:
            assert rec.take() == ["terminated a hallucination", "restarted a #1"]
            assert p.take() == ["start a", "start b", "stop a", "start a"]
            assert rec.events == []
        await sup.stop()

    run(scenario)


def test_kill_reports_whether_it_killed_and_knows_its_children() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = Supervisor("root", [p.spec("a", restart="transient")], on_event=rec)
        await sup.start()
        await settle()
        p.finish("a")
        await settle()
        assert not sup.kill("a")  # it already ended
        with pytest.raises(KeyError, match="no child 'zz'"):
            sup.kill("zz")
        await sup.stop()

    run(scenario)


def test_a_child_that_swallows_the_kill_is_still_restarted_as_killed() -> None:
    async def scenario() -> None:
        rec = Recorder()
        starts: list[int] = []

        async def deaf() -> None:
            starts.append(1)
            try:
                await forever()
            except asyncio.CancelledError:
                return  # swallows the cancellation (a bug, but the kill still counts)

        sup = Supervisor("root", [ChildSpec("a", deaf)], on_event=rec)
        await sup.start()
        await settle()
        sup.kill("a")
        await settle()
        assert rec.take() == ["terminated a killed", "restarted a #1"]
        assert len(starts) == 2
        await sup.stop()

    run(scenario)


def test_a_child_cancelled_by_someone_else_counts_as_failed() -> None:
    async def scenario() -> None:
        rec = Recorder()
        mine: list[asyncio.Task[None]] = []

        async def body() -> None:
            task = asyncio.current_task()
            assert task is not None
            mine.append(task)  # type: ignore[arg-type]
            await forever()

        sup = Supervisor("root", [ChildSpec("a", body, restart="transient")], on_event=rec)
        await sup.start()
        await settle()
        mine[0].cancel()
        await settle()
        assert rec.take() == ["failed a CancelledError", "restarted a #1"]
        await sup.stop()

    run(scenario)


# -- strategies ----------------------------------------------------------------------------


def _three(strategy: str, p: Puppets, rec: Recorder) -> Supervisor:
    specs = [p.spec("a"), p.spec("b"), p.spec("c")]
    return Supervisor("root", specs, strategy=strategy, on_event=rec)  # type: ignore[arg-type]


def test_one_for_one_restarts_only_the_failed_child() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = _three("one_for_one", p, rec)
        await sup.start()
        await settle()
        p.take()
        p.crash("b")
        await settle()
        assert p.take() == ["start b"]
        assert rec.take() == ["failed b RuntimeError", "restarted b #1"]
        await sup.stop()

    run(scenario)


def test_one_for_all_stops_the_others_in_reverse_then_restarts_all_in_order() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = _three("one_for_all", p, rec)
        await sup.start()
        await settle()
        p.take()
        p.crash("b")
        await settle()
        assert p.take() == ["stop c", "stop a", "start a", "start b", "start c"]
        assert rec.take() == [
            "failed b RuntimeError",
            "terminated c shutdown",
            "terminated a shutdown",
            "restarted a #1",
            "restarted b #1",
            "restarted c #1",
        ]
        await sup.stop()

    run(scenario)


def test_one_for_all_gives_siblings_a_reason_naming_the_failed_child() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = _three("one_for_all", p, rec)
        await sup.start()
        await settle()
        p.crash("b")
        await settle()
        reasons = [getattr(e, "reason", None) for e in rec.events if e.kind == "agent.restarted"]
        assert reasons == [
            "one_for_all: 'b' exited (RuntimeError: b crashed)",
            "RuntimeError: b crashed",
            "one_for_all: 'b' exited (RuntimeError: b crashed)",
        ]
        await sup.stop()

    run(scenario)


def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        specs = [p.spec("a"), p.spec("b"), p.spec("c"), p.spec("d")]
        sup = Supervisor("root", specs, strategy="rest_for_one", on_event=rec)
        await sup.start()
        await settle()
        p.take()
        p.crash("b")
        await settle()
        assert p.take() == ["stop d", "stop c", "start b", "start c", "start d"]
        assert rec.take() == [
            "failed b RuntimeError",
            "terminated d shutdown",
            "terminated c shutdown",
            "restarted b #1",
            "restarted c #1",
            "restarted d #1",
        ]
        await sup.stop()

    run(scenario)


def test_one_for_all_does_not_bring_back_temporary_siblings() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        specs = [p.spec("a"), p.spec("t", restart="temporary"), p.spec("c")]
        sup = Supervisor("root", specs, strategy="one_for_all", on_event=rec)
        await sup.start()
        await settle()
        p.crash("a")
        await settle()
        assert rec.take() == [
            "failed a RuntimeError",
            "terminated c shutdown",
            "terminated t shutdown",
            "restarted a #1",
            "restarted c #1",
        ]
        assert [c.id for c in sup.which_children()] == ["a", "c"]
        await sup.stop()

    run(scenario)


def test_a_child_added_later_is_stopped_first() -> None:
    async def scenario() -> None:
        p = Puppets()
        sup = Supervisor("root", [p.spec("a"), p.spec("b")])
        await sup.start()
        await sup.start_child(p.spec("late"))
        await settle()
        await sup.stop()
        assert p.take()[3:] == ["stop late", "stop b", "stop a"]

    run(scenario)


def test_simple_one_for_one_is_a_dynamic_pool() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        pool = Supervisor("pool", strategy="simple_one_for_one", on_event=rec, intensity=10)
        await pool.start()
        assert pool.count_children() == ChildCount(specs=0, active=0, supervisors=0, workers=0)
        for i in range(4):
            await pool.start_child(p.spec(f"w{i}", restart="transient"))
        await pool.start_child(p.spec("tmp", restart="temporary"))
        await settle()
        assert pool.count_children().active == 5

        p.crash("w1")  # restarted alone
        p.crash("tmp")  # gone for good
        p.finish("w2")  # transient, normal exit: gone (a pool keeps no spec of dead children)
        await settle()
        assert rec.take() == [
            "failed w1 RuntimeError",
            "restarted w1 #1",
            "failed tmp RuntimeError",
            "terminated w2 normal",
        ]
        assert [c.id for c in pool.which_children()] == ["w0", "w1", "w3"]

        await pool.terminate_child("w0")
        assert [c.id for c in pool.which_children()] == ["w1", "w3"]
        with pytest.raises(ValueError, match="simple_one_for_one"):
            await pool.restart_child("w1")
        with pytest.raises(ValueError, match="simple_one_for_one"):
            await pool.delete_child("w1")
        rec.take()
        await pool.stop()
        assert rec.take() == ["terminated w3 shutdown", "terminated w1 shutdown"]

    run(scenario)


def test_a_pool_stops_its_children_at_once_not_one_grace_period_after_another() -> None:
    async def scenario() -> float:
        async def slow_to_stop() -> None:
            try:
                await forever()
            except asyncio.CancelledError:
                await asyncio.sleep(1.0)
                raise

        pool = Supervisor("pool", strategy="simple_one_for_one")
        await pool.start()
        for i in range(5):
            await pool.start_child(ChildSpec(f"w{i}", slow_to_stop))
        await settle()
        t0 = asyncio.get_running_loop().time()
        await pool.stop()
        return asyncio.get_running_loop().time() - t0

    assert run(scenario) == pytest.approx(1.0)


def test_auto_shutdown_when_a_significant_child_ends() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        specs = [p.spec("worker"), p.spec("job", restart="transient", significant=True)]
        sup = Supervisor("root", specs, auto_shutdown="any_significant", on_event=rec)
        await sup.start()
        await settle()
        p.finish("job")
        await sup.wait()  # stops normally
        assert rec.take() == ["terminated job normal", "terminated worker shutdown"]

    run(scenario)


def test_auto_shutdown_all_significant_waits_for_every_significant_child() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        specs = [
            p.spec("worker"),
            p.spec("j1", restart="temporary", significant=True),
            p.spec("j2", restart="transient", significant=True),
        ]
        sup = Supervisor("root", specs, auto_shutdown="all_significant", on_event=rec)
        await sup.start()
        await settle()
        p.finish("j1")
        await settle()
        assert sup.running
        p.crash("j2")  # abnormal: transient is restarted, so it has not ended
        await settle()
        assert sup.running
        p.finish("j2")
        await sup.wait()
        assert rec.take()[-2:] == ["terminated j2 normal", "terminated worker shutdown"]

    run(scenario)


def test_auto_shutdown_is_not_triggered_by_terminate_child() -> None:
    async def scenario() -> None:
        p = Puppets()
        specs = [p.spec("w"), p.spec("job", restart="transient", significant=True)]
        sup = Supervisor("root", specs, auto_shutdown="any_significant")
        await sup.start()
        await sup.terminate_child("job")
        await settle()
        assert sup.running
        await sup.stop()

    run(scenario)


def test_rest_for_one_with_the_last_child_failing_restarts_only_it() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = _three("rest_for_one", p, rec)
        await sup.start()
        await settle()
        p.take()
        p.crash("c")
        await settle()
        assert p.take() == ["start c"]
        assert rec.take() == ["failed c RuntimeError", "restarted c #1"]
        await sup.stop()

    run(scenario)


def test_killing_a_nested_supervisor_restarts_its_whole_subtree() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        inner = Supervisor("inner", [p.spec("x"), p.spec("y")])
        root = Supervisor("root", [p.spec("a"), inner], on_event=rec)
        await root.start()
        await settle()
        p.take()
        assert root.kill("inner")
        await settle()
        assert p.take() == ["stop y", "stop x", "start x", "start y"]
        assert rec.take() == [
            "terminated y shutdown",
            "terminated x shutdown",
            "terminated inner killed",
            "restarted inner #1",
        ]
        assert inner.running
        assert [c.restarts for c in inner.which_children()] == [0, 0]  # a fresh start
        await root.stop()

    run(scenario)


def test_a_nested_supervisor_can_be_terminated_and_restarted_by_id() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        inner = Supervisor("inner", [p.spec("x")])
        root = Supervisor("root", [inner.as_child("team")], on_event=rec)
        await root.start()
        await root.terminate_child("team")
        assert not inner.running
        await root.restart_child("team")
        await settle()
        assert inner.running
        assert rec.take() == [
            "terminated x shutdown",
            "terminated team shutdown",
            "restarted team #1",
        ]
        await root.stop()

    run(scenario)
