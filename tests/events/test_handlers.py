"""The callback API: isolated failures, timeouts, re-entrancy, cycles, and owned tasks."""

from __future__ import annotations

import asyncio

import pytest

from telic.clock import VirtualClock
from telic.errors import BadSubscription
from telic.events import Event, EventKernel, EventProcessor, InMemoryProcessor, NoopProcessor
from telic.kinds import MemoryUpdated, ToolCompleted, ToolStarted
from telic.transition import Transition, draft

from .kit import Tally, append, commit, memory_ledger, take, virtual


def test_a_raising_handler_is_isolated() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        seen = Tally[int]()

        def handler(event: Event) -> None:
            seen.append(event.seq)
            if event.seq % 2:
                raise ValueError(f"odd {event.seq}")

        sub = events.on("*", handler, run="r")
        commit(ledger, events, "r", 10)
        await seen.reach(10)
        assert seen == list(range(1, 11))
        assert sub.failure_count == 5
        assert [f.error for f in sub.failures][:2] == ["ValueError: odd 1", "ValueError: odd 3"]
        assert not any(f.timed_out for f in sub.failures)
        await events.aclose()

    virtual(body)


def test_a_hanging_handler_is_timed_out_and_cancelled() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        cancelled: list[int] = []
        handled = Tally[int]()
        never = asyncio.Event()

        async def handler(event: Event) -> None:
            if event.seq == 2:
                try:
                    await never.wait()
                except asyncio.CancelledError:
                    cancelled.append(event.seq)
                    raise
            handled.append(event.seq)

        sub = events.on("*", handler, run="r", timeout=0.5)
        commit(ledger, events, "r", 4)
        await handled.reach(3)
        assert handled == [1, 3, 4]
        assert cancelled == [2]
        assert sub.failure_count == 1
        assert sub.failures[0].timed_out
        assert sub.failures[0].event.seq == 2
        assert clock.monotonic() == 0.5
        await events.aclose()

    virtual(body)


def test_a_handler_that_cancels_itself_does_not_stop_the_subscription() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        handled = Tally[int]()

        async def handler(event: Event) -> None:
            if event.seq == 1:
                raise asyncio.CancelledError
            handled.append(event.seq)

        sub = events.on("*", handler, run="r")
        commit(ledger, events, "r", 3)
        await handled.reach(2)
        assert sub.failure_count == 1
        await events.aclose()

    virtual(body)


def test_aclose_cancels_and_awaits_every_task_it_owns() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        processor = InMemoryProcessor()
        events = EventKernel(ledger, clock=clock, processors=[processor])
        stopped: list[str] = []
        started = asyncio.Event()

        async def hangs(event: Event) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append("hangs")

        events.on("*", hangs, run="r", timeout=1000.0)
        events.on("tick.*", lambda e: None, ttl=60.0)
        events.subscribe("*", ttl=5.0)
        commit(ledger, events, "r", 3)
        await started.wait()
        assert len(asyncio.all_tasks()) > 1
        await events.aclose()
        assert stopped == ["hangs"]
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert events.subscription_count == 0
        assert processor.shut_down
        ended = [
            t.data["reason"] for t in ledger.read("telic-events") if t.kind == "subscription.ended"
        ]
        assert ended == ["the event kernel was closed"] * 3
        await events.aclose()  # idempotent

    virtual(body)


def test_handlers_may_publish_and_subscribe_reentrantly() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        answers = Tally[object]()

        async def handler(event: Event) -> None:
            # subscribe, publish into that subscription, and read it back, all from a handler
            with events.subscribe("memory.updated", run="r") as inner:
                (t,) = ledger.append(
                    "r", [draft(MemoryUpdated(agent="h", key="echo", value=event.seq), ts=1)]
                )
                events.publish([t])
                (echo,) = await take(inner, 1)
                answers.append(echo.data["value"])

        sub = events.on("tick.started", handler, run="r")
        commit(ledger, events, "r", 1)  # seq 1: a tick; the handler's echo is seq 2
        await answers.reach(1)
        commit(ledger, events, "r", 1)  # seq 3: a tick; its echo is seq 4
        await answers.reach(2)
        assert answers == [1, 3]
        assert sub.failure_count == 0
        await events.aclose()

    virtual(body)


def test_cyclic_publishing_between_handlers_never_stalls() -> None:
    """Two handlers feed each other through the ledger; a third floods; nothing deadlocks."""

    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        rounds = 500
        done = asyncio.Event()

        def started(event: Event) -> None:
            n = int(event.data["call_id"])
            (t,) = ledger.append(
                "r", [draft(ToolCompleted(call_id=str(n), agent="a", tool="t", result=n), ts=n)]
            )
            events.publish([t])

        async def completed(event: Event) -> None:
            n = int(event.data["call_id"])
            if n == rounds:
                done.set()
                return
            (t,) = ledger.append(
                "r", [draft(ToolStarted(call_id=str(n + 1), agent="a", tool="t", args={}), ts=n)]
            )
            events.publish([t])
            commit(ledger, events, "r", 3)  # and some noise for a tiny, stuck subscriber

        a = events.on("tool.started", started, run="r", maxsize=4)
        b = events.on("tool.completed", completed, run="r", maxsize=4)
        stuck = events.subscribe("*", run="r", maxsize=2)
        (first,) = ledger.append(
            "r", [draft(ToolStarted(call_id="1", agent="a", tool="t", args={}), ts=0)]
        )
        events.publish([first])
        await done.wait()  # the watchdog fails the test if this stalls
        kinds = [t.kind for t in ledger.read("r") if t.kind.startswith("tool.")]
        assert kinds == ["tool.started", "tool.completed"] * rounds
        assert a.failure_count == b.failure_count == 0
        assert a.dropped == b.dropped == 0
        assert stuck.lag_episodes == 1
        await events.aclose()

    virtual(body)


