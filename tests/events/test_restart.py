"""Durability: the history, including the event kernel's own record, survives a restart."""

from __future__ import annotations

from pathlib import Path

from telic.clock import VirtualClock
from telic.events import SYSTEM_RUN, EventKernel
from telic.ledger import open_ledger

from .kit import commit, take, virtual


def test_close_and_reopen_an_sqlite_ledger_then_catch_up_from_seq_1(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"

    async def first(clock: VirtualClock) -> list[tuple[int, str, bytes]]:
        ledger = open_ledger(path)
        ledger.create_run("r")
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("*", run="r", maxsize=2)
        for _ in range(5):
            commit(ledger, events, "r", 10)
        assert sub.lag_episodes == 1
        await events.aclose()
        history = [(t.seq, t.kind, t.hash) for t in ledger.read("r")]
        ledger.close()
        return history

    async def second(clock: VirtualClock) -> None:
        ledger = open_ledger(path)
        events = EventKernel(ledger, clock=clock)
        sub = events.subscribe("transition.committed", run="r", from_seq=1)
        got = await take(sub, 50)
        assert [(e.seq, e.kind, e.transition.hash) for e in got] == before
        assert all(e.type == "transition.committed" for e in got)
        assert ledger.verify("r").ok
        # the subscriptions of the first process are on record, and still verify
        system = events.subscribe("subscription.*,subscriber.lagged", run=SYSTEM_RUN, from_seq=1)
        kinds = [e.type for e in await take(system, 4)]
        assert kinds == [
            "subscription.created",
            "subscriber.lagged",
            "subscription.ended",
            "subscription.created",  # this process's first subscription
        ]
        assert ledger.verify(SYSTEM_RUN).ok
        commit(ledger, events, "r", 1)  # and the catch-up went live
        (live,) = await take(sub, 1)
        assert live.seq == 51
        await events.aclose()
        ledger.close()

    before = virtual(first)
    assert len(before) == 50
    virtual(second)


def test_subscription_ids_are_their_record_and_unique_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"

    async def body(clock: VirtualClock) -> None:
        one, two = open_ledger(path), open_ledger(path)  # two handles, as two processes
        one.create_run("r")
        a, b = EventKernel(one, clock=clock), EventKernel(two, clock=clock)
        ids = [a.subscribe("*").id, b.subscribe("*").id, a.subscribe("tick.*").id]
        assert ids == ["sub-1", "sub-2", "sub-3"]
        # a process that read the head just before another appended retries with a new id
        real = b._hub.system_head  # pyright: ignore[reportPrivateUsage]
        stale = iter([2])
        b._hub.system_head = lambda: next(stale, None) or real()  # pyright: ignore[reportPrivateUsage]
        assert b.subscribe("*").id == "sub-4"
        created = [t.data["subscription"] for t in one.read(SYSTEM_RUN)]
        assert created == ["sub-1", "sub-2", "sub-3", "sub-4"]
        await a.aclose()
        await b.aclose()
        one.close()
        two.close()

    virtual(body)
