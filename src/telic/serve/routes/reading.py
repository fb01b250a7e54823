"""Reading a run: transitions (paged), the state at a seq, the diff of two, the transcript;
and the catalogue of transition kinds with their payload schemas.

What may take long (a fold, a whole run's transcript, a filtered scan) runs in a worker
thread (plain-function routes, which FastAPI runs in its threads, or ``ctx.reads``), so the
event loop never waits on it; reads bounded by a key range (a page of at most 1,000
transitions, one transition) run on the loop, where they cost less than the hop.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Query, Response

from telic.access import Identity
from telic.errors import SequenceError
from telic.kinds import CATALOGUE
from telic.reducer import state_hash
from telic.serve.auth import Reader
from telic.serve.context import Context, context
from telic.serve.models import (
    Change,
    KindOut,
    StateOut,
    TranscriptOut,
    TransitionOut,
    TransitionPage,
)
from telic.statediff import state_diff
from telic.transcript import render

__all__ = ["router"]

router = APIRouter(tags=["reading"])

Ctx = Annotated[Context, Depends(context)]


@router.get(
    "/runs/{run_id}/transitions",
    response_model=TransitionPage,
    summary="Transitions, paged by seq, filtered by kind pattern and agent",
)
async def transitions(
    run_id: str,
    ctx: Ctx,
    who: Identity = Reader,
    from_seq: Annotated[int, Query(alias="from", ge=1, description="First seq.")] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    kind: Annotated[
        str | None, Query(description="Glob over kinds, e.g. `tool.*`; several joined by `,`.")
    ] = None,
    agent: Annotated[str | None, Query()] = None,
) -> Response:
    patterns = None if kind is None else [p for p in kind.split(",") if p]
    if patterns is None and agent is None:
        # At most `limit` (1,000) rows by key: a few milliseconds at worst, read here; the hop
        # to a worker thread would cost more than the read (this is the hot path).
        body = _page(ctx, run_id, from_seq, limit, None, None)
    else:  # a filter may scan the whole run to fill a page: off the loop
        body = await anyio.to_thread.run_sync(
            _page, ctx, run_id, from_seq, limit, patterns, agent, limiter=ctx.reads
        )
    return Response(body, media_type="application/json")


def _page(
    ctx: Context,
    run_id: str,
    from_seq: int,
    limit: int,
    patterns: list[str] | None,
    agent: str | None,
) -> bytes:
    info = ctx.ledger.run(run_id)
    if from_seq > info.head + 1:
        raise SequenceError(run_id, from_seq, info.head)
    filtered = patterns is not None or agent is not None
    items: list[dict[str, Any]] = []
    seq = from_seq
    # Filtered pages read on until they are full or the head is reached.
    while seq <= info.head and len(items) < limit:
        end = min(info.head, seq + (max(limit, 256) if filtered else limit) - 1)
        for t in ctx.ledger.read(run_id, seq, end):
            seq = t.seq + 1
            if patterns is not None and not any(fnmatch.fnmatchcase(t.kind, p) for p in patterns):
                continue
            if agent is not None and t.agent != agent:
                continue
            items.append(t.to_json())
            if len(items) == limit:
                break
    # The ledger's records are valid already: encoded as they are.
    page = {"items": items, "next_from": seq if seq <= info.head else None, "head": info.head}
    return orjson.dumps(page)


@router.get(
    "/runs/{run_id}/transitions/{seq}", response_model=TransitionOut, summary="One transition"
)
async def transition(run_id: str, seq: int, ctx: Ctx, who: Identity = Reader) -> Response:
    return Response(
        orjson.dumps(ctx.ledger.get(run_id, seq).to_json()), media_type="application/json"
    )


@router.get("/runs/{run_id}/state", response_model=StateOut, summary="The state at a seq")
def state(
    run_id: str,
    ctx: Ctx,
    who: Identity = Reader,
    at: Annotated[int | None, Query(ge=0, description="A seq (default: the head).")] = None,
) -> Response:
    s = ctx.ledger.state_at(run_id, at)
    # A fold of the ledger's records is valid JSON already: encoded as it is (time travel).
    out = {"run": run_id, "seq": s["seq"], "state_hash": state_hash(s), "state": s}
    return Response(orjson.dumps(out), media_type="application/json")


@router.get(
    "/runs/{run_id}/diff", response_model=list[Change], summary="What changed between two seqs"
)
def diff(
    run_id: str,
    ctx: Ctx,
    a: Annotated[int, Query(ge=0, description="The earlier seq.")],
    b: Annotated[int, Query(ge=0, description="The later seq.")],
    who: Identity = Reader,
) -> list[Change]:
    before, after = ctx.ledger.state_at(run_id, a), ctx.ledger.state_at(run_id, b)
    return list(state_diff(before, after))


@router.get(
    "/runs/{run_id}/transcript",
    response_model=TranscriptOut,
    summary="The tick-level transcript (`telic show`)",
)
def transcript(run_id: str, ctx: Ctx, who: Identity = Reader) -> TranscriptOut:
    info = ctx.ledger.run(run_id)
    return TranscriptOut(run=run_id, lines=render(ctx.ledger.read(run_id), total=info.head))


@router.get("/kinds", response_model=list[KindOut], summary="Transition kinds and their schemas")
def kinds(who: Identity = Reader) -> list[KindOut]:
    return [
        KindOut.model_validate({"kind": k, "summary": m.summary, "schema": m.model_json_schema()})
        for k, m in CATALOGUE.items()
    ]
