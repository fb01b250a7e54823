"""Runs under a lease: the kernel takes it, renews it, stops at once when it loses it; a sweeper
takes over the runs whose lease went stale.

Two kernels on one store are two ledger instances on one :class:`MemoryStore` (as two hosts
on one PostgreSQL); the lease clock is the virtual clock, so TTLs pass in no real time.
The real-process versions (SIGSTOP, ``kill -9``) are in ``test_lease_processes.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telic.clock import VirtualClock
from telic.errors import ConfigError, Fenced, LeaseHeld, LeaseLost, LedgerUnavailable
from telic.kernel import Kernel, RunConfig, RunResult, Sweeper
from telic.kernel.approval import decide
from telic.kinds import ObservationRecorded
from telic.ledger import BaseLedger, Lease, MemoryLedger
from telic.policy import Policy
from telic.tools import tool
from telic.transition import Draft, draft

from .kit import Calls, Played, agent, call, config, echo_tool, finish, new_ledger, on_virtual_time
from .kit import stuck_tool as _stuck

TTL = 3.0


def _pair(clock: VirtualClock) -> tuple[MemoryLedger, MemoryLedger]:
    """Two ledger instances on one store, both on ``clock``'s lease time."""
    a = new_ledger()
    assert isinstance(a, MemoryLedger)
    b = MemoryLedger(store=a.store)
    a.leases.clock = b.leases.clock = clock
    return a, b


def _expire(ledger: BaseLedger, run_id: str) -> None:
    """Make the run's lease expired now (as if its holder had been paused past its TTL)."""
    assert isinstance(ledger, MemoryLedger)
    leases = ledger.store.leases
    r, h, n, e, t, _, _, _, rel = leases[run_id]
    now = ledger.leases.now_us()
    leases[run_id] = (r, h, n, e, t, now - t - 1, now - t - 1, now - 1, rel)


def _ticking(calls: Calls, n: int = 3) -> RunConfig:
    return config(
        agent("a", *[call("echo", x=i) for i in range(n)], finish(), tools=["echo"]),
        tools=[echo_tool(calls)],
    )


def test_a_leased_run_takes_renews_and_releases_its_lease() -> None:
    calls = Calls()

    async def scenario(clock: VirtualClock) -> tuple[RunResult, Lease, Lease | None, Lease]:
        ledger, _ = _pair(clock)
        kernel = Kernel(ledger, clock=clock, holder="A", lease_ttl_s=TTL, node="n1")
        run = await kernel.boot(_ticking(calls), run_id="r")
        assert run.lease is not None and ledger.fenced("r") == run.lease.epoch == 1
        first = run.lease
        await clock.sleep(10 * TTL)  # a long pause between ticks: renewals keep it
        renewed = run.lease
        assert renewed is not None
        result = await run.until_done()
        after = ledger.leases.get("r")
        assert after is not None
        return result, first, renewed, after

    result, first, renewed, after = on_virtual_time(scenario)
    assert result.status == "completed" and result.lost is None
    assert (first.holder, first.node, first.epoch) == ("A", "n1", 1)
    assert renewed is not None and renewed.epoch == 1
    assert renewed.renewed_us >= first.renewed_us + 9 * TTL * 1e6
    assert after.released and after.epoch == 1  # a graceful end gives the run back


def test_resume_refuses_a_run_whose_lease_is_live_elsewhere() -> None:
    calls = Calls()

    async def scenario(clock: VirtualClock) -> None:
        a, b = _pair(clock)
        run = await Kernel(a, clock=clock, holder="A", lease_ttl_s=TTL).boot(
            _ticking(calls), run_id="r"
        )
        for kernel in (Kernel(b, clock=clock, holder="B"), Kernel(b, clock=clock)):
            with pytest.raises(LeaseHeld) as held:
                await kernel.resume("r", _ticking(calls))
            assert held.value.holder == "A" and held.value.epoch == 1
        assert b.fenced("r") is None
        with pytest.raises(Fenced, match="leased to A"):  # an unleased writer cannot write
            b.append("r", _drafts())
        await run.close()

    on_virtual_time(scenario)


def _drafts() -> list[Draft]:
    return [draft(ObservationRecorded(agent="a", source="x", content=1), ts=1, tick=0)]