def test_processors_see_every_transition_once_and_may_publish() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")

        class Echo(InMemoryProcessor):
            def on_event(self, event: Event) -> None:
                super().on_event(event)
                if event.kind == "tick.started" and event.seq == 1:
                    events.publish(commit_only(2))
                if event.seq == 4:
                    raise RuntimeError("a broken exporter")

        def commit_only(n: int) -> list[Transition]:
            return append(ledger, "r", n)

        echo = Echo()
        events = EventKernel(ledger, clock=clock, processors=[echo])
        sub = events.subscribe("transition.committed", run="r")
        commit(ledger, events, "r", 3)
        assert [(e.run, e.seq) for e in echo.events if e.run == "r"] == [
            ("r", s) for s in (1, 2, 3, 4, 5)
        ]
        assert all(e.type == e.kind for e in echo.events)
        got = await take(sub, 5)
        assert [e.seq for e in got] == [1, 2, 3, 4, 5]  # re-entrant publish queued behind
        assert {e.type for e in got} == {"transition.committed"}
        await events.aclose()

    virtual(body)


def test_bad_callback_arguments() -> None:
    async def body(clock: VirtualClock) -> None:
        events = EventKernel(memory_ledger("r"), clock=clock)
        for timeout in (0, -1, float("nan"), float("inf"), "1", True):
            with pytest.raises(BadSubscription):
                events.on("*", lambda e: None, timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(BadSubscription):
            events.on("*", "not callable")  # type: ignore[arg-type]
        assert events.subscription_count == 0
        await events.aclose()

    virtual(body)


def test_on_needs_a_running_loop() -> None:
    events = EventKernel(memory_ledger("r"))
    with pytest.raises(BadSubscription, match="running event loop"):
        events.on("*", lambda e: None)
    assert events.subscription_count == 0


def test_a_handler_may_close_the_event_kernel() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        closed = asyncio.Event()

        async def handler(event: Event) -> None:
            await events.aclose()
            closed.set()

        other = events.on("*", lambda e: None, run="r")
        events.on("tick.started", handler, run="r")
        commit(ledger, events, "r", 1)
        await closed.wait()
        assert events.closed
        assert other.closed
        for _ in range(3):
            await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    virtual(body)


def test_the_processor_seam() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        noop, memory = NoopProcessor(), InMemoryProcessor()
        assert isinstance(noop, EventProcessor)
        assert isinstance(memory, EventProcessor)
        events = EventKernel(ledger, clock=clock, processors=[noop, memory])
        commit(ledger, events, "r", 3)
        assert [(e.type, e.seq) for e in memory.events] == [
            (t.kind, t.seq) for t in ledger.read("r")
        ]
        memory.clear()
        sub = events.subscribe("*", run="r")
        assert memory.types() == ["subscription.created"]
        sub.close()
        assert memory.types() == ["subscription.created", "subscription.ended"]
        await events.aclose()
        assert memory.shut_down

    virtual(body)


def test_a_handler_failing_on_every_event_logs_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every failure is counted; the log gets the first ten and then each power of two."""

    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        seen = Tally[int]()

        def handler(event: Event) -> None:
            seen.append(event.seq)
            raise ValueError(f"bad {event.seq}")

        sub = events.on("*", handler, run="r")
        for done in range(100, 3001, 100):  # within the subscription's buffer
            commit(ledger, events, "r", 100)
            await seen.reach(done)
        assert sub.failure_count == 3000
        await events.aclose()

    with caplog.at_level("WARNING", logger="telic.events"):
        virtual(body)
    lines = [r.getMessage() for r in caplog.records if "handler of subscription" in r.message]
    # 1..10, then 16, 32, ..., 2048: 10 + 8 lines for 3,000 failures
    assert len(lines) == 18
    assert "(failure 2048)" in lines[-1] and "bad 2048" in lines[-1]
    assert "powers of two" in lines[-1]


def test_a_processor_failing_on_every_event_logs_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(EventProcessor):
        def __init__(self) -> None:
            self.calls = 0

        def on_event(self, event: Event) -> None:
            self.calls += 1
            raise RuntimeError("processor down")

        def shutdown(self) -> None:
            return None

    async def body(clock: VirtualClock) -> int:
        ledger = memory_ledger("r")
        failing = Failing()
        events = EventKernel(ledger, clock=clock, processors=[failing])
        commit(ledger, events, "r", 1000)
        await events.aclose()
        return failing.calls

    with caplog.at_level("ERROR", logger="telic.events"):
        assert virtual(body) == 1000
    failures = [r for r in caplog.records if "event processor" in r.message]
    assert len(failures) == 10 + 6  # 1..10, then 16, 32, 64, 128, 256, 512
