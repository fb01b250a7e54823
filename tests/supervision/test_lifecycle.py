"""Starting and stopping: order, start failures, grace periods, no orphans, the owner's API."""

from __future__ import annotations

import asyncio

import pytest

from telic.errors import SupervisionError
from telic.kinds import Payload
from telic.supervision import ChildCount, ChildInfo, ChildSpec, Supervisor

from .kit import Puppets, Recorder, crashing_every, forever, now, run, settle


def test_children_start_in_spec_order_and_stop_in_reverse() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = Supervisor("root", [p.spec("a"), p.spec("b"), p.spec("c")], on_event=rec)
        await sup.start()
        await settle()
        assert p.take() == ["start a", "start b", "start c"]
        assert [c.id for c in sup.which_children()] == ["a", "b", "c"]
        await sup.stop()
        assert p.take() == ["stop c", "stop b", "stop a"]
        assert rec.lines() == [
            "terminated c shutdown",
            "terminated b shutdown",
            "terminated a shutdown",
        ]
        assert not sup.running

    run(scenario)


def test_a_child_whose_start_raises_fails_the_start() -> None:
    def broken() -> asyncio.Future[None]:
        raise ValueError("no such model")

    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        children = [p.spec("a"), ChildSpec("b", broken), p.spec("c")]  # type: ignore[arg-type]
        sup = Supervisor("root", children, on_event=rec)
        with pytest.raises(ValueError, match="no such model"):
            await sup.start()
        assert p.take() == []  # a's task was stopped before its body ever ran
        assert rec.lines() == ["failed b ValueError", "terminated a shutdown"]
        assert not sup.running

    run(scenario)


def test_stop_gives_a_grace_period_then_cancels_again() -> None:
    """A child that catches the first cancellation and takes 2 s to clean up."""

    async def scenario(shutdown: float | str) -> tuple[float, bool]:
        cleaned: list[bool] = []

        async def stubborn() -> None:
            try:
                await forever()
            except asyncio.CancelledError:
                await asyncio.sleep(2.0)  # cleaning up, deaf to the first cancellation
                cleaned.append(True)
                raise

        sup = Supervisor("root", [ChildSpec("s", stubborn, shutdown=shutdown)])  # type: ignore[arg-type]
        await sup.start()
        await settle()
        t0 = now()
        await sup.stop()
        return now() - t0, bool(cleaned)

    took, cleaned = run(lambda: scenario(5.0))  # within its grace: it finishes cleanup
    assert took == pytest.approx(2.0)
    assert cleaned
    took, cleaned = run(lambda: scenario("infinity"))
    assert took == pytest.approx(2.0)
    assert cleaned
    took, cleaned = run(lambda: scenario(0.5))  # grace over: cancelled again
    assert took == pytest.approx(0.5)
    assert not cleaned
    took, cleaned = run(lambda: scenario("brutal_kill"))  # no grace at all
    assert took < 0.01
    assert not cleaned


def test_no_task_is_left_after_stop_even_in_a_nested_tree() -> None:
    async def scenario() -> None:
        inner = Supervisor("inner", [ChildSpec(f"w{i}", forever) for i in range(5)])
        pool = Supervisor("pool", strategy="simple_one_for_one")
        root = Supervisor("root", [ChildSpec("a", forever), inner, pool])
        await root.start()
        for i in range(10):
            await pool.start_child(ChildSpec(f"p{i}", forever))
        await settle()
        # main, root, a, inner and its 5, pool and its 10
        assert len(asyncio.all_tasks()) == 1 + 1 + 1 + (1 + 5) + (1 + 10)
        await root.stop()
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert not inner.running
        assert not pool.running

    run(scenario)  # run() also fails on orphans


def test_a_nested_supervisor_brutally_killed_still_stops_its_children() -> None:
    async def scenario() -> None:
        p = Puppets()
        inner = Supervisor("inner", [p.spec("x"), p.spec("y")])
        root = Supervisor("root", [inner.as_child(shutdown="brutal_kill")])
        await root.start()
        await settle()
        await root.stop()
        assert sorted(p.take()) == ["start x", "start y", "stop x", "stop y"]
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(scenario)


def test_stopping_a_nested_supervisor_stops_its_children_in_reverse_first() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        inner = Supervisor("inner", [p.spec("x"), p.spec("y")])
        root = Supervisor("root", [p.spec("a"), inner, p.spec("b")], on_event=rec)
        await root.start()
        await settle()
        assert p.take() == ["start a", "start x", "start y", "start b"]
        await root.stop()
        assert p.take() == ["stop b", "stop y", "stop x", "stop a"]
        assert rec.lines() == [
            "terminated b shutdown",
            "terminated y shutdown",  # the inner supervisor reports through its parent's sink
            "terminated x shutdown",
            "terminated inner shutdown",
            "terminated a shutdown",
        ]

    run(scenario)