def test_a_fenced_commit_stops_the_run_at_once_and_writes_nothing() -> None:
    """Another host took the run over while a tool was running here: the tool's result is
    refused by the fence, the run ends here as lost, and it writes nothing after."""
    calls = Calls()
    started = asyncio.Event()
    release = asyncio.Event()

    @tool(name="slow", idempotent=False, timeout=3600)
    async def slow(x: int) -> dict[str, int]:
        calls.note("slow", x=x)
        started.set()
        await release.wait()
        return {"x": x}

    cfg = config(agent("a", call("slow", x=1), finish(), tools=["slow"]), tools=[slow])

    async def scenario(clock: VirtualClock) -> tuple[RunResult, int, int]:
        a, b = _pair(clock)
        run = await Kernel(a, clock=clock, holder="A", lease_ttl_s=TTL).boot(cfg, run_id="r")
        driving = asyncio.create_task(run.until_done())
        await started.wait()
        _expire(a, "r")
        taken = b.leases.acquire("r", "B", ttl_s=TTL)
        head = b.run("r").head
        release.set()  # the tool returns: A commits its result under epoch 1
        result = await driving
        assert b.run("r").head == head  # nothing of A's landed
        b.fence(taken)
        b.leases.release(taken)
        return result, head, taken.epoch

    result, _head, epoch = on_virtual_time(scenario)
    assert result.status == "lost" and isinstance(result.lost, Fenced)
    assert (result.lost.epoch, result.lost.current, result.lost.holder) == (1, epoch, "B")
    assert "nothing was written" in (result.reason or "")
    assert calls.count("slow") == 1


def test_a_run_that_cannot_renew_stops_once_its_ttl_has_passed() -> None:
    """Cut off from the store (every renewal fails), the run assumes after its TTL that another
    host took it over: its step is cancelled, it ends as lost, and it writes nothing."""
    calls = Calls()
    started = asyncio.Event()
    cfg = config(
        agent("a", call("stuck", x=1), finish(), tools=["stuck"]),
        tools=[_stuck(calls, started, idempotent=False, timeout=3600)],
    )

    async def scenario(clock: VirtualClock) -> tuple[RunResult, int, int, float, float]:
        ledger, _ = _pair(clock)
        run = await Kernel(ledger, clock=clock, holder="A", lease_ttl_s=TTL).boot(cfg, run_id="r")
        driving = asyncio.create_task(run.until_done())
        await started.wait()

        def cut(lease: Lease, *, ttl_s: float | None = None) -> Lease:
            raise LedgerUnavailable("postgresql://db", "connection refused")

        ledger.leases.renew = cut  # type: ignore[method-assign]
        head = ledger.run("r").head
        t0 = clock.monotonic()
        result = await driving
        return result, head, ledger.run("r").head, t0, clock.monotonic()

    result, before, after, t0, t1 = on_virtual_time(scenario)
    assert result.status == "lost" and isinstance(result.lost, LeaseLost)
    assert "could not be renewed within its 3 s" in (result.reason or "")
    assert after == before
    assert t1 - t0 <= TTL + 1e-6  # stopped within the TTL (the store's expiry), not after


async def _die_leased(
    ledger: BaseLedger, clock: VirtualClock, cfg: RunConfig, started: asyncio.Event | None
) -> None:
    """Run ``cfg`` as run ``r`` leased to A until ``started`` (or until it parks), then die
    there: in one process a run cannot be killed, so it runs unleased and is cancelled (the
    crash of ``test_resume``), and the lease A would hold is written as A left it, renewed
    last at the crash and never released."""
    run = await Kernel(ledger, clock=clock).boot(cfg, run_id="r")
    driving = asyncio.create_task(run.until_done())
    if started is not None:
        await started.wait()
    else:
        while ledger.state_at("r")["status"] != "paused":
            await clock.sleep(0.1)
    driving.cancel()
    await asyncio.gather(driving, return_exceptions=True)
    ledger.fence(ledger.leases.acquire("r", "A", ttl_s=TTL))


