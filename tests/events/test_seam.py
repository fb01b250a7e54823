"""Catch-up then live: never a gap, never a duplicate, whatever the interleaving."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telic.clock import VirtualClock
from telic.events import Event, EventKernel, Subscription
from telic.events import hub as hub_module
from telic.ledger import BaseLedger, open_ledger
from telic.transition import Transition

from .kit import append, memory_ledger, take, virtual, watchdog

PATTERNS = ("*", "tick.*", "transition.committed", "memory.updated,tick.started")


def expected_type(pattern: str, kind: str) -> str | None:
    if pattern == "*":
        return kind
    if pattern == "tick.*":
        return kind if kind.startswith("tick.") else None
    if pattern == "transition.committed":
        return "transition.committed"
    return kind


@dataclass
class Reader:
    sub: Subscription
    pattern: str
    agent: str | None
    start: int
    got: list[tuple[str, int]] = field(default_factory=list[tuple[str, int]])
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def consume(self) -> None:
        async for event in self.sub:
            assert event.run == "r"
            self.got.append((event.type, event.seq))
            self.arrived.set()

    def expected(self, ledger: BaseLedger) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for t in ledger.read("r", self.start):
            if self.agent is not None and t.agent != self.agent:
                continue
            etype = expected_type(self.pattern, t.kind)
            if etype is not None:
                out.append((etype, t.seq))
        return out


append_step = st.tuples(
    st.just("append"),
    st.integers(1, 6),  # how many transitions in the group
    st.sampled_from([None, "a", "b"]),  # their agent
    st.booleans(),  # publish at once, or later (the kernel may publish after an await)
)
other_step = st.tuples(st.just("other"), st.integers(1, 3))
flush_step = st.tuples(st.just("flush"), st.integers(1, 3))
subscribe_step = st.tuples(
    st.just("subscribe"),
    st.floats(0, 1.2),  # where to start, as a fraction of head + 1 (clamped)
    st.sampled_from(PATTERNS),
    st.sampled_from([None, "a"]),
)
yield_step = st.tuples(st.just("yield"), st.integers(1, 8))
steps = st.lists(
    st.one_of(append_step, other_step, flush_step, subscribe_step, yield_step),
    min_size=1,
    max_size=40,
)


async def scenario(clock: VirtualClock, plan: list[tuple[object, ...]], ledger: BaseLedger) -> None:
    ledger.create_run("r")
    ledger.create_run("other")
    events = EventKernel(ledger, clock=clock)
    pending: list[list[Transition]] = []
    readers: list[Reader] = []
    tasks: list[asyncio.Task[None]] = []

    def flush(k: int) -> None:
        for _ in range(min(k, len(pending))):
            events.publish(pending.pop(0))

    for step in plan:
        match step:
            case ("append", int(n), agent, bool(now)):
                assert agent is None or isinstance(agent, str)
                group = append(ledger, "r", n, agent=agent)
                if now and not pending:
                    events.publish(group)
                else:
                    pending.append(group)  # published later, in order
            case ("other", int(n)):
                events.publish(append(ledger, "other", n))
            case ("flush", int(k)):
                flush(k)
            case ("subscribe", float(where), str(pattern), agent):
                assert agent is None or isinstance(agent, str)
                head = ledger.run("r").head
                start = max(1, min(head + 1, round(where * (head + 1))))
                sub = events.subscribe(pattern, run="r", agent=agent, from_seq=start)
                reader = Reader(sub, pattern, agent, start)
                readers.append(reader)
                tasks.append(asyncio.create_task(reader.consume()))
            case ("yield", int(k)):
                for _ in range(k):
                    await asyncio.sleep(0)
            case _:  # pragma: no cover
                raise AssertionError(step)
    flush(len(pending))
    for reader in readers:
        want = reader.expected(ledger)
        while len(reader.got) < len(want):
            reader.arrived.clear()
            await reader.arrived.wait()  # a gap would stall here: the watchdog fails it
        assert reader.got == want
    await asyncio.sleep(0)
    for reader in readers:
        assert reader.got == reader.expected(ledger), "a duplicate arrived after the seam"
    await events.aclose()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps, page=st.sampled_from([1, 2, 3, 1024]))
def test_catch_up_then_live_has_no_gap_and_no_duplicate(
    plan: list[tuple[object, ...]], page: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hub_module, "PAGE", page)
        virtual(lambda clock: scenario(clock, plan, open_ledger("memory://")))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps, page=st.sampled_from([1, 3, 1024]))
def test_the_seam_on_sqlite(plan: list[tuple[object, ...]], page: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(hub_module, "PAGE", page)
        ledger = open_ledger(f"sqlite://{tmp}/l.db?synchronous=normal")
        try:
            virtual(lambda clock: scenario(clock, plan, ledger))
        finally:
            ledger.close()


def test_catch_up_across_many_pages_while_publishing() -> None:
    """A long catch-up (many pages) while a writer keeps committing: all arrive once, in order."""

    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        for _ in range(20):
            events.publish(append(ledger, "r", 250))
        sub = events.subscribe(run="r", from_seq=1)
        seen: list[int] = []

        async def writer() -> None:
            for _ in range(40):
                events.publish(append(ledger, "r", 7))
                await asyncio.sleep(0)

        w = asyncio.create_task(writer())
        async for event in sub:
            seen.append(event.seq)
            if event.seq == 5000 + 40 * 7:
                break
        await w
        assert seen == list(range(1, 5000 + 40 * 7 + 1))
        assert sub.live
        await events.aclose()

    virtual(body)


def test_from_head_plus_one_is_live_at_once() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        events.publish(append(ledger, "r", 3))
        sub = events.subscribe(run="r", from_seq=4)
        assert sub.live
        events.publish(append(ledger, "r", 2))
        got: list[Event] = []
        async for event in sub:
            got.append(event)
            if len(got) == 2:
                break
        assert [e.seq for e in got] == [4, 5]
        await watchdog(events.aclose())

    virtual(body)


def test_a_batch_that_spans_runs_keeps_each_subscribers_order() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r", "s")
        events = EventKernel(ledger, clock=clock)
        only_r = events.subscribe("*", run="r")
        only_s = events.subscribe("transition.committed", run="s")
        ticks_r = events.subscribe("tick.*", run="r")
        every = events.subscribe("*")  # made last: it sees no subscription.created
        a, b, c, d = (
            append(ledger, "r", 1),
            append(ledger, "s", 2),
            append(ledger, "r", 1),
            append(ledger, "s", 1),
        )
        batch = [*a, *b, *c, *d]
        events.publish(batch)
        assert [(e.run, e.seq) for e in await take(every, 5)] == [(t.run, t.seq) for t in batch]
        assert [(e.run, e.seq) for e in await take(only_r, 2)] == [("r", 1), ("r", 2)]
        assert [(e.type, e.seq) for e in await take(only_s, 3)] == [
            ("transition.committed", s) for s in (1, 2, 3)
        ]
        assert [e.seq for e in await take(ticks_r, 1)] == [1]
        assert every.queued == only_r.queued == only_s.queued == ticks_r.queued == 0
        await events.aclose()

    virtual(body)


def test_publishing_from_another_thread_is_handed_to_the_loop_in_order() -> None:
    """The kernel may append in a worker thread and publish there: nothing is lost or reordered."""

    async def body() -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger)
        live = events.subscribe("*", run="r")

        def writer() -> None:
            for _ in range(200):
                events.publish(append(ledger, "r", 3))

        task = asyncio.create_task(asyncio.to_thread(writer))
        await asyncio.sleep(0.001)  # wherever the writer is by now, the seam must hold
        late = events.subscribe("*", run="r", from_seq=1)
        await task
        async with asyncio.timeout(60):  # only a failure could ever wait this long
            got = [e.seq for e in await take(live, 600)]
            caught = [e.seq for e in await take(late, 600)]
        assert got == caught == list(range(1, 601))
        await events.aclose()

    asyncio.run(body())