def test_child_management_calls() -> None:
    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        sup = Supervisor("root", [p.spec("a"), p.spec("b", restart="transient")], on_event=rec)
        await sup.start()
        await sup.start_child(p.spec("c"))
        with pytest.raises(ValueError, match="already has a child 'c'"):
            await sup.start_child(p.spec("c"))
        await settle()
        assert sup.count_children() == ChildCount(specs=3, active=3, supervisors=0, workers=3)

        await sup.terminate_child("b")
        assert sup.which_children()[1] == ChildInfo(
            id="b", running=False, restarts=0, restart="transient", kind="worker"
        )
        with pytest.raises(ValueError, match="running"):
            await sup.delete_child("a")
        with pytest.raises(ValueError, match="running"):
            await sup.restart_child("a")
        await sup.restart_child("b")
        await settle()
        await sup.terminate_child("c")
        await sup.delete_child("c")
        with pytest.raises(KeyError, match="no child 'c'"):
            await sup.terminate_child("c")
        assert [c.id for c in sup.which_children()] == ["a", "b"]
        assert p.take() == ["start a", "start b", "start c", "stop b", "start b", "stop c"]
        assert rec.take() == ["terminated b shutdown", "restarted b #1", "terminated c shutdown"]
        await sup.stop()
        with pytest.raises(RuntimeError, match="not running"):
            await sup.start_child(p.spec("d"))

    run(scenario)


def test_async_with_starts_stops_and_surfaces_a_failure() -> None:
    async def scenario() -> None:
        p = Puppets()
        async with Supervisor("root", [p.spec("a")]) as sup:
            await settle()
            assert sup.running
        assert p.take() == ["start a", "stop a"]
        with pytest.raises(SupervisionError, match="'root' exceeded its restart intensity"):
            async with Supervisor("root", [ChildSpec("c", crashing_every(1.0))]):
                await asyncio.sleep(10)

    run(scenario)


def test_stop_is_idempotent_and_wait_needs_a_started_supervisor() -> None:
    async def scenario() -> None:
        sup = Supervisor("root", [ChildSpec("a", forever)])
        with pytest.raises(RuntimeError, match="not started"):
            await sup.wait()
        await sup.stop()  # never started: nothing to do
        await sup.start()
        with pytest.raises(RuntimeError, match="already running"):
            await sup.start()
        await sup.stop()
        await sup.stop()
        await sup.wait()  # stopped normally: returns

    run(scenario)


def test_a_nested_supervisor_is_started_and_stopped_by_its_parent_only() -> None:
    async def scenario() -> None:
        inner = Supervisor("inner", [ChildSpec("a", forever)])
        root = Supervisor("root", [inner])
        await root.start()
        with pytest.raises(RuntimeError, match="child of 'root'"):
            await inner.stop()
        with pytest.raises(RuntimeError, match="child of 'root'"):
            await inner.start()
        assert root.which_children()[0].kind == "supervisor"
        await root.stop()

    run(scenario)


def test_an_on_event_that_raises_fails_the_supervisor_loudly() -> None:
    async def scenario() -> None:
        seen: list[Payload] = []

        def sink(event: Payload) -> None:
            seen.append(event)
            if event.kind == "agent.failed":
                raise OSError("ledger is read-only")

        p = Puppets()
        sup = Supervisor("root", [p.spec("a"), p.spec("b")], on_event=sink, intensity=5)
        await sup.start()
        await settle()
        p.crash("a")
        with pytest.raises(OSError, match="ledger is read-only"):
            await sup.wait()
        # The failure event reached the sink; the sink is then considered broken.
        assert [e.kind for e in seen] == ["agent.failed"]
        assert "stop b" in p.log
        assert not sup.running

    run(scenario)


def test_invalid_specs_and_supervisors_are_refused() -> None:
    with pytest.raises(ValueError, match="restart must be one of"):
        ChildSpec("a", forever, restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shutdown must be >= 0"):
        ChildSpec("a", forever, shutdown=-1.0)
    with pytest.raises(ValueError, match="shutdown must be seconds"):
        ChildSpec("a", forever, shutdown="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be significant"):
        ChildSpec("a", forever, significant=True)
    with pytest.raises(ValueError, match="duplicate child ids"):
        Supervisor("s", [ChildSpec("a", forever), ChildSpec("a", forever)])
    with pytest.raises(ValueError, match="unknown strategy"):
        Supervisor("s", strategy="all_for_one")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="intensity"):
        Supervisor("s", intensity=-1)
    with pytest.raises(ValueError, match="period"):
        Supervisor("s", period=0)
    with pytest.raises(ValueError, match="starts empty"):
        Supervisor("s", [ChildSpec("a", forever)], strategy="simple_one_for_one")


def test_a_grandchild_whose_start_raises_fails_the_root_start() -> None:
    def broken() -> asyncio.Future[None]:
        raise ValueError("bad tool config")

    async def scenario() -> None:
        p, rec = Puppets(), Recorder()
        inner = Supervisor("inner", [p.spec("x"), ChildSpec("bad", broken)])  # type: ignore[arg-type]
        root = Supervisor("root", [p.spec("a"), inner, p.spec("b")], on_event=rec)
        with pytest.raises(ValueError, match="bad tool config"):
            await root.start()
        assert rec.lines() == [
            "failed bad ValueError",
            "terminated x shutdown",
            "failed inner ValueError",
            "terminated a shutdown",
        ]
        assert not root.running
        assert not inner.running

    run(scenario)


def test_a_child_spec_is_an_immutable_record() -> None:
    spec = ChildSpec(id="a", start=forever, restart="transient", shutdown="brutal_kill")
    assert (spec.id, spec.restart, spec.shutdown, spec.significant) == (
        "a",
        "transient",
        "brutal_kill",
        False,
    )
    with pytest.raises(AttributeError):
        spec.id = "b"  # type: ignore[misc]
    inner = Supervisor("inner")
    as_child = inner.as_child("team", restart="transient")
    assert (as_child.id, as_child.restart, as_child.shutdown) == ("team", "transient", "infinity")
    assert "inner" in repr(as_child.start)