def test_two_sweepers_adopt_a_stale_run_once_and_resume_it_as_a_crash() -> None:
    """A run whose owner died mid-call: the lease expires, one of two sweepers takes it over
    (epoch + 1) and resumes it; the non-idempotent call in flight becomes tool.unknown."""
    calls = Calls()
    started = asyncio.Event()
    crashed_cfg = config(
        agent("a", call("send", x=1), tools=["send"]),
        tools=[_stuck(calls, started, name="send", idempotent=False, timeout=3600)],
    )
    after = Calls()
    resumed_cfg = config(
        agent("a", finish("done"), tools=["send"]),
        tools=[echo_tool(after, name="send", idempotent=False)],
    )

    async def scenario(clock: VirtualClock) -> tuple[list[int], RunResult, BaseLedger]:
        a, b = _pair(clock)
        assert isinstance(a, MemoryLedger)
        c = MemoryLedger(store=a.store)
        c.leases.clock = clock
        await _die_leased(a, clock, crashed_cfg, started)
        sweepers = [
            Sweeper(Kernel(led, clock=clock, holder=h, lease_ttl_s=TTL), lambda _: resumed_cfg)
            for led, h in ((b, "B"), (c, "C"))
        ]
        assert [await s.sweep() for s in sweepers] == [[], []]  # still live: nothing to adopt
        await clock.sleep(TTL + 0.1)
        assert [lease.run_id for lease in sweepers[0].candidates()] == ["r"]
        adopted = [await s.sweep() for s in sweepers]
        assert [len(x) for x in adopted] == [1, 0]
        (mine,) = adopted[0]
        assert mine.lease is not None and (mine.lease.holder, mine.lease.epoch) == ("B", 2)
        with pytest.raises(Fenced):  # the dead owner's instance is fenced out
            a.append("r", _drafts())
        result = await mine.until_done()
        return [len(x) for x in adopted], result, b

    counts, result, ledger = on_virtual_time(scenario)
    assert counts == [1, 0]
    assert result.status == "completed"
    played = Played(ledger, "r")
    resumed = played.one("run.resumed")
    assert resumed.data["reason"] == "taken over: the lease of A (epoch 1) expired"
    unknown = played.one("tool.unknown")
    assert unknown.data["tool"] == "send"
    assert calls.count("send") == 1 and after.count("send") == 0  # never run twice


def test_a_run_parked_on_an_approval_stays_parked_across_a_takeover() -> None:
    calls = Calls()

    def launching(*steps: Any) -> RunConfig:
        return config(
            agent("a", *steps, tools=["launch"]),
            tools=[echo_tool(calls, name="launch", high_impact=True)],
            policy=Policy(approval_timeout_s=30 * 24 * 3600),
        )

    async def scenario(clock: VirtualClock) -> tuple[RunResult, BaseLedger]:
        a, b = _pair(clock)
        await _die_leased(a, clock, launching(call("launch", x=1)), None)
        await clock.sleep(TTL + 0.1)
        sweeper = Sweeper(
            Kernel(b, clock=clock, holder="B", lease_ttl_s=TTL),
            lambda _: launching(finish()),
        )
        (adopted,) = await sweeper.sweep()
        driving = asyncio.create_task(adopted.until_done())
        await clock.sleep(5 * TTL)  # still parked, lease renewed all along
        assert b.state_at("r")["status"] == "paused"
        lease = b.leases.get("r")
        assert lease is not None and lease.live(b.leases.now_us()) and lease.epoch == 2
        # A decision from a third process that holds no lease: accepted (a decision).
        other = MemoryLedger(store=a.store)
        proposal = int(next(iter(other.state_at("r")["pending_approvals"])))
        decide(other, "r", proposal, granted=True, by="alice", reason="ok", now_us=clock.now_us)
        return await driving, b

    result, ledger = on_virtual_time(scenario)
    assert result.status == "completed"
    played = Played(ledger, "r")
    assert [t.data["by"] for t in played.of("approval.granted")] == ["alice"]
    assert calls.by_tool == {"launch": [{"x": 1}]}


def test_a_sweeper_needs_a_holder() -> None:
    with pytest.raises(ConfigError, match="holder"):
        Sweeper(Kernel(new_ledger()), lambda _: None)


def test_unleased_kernels_run_as_before() -> None:
    calls = Calls()

    async def scenario(clock: VirtualClock) -> RunResult:
        ledger, _ = _pair(clock)
        result = await Kernel(ledger, clock=clock).run(_ticking(calls), run_id="r")
        assert ledger.leases.all() == [] and ledger.fenced("r") is None
        return result

    assert on_virtual_time(scenario).status == "completed"
