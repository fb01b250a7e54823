"""The event kernel's figures (issue 4), each beside its target.

Live delivery publishes transitions in groups of ``GROUP_SIZE`` (as the kernel publishes a
tick's group commit) and yields to the loop between groups; every published event must be
delivered (nothing dropped) or the figure is refused. The transitions for live figures are
copies of one real transition with distinct sequence numbers: live delivery never reads the
ledger, so building a million-row ledger for them would only measure the ledger. Catch-up reads
a real SQLite ledger of 1,000,000 transitions (built with large group appends), beside the
ledger's own read rate measured in the same run on the same file. An asyncio.Queue round trip
between two tasks is measured in the same run as a reference.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

from harness import Figure, median, median_of, percentile
from telic.canonical import encode
from telic.events import Event, EventKernel, Subscription
from telic.ledger import open_ledger
from telic.transition import Draft, Transition

GROUP = "events"

GROUP_SIZE = 100
LIVE_EVENTS = 200_000
FAN_OUT = 10
STUCK_PUBLISHES = 100_000
STUCK_QUEUE = 1024
CATCH_UP = 1_000_000
BUILD_GROUP = 10_000


def _draft(i: int) -> Draft:
    agent = ("researcher", "planner", "budgeter")[i % 3]
    if i % 5 == 0:
        return Draft("tick.started", encode({"tick": i // 5}), 1_700_000_000_000_000 + i, i // 5)
    payload = {"agent": agent, "key": f"note{i % 16}", "value": f"value {i}"}
    return Draft("memory.updated", encode(payload), 1_700_000_000_000_000 + i, i // 5, agent)


def _transitions(n: int) -> list[Transition]:
    ledger = open_ledger("memory://")
    ledger.create_run("bench")
    (one,) = ledger.append("bench", [_draft(1)])
    out = [one._replace(seq=i) for i in range(1, n + 1)]
    ledger.close()
    return out


def _groups(ts: list[Transition]) -> list[list[Transition]]:
    return [ts[i : i + GROUP_SIZE] for i in range(0, len(ts), GROUP_SIZE)]


# -- reference ---------------------------------------------------------------------------


async def _queue_stream(n: int) -> float:
    """Messages/s from one task to another through an asyncio.Queue(maxsize=1024)."""
    q: asyncio.Queue[int] = asyncio.Queue(maxsize=STUCK_QUEUE)

    async def consume() -> None:
        for _ in range(n):
            await q.get()

    task = asyncio.create_task(consume())
    t0 = time.perf_counter()
    for i in range(n):
        await q.put(i)
    await task
    return n / (time.perf_counter() - t0)


async def _queue_round_trip(n: int) -> float:
    """Round trips/s: a message to another task through a queue and its answer back."""
    there: asyncio.Queue[int] = asyncio.Queue()
    back: asyncio.Queue[int] = asyncio.Queue()

    async def echo() -> None:
        for _ in range(n):
            back.put_nowait(await there.get())

    task = asyncio.create_task(echo())
    t0 = time.perf_counter()
    for i in range(n):
        there.put_nowait(i)
        await back.get()
    await task
    return n / (time.perf_counter() - t0)


# -- live delivery -----------------------------------------------------------------------


async def _deliver(subscribers: int, groups: list[list[Transition]]) -> float:
    """Deliveries per second to ``subscribers`` readers, from first publish to last receipt."""
    ledger = open_ledger("memory://")
    ledger.create_run("bench")
    events = EventKernel(ledger)
    total = sum(len(g) for g in groups)
    subs = [events.subscribe("*", run="bench") for _ in range(subscribers)]
    counts = [0] * subscribers

    async def read(k: int, sub: Subscription) -> None:
        n = 0
        async for _ in sub:
            n += 1
            if n == total:
                break
        counts[k] = n

    readers = [asyncio.create_task(read(k, s)) for k, s in enumerate(subs)]
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    for group in groups:
        events.publish(group)
        await asyncio.sleep(0)
    await asyncio.gather(*readers)
    elapsed = time.perf_counter() - t0
    if counts != [total] * subscribers or any(s.dropped for s in subs):
        raise RuntimeError(f"events were lost: {counts} of {total}")
    await events.aclose()
    ledger.close()
    return total * subscribers / elapsed


# -- a stuck subscriber ------------------------------------------------------------------


async def _stuck_latency(ts: list[Transition]) -> tuple[float, int, int]:
    """p99 publish latency (µs) of one transition per call with a stuck subscriber and a live
    reader present; the stuck subscriber's queue length and lag episodes afterwards."""
    ledger = open_ledger("memory://")
    ledger.create_run("bench")
    events = EventKernel(ledger)
    stuck = events.subscribe("*", run="bench", maxsize=STUCK_QUEUE)
    live = events.subscribe("*", run="bench")
    seen = 0

    async def read() -> None:
        nonlocal seen
        async for _ in live:
            seen += 1

    reader = asyncio.create_task(read())
    await asyncio.sleep(0)
    lat: list[float] = []
    clock = time.perf_counter_ns
    gc.collect()
    for i, t in enumerate(ts):
        t0 = clock()
        events.publish((t,))
        lat.append(clock() - t0)
        if i % 64 == 63:
            await asyncio.sleep(0)  # let the live reader drain
    queued, episodes = stuck.queued, stuck.lag_episodes
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await events.aclose()
    ledger.close()
    return percentile(lat, 99) / 1000, queued, episodes


