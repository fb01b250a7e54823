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
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from telic.access import Identity
from telic.errors import BadSubscription, SubscriptionClosed
from telic.events import Event, Subscription
from telic.serve.auth import Reader
from telic.serve.context import Context, context

__all__ = ["router", "sse_frame"]

router = APIRouter(tags=["streams"])

Ctx = Annotated[Context, Depends(context)]

_HEADERS: Final = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_RETRY_MS: Final = 1000


def sse_frame(event: str, data: Any, id_: str | None = None) -> bytes:
    head = b"" if id_ is None else b"id: " + id_.encode() + b"\n"
    return head + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _event_frame(e: Event, with_run: bool) -> bytes:
    t = e.transition
    data = t.to_json()
    data["type"] = e.type
    return sse_frame(e.type, data, f"{t.run}:{t.seq}" if with_run else str(t.seq))


async def _stream(sub: Subscription, heartbeat: float, with_run: bool) -> AsyncIterator[bytes]:
    with sub:
        yield f"retry: {_RETRY_MS}\n\n".encode()
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
                yield sse_frame("stream.dropped", {"reason": str(exc)})
                return
            yield _event_frame(event, with_run)


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
        _stream(sub, ctx.settings.heartbeat_s, with_run=False),
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
    ctx: Ctx,
    who: Identity = Reader,
    kind: Annotated[str, Query(description="Event type pattern, e.g. `run.*`.")] = "*",
) -> StreamingResponse:
    sub = ctx.events.subscribe(kind, maxsize=ctx.settings.stream_queue, overflow="disconnect")
    return StreamingResponse(
        _stream(sub, ctx.settings.heartbeat_s, with_run=True),
        media_type="text/event-stream",
        headers=_HEADERS,
    )
