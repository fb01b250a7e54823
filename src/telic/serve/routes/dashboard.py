"""The dashboard: its static files at ``/`` and the two reads only it needs, who the caller is
(``GET /me``) and the comparison of two runs (``GET /compare``, as ``telic compare``).

The page is plain ES modules and CSS in ``telic/serve/static`` (shipped in the wheel; no build
step, no CDN). Everything it shows comes through the API, with the caller's token.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from telic.access import SCOPES, Identity, allows
from telic.compare import Comparison, compare
from telic.serve.auth import Reader
from telic.serve.context import Context, context

__all__ = ["STATIC", "MeOut", "install", "router"]

STATIC = Path(str(resources.files("telic.serve") / "static"))
"""The dashboard's files."""

router = APIRouter(tags=["dashboard"])

Ctx = Annotated[Context, Depends(context)]


class MeOut(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    """The identity requests are recorded under (``anonymous`` without a token)."""
    scopes: list[str]
    """Every scope the caller holds, implied ones included (``approve`` implies ``read``)."""


@router.get("/me", response_model=MeOut, summary="Who the caller is and what it may do")
async def me(who: Identity = Reader) -> MeOut:
    return MeOut(name=who.name, scopes=[s for s in SCOPES if allows(who.scopes, s)])


@router.get(
    "/compare",
    response_model=Comparison,
    summary="Compare two runs: divergence, each one's decisions from there, final-state diff",
)
def compare_runs(
    ctx: Ctx,
    a: Annotated[str, Query(description="The first run (e.g. the parent).")],
    b: Annotated[str, Query(description="The second run (e.g. its fork).")],
    who: Identity = Reader,
    limit: Annotated[int, Query(ge=1, le=1000, description="Decisions per run.")] = 100,
) -> Comparison:
    return compare(ctx.ledger, a, b, limit=limit)


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, and its files at ``/`` (last: the mount takes what no
    route did)."""
    app.include_router(router)
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="dashboard")
