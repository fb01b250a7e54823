"""Who may do what: every route names the scope it needs here, and nowhere else.

A request authenticates with ``Authorization: Bearer <token>``; a ``GET`` may pass
``?access_token=`` instead (a browser's ``EventSource`` cannot set headers). With
``anonymous_read`` (loopback only), a request without a token may read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request

from telic.access import Identity
from telic.errors import Unauthenticated
from telic.serve.context import Context, context

__all__ = ["ANONYMOUS", "Approver", "Operator", "Reader", "identity", "require"]

ANONYMOUS = Identity("anonymous", ("read",))


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("the Authorization header must be `Bearer <token>`")
        return value.strip()
    if request.method == "GET":
        return request.query_params.get("access_token")
    return None


def identity(request: Request, ctx: Context, scope: str) -> Identity:
    token = _token(request)
    if token is None and ctx.settings.anonymous_read and scope == "read":
        who = ANONYMOUS
    else:
        who = ctx.tokens.authenticate(token)
    request.state.identity = who.name
    who.require(scope)
    return who


def require(scope: str) -> Callable[..., Coroutine[Any, Any, Identity]]:
    """A dependency: the request's identity, once it is known to hold ``scope`` (on the loop:
    the token store answers from memory, reading one head when no token changed)."""

    async def dependency(request: Request, ctx: Annotated[Context, Depends(context)]) -> Identity:
        return identity(request, ctx, scope)

    return dependency


Reader = Depends(require("read"))
Operator = Depends(require("operate"))
Approver = Depends(require("approve"))