def _stuck_memory(ts: list[Transition]) -> float:
    """KiB the event kernel holds after all of ``ts`` went to a stuck subscriber.

    Traced from before the first publish, so the full queue is counted (and the lag record
    in the in-memory ledger's system run); the transitions themselves belong to the caller.
    """
    ledger = open_ledger("memory://")
    ledger.create_run("bench")
    events = EventKernel(ledger)
    stuck = events.subscribe("*", run="bench", maxsize=STUCK_QUEUE)
    groups = _groups(ts)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for group in groups:
            events.publish(group)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stuck.queued == STUCK_QUEUE
    ledger.close()
    return (after - before) / 1024


# -- catch-up from SQLite ------------------------------------------------------------------


def _build(path: Path) -> None:
    ledger = open_ledger(f"sqlite://{path}?synchronous=normal&snapshot_every=1000000000")
    ledger.create_run("big")
    for start in range(1, CATCH_UP + 1, BUILD_GROUP):
        ledger.append("big", [_draft(i) for i in range(start, start + BUILD_GROUP)])
    ledger.close()


def _raw_read(path: Path) -> float:
    ledger = open_ledger(path)
    t0 = time.perf_counter()
    n = sum(1 for _ in ledger.read("big"))
    rate = n / (time.perf_counter() - t0)
    ledger.close()
    assert n == CATCH_UP
    return rate


async def _catch_up(path: Path) -> float:
    ledger = open_ledger(path)
    events = EventKernel(ledger)
    t0 = time.perf_counter()
    sub = events.subscribe("*", run="big", from_seq=1)
    n = 0
    last: Event | None = None
    async for event in sub:
        n += 1
        if n == CATCH_UP:
            last = event
            break
    elapsed = time.perf_counter() - t0
    last_seq = 0 if last is None else last.seq
    if n != CATCH_UP or last_seq != CATCH_UP:
        raise RuntimeError(f"catch-up delivered {n} events, the last being {last_seq}")
    await events.aclose()
    ledger.close()
    return n / elapsed


# -- the group ---------------------------------------------------------------------------


def collect(repeats: int) -> list[Figure]:
    figs: list[Figure] = []
    ts = _transitions(max(LIVE_EVENTS, STUCK_PUBLISHES))
    live = _groups(ts[:LIVE_EVENTS])
    fan = _groups(ts[: LIVE_EVENTS // 2])

    ref = median_of(lambda: asyncio.run(_queue_round_trip(100_000)), repeats)
    figs.append(
        Figure(GROUP, "reference: asyncio.Queue round trip between two tasks", ref, "msg/s", None)
    )
    stream = median_of(lambda: asyncio.run(_queue_stream(200_000)), repeats)
    figs.append(
        Figure(GROUP, "reference: asyncio.Queue(1024) stream, two tasks", stream, "msg/s", None)
    )
    one = median_of(lambda: asyncio.run(_deliver(1, live)), repeats)
    figs.append(
        Figure(
            GROUP,
            "one subscriber: events delivered",
            one,
            "events/s",
            200_000,
            ">=",
            f"groups of {GROUP_SIZE}; {one / stream:.2f}x the Queue stream",
        )
    )
    ten = median_of(lambda: asyncio.run(_deliver(FAN_OUT, fan)), repeats)
    figs.append(
        Figure(
            GROUP,
            "ten subscribers: deliveries in total",
            ten,
            "events/s",
            500_000,
            ">=",
            f"groups of {GROUP_SIZE}; {ten / stream:.2f}x the Queue stream",
        )
    )
    single = median_of(lambda: asyncio.run(_deliver(1, _single(ts[:50_000]))), repeats)
    figs.append(
        Figure(GROUP, "one subscriber, one event per publish (reference)", single, "events/s", None)
    )

    runs = [asyncio.run(_stuck_latency(ts[:STUCK_PUBLISHES])) for _ in range(max(1, repeats))]
    p99 = median([r[0] for r in runs])
    figs.append(
        Figure(
            GROUP,
            "stuck subscriber present: publish latency p99",
            p99,
            "µs",
            50,
            "<=",
            f"{STUCK_PUBLISHES:,} publishes of one transition",
        )
    )
    queued = max(r[1] for r in runs)
    figs.append(Figure(GROUP, "stuck subscriber: events held", queued, "events", STUCK_QUEUE, "<="))
    episodes = max(r[2] for r in runs)
    figs.append(Figure(GROUP, "stuck subscriber: lagged events recorded", episodes, "", 1, "<="))
    grew = median_of(lambda: _stuck_memory(ts[:STUCK_PUBLISHES]), min(repeats, 3))
    figs.append(
        Figure(
            GROUP,
            f"stuck subscriber: memory held after {STUCK_PUBLISHES:,} events",
            grew,
            "KiB",
            STUCK_QUEUE * 128 / 1024,
            "<=",
            f"its queue: {STUCK_QUEUE} events at <= 128 B each",
        )
    )

    tmp = Path(tempfile.mkdtemp(prefix="telic-bench-events-"))
    try:
        path = tmp / "big.db"
        _build(path)
        # interleaved, so that both see the same (noisy) machine
        pairs = [(_raw_read(path), asyncio.run(_catch_up(path))) for _ in range(min(repeats, 3))]
        raw = median([r for r, _ in pairs])
        figs.append(
            Figure(GROUP, "reference: ledger.read of 1,000,000 from SQLite", raw, "events/s", None)
        )
        rate = median([c for _, c in pairs])
        ratio = median([c / r for r, c in pairs])
        figs.append(
            Figure(
                GROUP,
                "catch-up of 1,000,000 events from SQLite",
                rate,
                "events/s",
                300_000,
                ">=",
                f"{ratio:.0%} of the ledger's own read rate",
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figs


def _single(ts: list[Transition]) -> list[list[Transition]]:
    return [[t] for t in ts]
