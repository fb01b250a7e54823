"""Live streams as Server-Sent Events, fed by the event kernel.

``GET /runs/{id}/events`` catches up from ``?from=SEQ`` (inclusive) or the ``Last-Event-ID``
header (the last seq the client saw), then goes live, with no gap and no duplicate at the seam
or across a reconnect: each event's ``id`` is its seq. ``GET /events`` follows every run, live.
A comment line every ``heartbeat_s`` keeps proxies from closing an idle stream. A client that
falls ``stream_queue`` events behind is dropped (the event kernel's bounded queue; publishing
never waits for it) and gets a last ``stream.dropped`` event saying so.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive

from telic.access import Identity
from telic.errors import BadSubscription, SubscriptionClosed
from telic.events import Event, Subscription
from telic.serve.auth import Reader
from telic.serve.context import Context, context

__all__ = ["FrameCache", "router", "sse_frame"]

router = APIRouter(tags=["streams"])

Ctx = Annotated[Context, Depends(context)]

_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_RETRY_MS: Final = 1000
_BATCH: Final = 256
"""Most events written at once when a client has several waiting."""


def sse_frame(event: str, data: Any, id_: str | None = None) -> bytes:
    head = b"" if id_ is None else b"id: " + id_.encode() + b"\n"
    return head + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class FrameCache:
    """The encoded frame of each recent event, shared by every client that streams it: a
    hundred followers of one run cost one encoding per transition, not a hundred."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._frames: OrderedDict[tuple[str, int, str, bool], tuple[bytes, str]] = OrderedDict()

    def frame(self, e: Event, with_run: bool) -> tuple[bytes, str]:
        t = e.transition
        key = (t.run, t.seq, e.type, with_run)
        hit = self._frames.get(key)
        if hit is not None:
            return hit
        data = t.to_json()
        data["type"] = e.type
        id_ = f"{t.run}:{t.seq}" if with_run else str(t.seq)
        made = (sse_frame(e.type, data, id_), id_)
        self._frames[key] = made
        if len(self._frames) > self.size:
            self._frames.popitem(last=False)
        return made


async def _close_on_disconnect(receive: Receive, sub: Subscription) -> None:
    """End the stream when the client goes away (the server's writes would not tell us)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            sub.close()
            return


async def _stream(
    sub: Subscription,
    heartbeat: float,
    with_run: bool,
    cache: FrameCache | None = None,
    receive: Receive | None = None,
) -> AsyncIterator[bytes]:
    frames = cache or FrameCache(64)
    watcher = None if receive is None else asyncio.create_task(_close_on_disconnect(receive, sub))
    try:
        with sub:
            yield f"retry: {_RETRY_MS}\n\n".encode()
            async for frame in _frames(sub, heartbeat, with_run, frames):
                yield frame
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.wait([watcher])


async def _frames(
    sub: Subscription, heartbeat: float, with_run: bool, frames: FrameCache
) -> AsyncIterator[bytes]:
    last: str | None = None
    while True:
        try:
            async with asyncio.timeout(heartbeat):
                event = await anext(sub)
        except TimeoutError:
            yield b": heartbeat\n\n"
            continue
        except StopAsyncIteration:
            return
        except SubscriptionClosed as exc:
            yield sse_frame(
                "stream.dropped",
                {
                    "reason": str(exc),
                    "last_event_id": last,
                    "hint": "reconnect with Last-Event-ID to catch up from the ledger",
                },
            )
            return
        frame, last = frames.frame(event, with_run)
        if not sub.queued:
            yield frame
            continue
        # More are ready: one write for the lot (a tick's group commit arrives at once).
        batch = [frame]
        while sub.queued and len(batch) < _BATCH:
            frame, last = frames.frame(await anext(sub), with_run)
            batch.append(frame)
        yield b"".join(batch)


def _start(from_seq: int | None, last_event_id: str | None) -> int | None:
    if from_seq is not None:
        return from_seq
    if last_event_id is None or not last_event_id.strip():
        return None
    try:
        last = int(last_event_id.strip().rsplit(":", 1)[-1])
    except ValueError:
        raise BadSubscription(f"Last-Event-ID {last_event_id!r} is not a sequence number") from None
    if last < 0:
        raise BadSubscription(f"Last-Event-ID {last} is negative")
    return last + 1


@router.get(
    "/runs/{run_id}/events",
    summary="A run's events as SSE: catch-up, then live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_events(
    run_id: str,
    request: Request,
    ctx: Ctx,
    who: Identity = Reader,
    from_seq: Annotated[
        int | None, Query(alias="from", ge=1, description="Catch up from this seq.")
    ] = None,
    kind: Annotated[str, Query(description="Event type pattern, e.g. `tool.*`.")] = "*",
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    ctx.ledger.run(run_id)  # 404 before the stream starts
    start = _start(from_seq, last_event_id)
    sub = ctx.events.subscribe(
        kind,
        run=run_id,
        from_seq=start,
        maxsize=ctx.settings.stream_queue,
        overflow="disconnect",
    )
    return StreamingResponse(
        _stream(
            sub, ctx.settings.heartbeat_s, with_run=False, cache=ctx.frames, receive=request.receive
        ),
        media_type="text/event-stream",
        headers=_HEADERS,
    )


@router.get(
    "/events",
    summary="Every run's events as SSE, live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def all_events(
    request: Request,
    ctx: Ctx,
    who: Identity = Reader,
    kind: Annotated[str, Query(description="Event type pattern, e.g. `run.*`.")] = "*",
) -> StreamingResponse:
    sub = ctx.events.subscribe(kind, maxsize=ctx.settings.stream_queue, overflow="disconnect")
    return StreamingResponse(
        _stream(
            sub, ctx.settings.heartbeat_s, with_run=True, cache=ctx.frames, receive=request.receive
        ),
        media_type="text/event-stream",
        headers=_HEADERS,
    )
