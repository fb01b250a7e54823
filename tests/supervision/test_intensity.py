"""Restart intensity, escalation through a parent, failed restarts, and determinism."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telic.errors import SupervisionError
from telic.supervision import ChildSpec, Supervisor

from .kit import Puppets, Recorder, crashing_every, forever, run, settle


def test_more_than_intensity_restarts_in_period_makes_the_supervisor_give_up() -> None:
    async def scenario() -> None:
        rec = Recorder()
        sup = Supervisor(
            "root", [ChildSpec("a", forever), ChildSpec("c", crashing_every(1.0))], on_event=rec
        )  # OTP's default: 1 restart in 5 s
        await sup.start()
        with pytest.raises(SupervisionError, match="'root' exceeded") as info:
            await sup.wait()
        assert info.value.supervisor == "root"
        assert rec.lines() == [
            "failed c RuntimeError",  # t=1: the first restart is allowed
            "restarted c #1",
            "failed c RuntimeError",  # t=2: a second one within 5 s is not
            "escalated root 2",
            "terminated a shutdown",
        ]
        assert asyncio.get_running_loop().time() == pytest.approx(2.0)
        assert not sup.running

    run(scenario)


def test_restarts_spread_wider_than_the_period_never_escalate() -> None:
    async def scenario() -> None:
        rec = Recorder()
        sup = Supervisor("root", [ChildSpec("c", crashing_every(6.0))], on_event=rec)
        await sup.start()
        await asyncio.sleep(6.0 * 10 + 1)
        assert sup.running
        assert rec.lines()[-1] == "restarted c #10"
        await sup.stop()

    run(scenario)


def test_the_window_counts_restarts_within_period_seconds() -> None:
    """3 allowed in 10 s; crashes every 3 s: t=3, 6, 9 fine, t=12 is the 4th within [2, 12]."""

    async def scenario() -> None:
        rec = Recorder()
        sup = Supervisor(
            "root", [ChildSpec("c", crashing_every(3.0))], intensity=3, period=10.0, on_event=rec
        )
        await sup.start()
        with pytest.raises(SupervisionError):
            await sup.wait()
        assert asyncio.get_running_loop().time() == pytest.approx(12.0)
        assert rec.lines()[-2:] == ["failed c RuntimeError", "escalated root 4"]

    run(scenario)


def test_intensity_zero_gives_up_at_the_first_failure() -> None:
    async def scenario() -> None:
        rec = Recorder()
        sup = Supervisor("root", [ChildSpec("c", crashing_every(1.0))], intensity=0, on_event=rec)
        await sup.start()
        with pytest.raises(SupervisionError):
            await sup.wait()
        assert rec.lines() == ["failed c RuntimeError", "escalated root 1"]

    run(scenario)


def test_escalation_reaches_the_parent_which_restarts_the_child_supervisor() -> None:
    async def scenario() -> None:
        rec = Recorder()
        p = Puppets()
        inner = Supervisor("inner", [p.spec("sibling"), ChildSpec("c", crashing_every(1.0))])
        root = Supervisor("root", [p.spec("x"), inner], intensity=1, period=5.0, on_event=rec)
        await root.start()
        with pytest.raises(SupervisionError, match="'root'"):
            await root.wait()
        assert rec.lines() == [
            # inner: 1 restart allowed, the 2nd within 5 s escalates to root
            "failed c RuntimeError",
            "restarted c #1",
            "failed c RuntimeError",
            "escalated inner 2",
            "terminated sibling shutdown",
            # root sees inner fail, restarts it (fresh children, fresh intensity)
            "failed inner SupervisionError",
            "restarted inner #1",
            "failed c RuntimeError",
            "restarted c #1",
            "failed c RuntimeError",
            "escalated inner 2",
            "terminated sibling shutdown",
            # the second failure of inner within 5 s exceeds root's own intensity
            "failed inner SupervisionError",
            "escalated root 2",
            "terminated x shutdown",
        ]
        assert p.log.count("start sibling") == 2

    run(scenario)


def test_a_transient_child_supervisor_that_gives_up_is_restarted_but_not_after_a_normal_end() -> (
    None
):
    async def scenario() -> None:
        rec = Recorder()
        p = Puppets()
        job = p.spec("job", restart="transient", significant=True)
        inner = Supervisor("inner", [job], auto_shutdown="any_significant")
        root = Supervisor("root", [p.spec("x"), inner.as_child(restart="transient")], on_event=rec)
        await root.start()
        await settle()
        p.finish("job")  # inner shuts itself down normally; root does not restart it
        await settle()
        assert rec.take() == ["terminated job normal", "terminated inner normal"]
        assert [(c.id, c.running) for c in root.which_children()] == [
            ("x", True),
            ("inner", False),
        ]
        await root.stop()

    run(scenario)


def test_a_restart_whose_start_raises_counts_as_another_failure() -> None:
    async def scenario() -> None:
        rec = Recorder()
        calls: list[int] = []

        def start() -> Any:
            calls.append(1)
            if len(calls) == 2:
                raise ConnectionError("model endpoint down")
            return crashing_every(1.0)()

        sup = Supervisor("root", [ChildSpec("c", start)], intensity=2, on_event=rec)
        await sup.start()
        with pytest.raises(SupervisionError):
            await sup.wait()
        assert rec.lines() == [
            "failed c RuntimeError",  # t=1
            "failed c ConnectionError",  # restart 1: start raised
            "restarted c #1",  # restart 2: ok
            "failed c RuntimeError",  # t=2: restart 3 in 5 s > 2
            "escalated root 3",
        ]

    run(scenario)


def test_a_failed_restart_in_one_for_all_stops_the_siblings_again() -> None:
    async def scenario() -> None:
        rec = Recorder()
        p = Puppets()
        calls: list[int] = []

        def start_b() -> Any:
            calls.append(1)
            if len(calls) == 2:
                raise ConnectionError("down")
            return forever()

        specs = [p.spec("a"), ChildSpec("b", start_b), p.spec("c")]
        sup = Supervisor("root", specs, strategy="one_for_all", intensity=5, on_event=rec)
        await sup.start()
        await settle()
        p.crash("c")
        await settle()
        assert rec.lines() == [
            "failed c RuntimeError",
            "terminated b shutdown",
            "terminated a shutdown",
            "restarted a #1",
            "failed b ConnectionError",
            "terminated a shutdown",  # a again; c was never restarted
            "restarted a #2",
            "restarted b #1",
            "restarted c #1",
        ]
        await sup.stop()

    run(scenario)


async def _idle_then_crash(after: float) -> None:
    await asyncio.sleep(after)
    raise RuntimeError(f"crash after {after}")


def crasher(after: float) -> Any:
    return lambda: _idle_then_crash(after)


def _busy_tree(rec: Recorder) -> tuple[Supervisor, Supervisor]:
    """A tree with every strategy, crashes at different times, a pool and a kill."""

    all_ = Supervisor(
        "all",
        [ChildSpec("a1", forever), ChildSpec("a2", crasher(2.5)), ChildSpec("a3", forever)],
        strategy="one_for_all",
        intensity=3,
        period=4.0,
    )
    rest = Supervisor(
        "rest",
        [ChildSpec("r1", crasher(1.7)), ChildSpec("r2", forever), ChildSpec("r3", crasher(3.1))],
        strategy="rest_for_one",
        intensity=2,
        period=3.0,
    )
    pool = Supervisor("pool", strategy="simple_one_for_one", intensity=50)
    root = Supervisor(
        "root",
        [ChildSpec("solo", crasher(0.9), restart="transient"), all_, rest, pool],
        intensity=4,
        period=10.0,
        on_event=rec,
    )
    return root, pool


def test_the_event_sequence_is_identical_run_to_run_on_a_virtual_clock() -> None:
    async def scenario() -> list[dict[str, Any]]:
        rec = Recorder()
        root, pool = _busy_tree(rec)
        await root.start()
        for i in range(20):  # some end normally (transient: gone), some crash (restarted)
            start = crasher(0.3 * (i + 1)) if i % 3 == 0 else lambda i=i: asyncio.sleep(0.2 * i)
            await pool.start_child(ChildSpec(f"p{i}", start, restart="transient"))
        await asyncio.sleep(1.2)
        root.kill("all", "hallucination")
        with pytest.raises(SupervisionError, match="'root'"):
            await root.wait()
        await root.stop()
        return [{"kind": e.kind, **e.model_dump()} for e in rec.events]

    first = run(scenario)
    second = run(scenario)
    assert len(first) > 30
    assert {e["kind"] for e in first} == {
        "agent.failed",
        "agent.terminated",
        "agent.restarted",
        "supervisor.escalated",
    }
    assert first == second


def test_intensity_is_measured_on_the_injected_clock() -> None:
    """A clock that stands still puts every restart in the same window."""

    class FrozenClock:
        def now_us(self) -> int:
            return 0

        def monotonic(self) -> float:
            return 0.0

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

        def run(self, coro: Any) -> Any:
            raise NotImplementedError

    async def scenario() -> float:
        sup = Supervisor(
            "root", [ChildSpec("c", crashing_every(60.0))], intensity=2, clock=FrozenClock()
        )
        await sup.start()
        with pytest.raises(SupervisionError):
            await sup.wait()
        return asyncio.get_running_loop().time()

    assert run(scenario) == pytest.approx(180.0)  # 60 s apart, yet 3 "at once"
