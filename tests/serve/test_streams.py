"""The SSE writer on the real event kernel: heartbeats when idle, a slow client dropped with a
final event (publishing never waits for it), ids that resume where a client left off."""

from __future__ import annotations

import asyncio

from telic.events import EventKernel
from telic.kinds import TickStarted
from telic.ledger import open_ledger
from telic.serve.routes.streams import _stream  # pyright: ignore[reportPrivateUsage]
from telic.transition import draft


def _tick(n: int) -> list[object]:
    return [draft(TickStarted(tick=n), ts=n, tick=n)]


def test_an_idle_stream_sends_heartbeats_then_the_events_as_they_come() -> None:
    async def main() -> list[bytes]:
        ledger = open_ledger("memory://")
        ledger.create_run("r")
        async with EventKernel(ledger) as events:
            sub = events.subscribe("*", run="r", maxsize=8, overflow="disconnect")
            stream = _stream(sub, 0.01, with_run=False)
            out = [await anext(stream), await anext(stream)]
            events.publish(ledger.append("r", _tick(1)))  # type: ignore[arg-type]
            out.append(await anext(stream))
            await stream.aclose()
            return out

    retry, beat, first = asyncio.run(main())
    assert retry == b"retry: 1000\n\n" and beat == b": heartbeat\n\n"
    assert first.startswith(b"id: 1\nevent: tick.started\ndata: {")


def test_a_client_that_falls_behind_is_dropped_with_a_final_event() -> None:
    async def main() -> tuple[list[bytes], int]:
        ledger = open_ledger("memory://")
        ledger.create_run("r")
        async with EventKernel(ledger) as events:
            sub = events.subscribe("*", run="r", maxsize=4, overflow="disconnect")
            stream = _stream(sub, 30.0, with_run=False)
            frames = [await anext(stream)]
            for n in range(1, 11):  # the client reads nothing meanwhile; publishing never waits
                events.publish(ledger.append("r", _tick(n)))  # type: ignore[arg-type]
            frames += [f async for f in stream]
            return frames, events.subscription_count

    frames, open_subscriptions = asyncio.run(main())
    assert frames[-1].startswith(b"event: stream.dropped\ndata: {")
    # its queue was freed when it overflowed: it reconnects with Last-Event-ID to catch up
    assert frames[1:-1] == []
    assert b"behind" in frames[-1] or b"overflow" in frames[-1], frames[-1]
    assert open_subscriptions == 0
