"""telic as an MCP server over streamable HTTP, at ``/mcp`` of ``telic serve``.

The tools and resources are :func:`telic.mcp.build_server`'s (the same as ``telic mcp`` over
stdio), on the server's own ledger. Access is the HTTP API's: every request to ``/mcp`` needs
a token with the ``read`` scope (``Authorization: Bearer <token>``; without one, ``401`` with
a JSON error, unless ``--anonymous-read`` lets loopback clients read), and ``fork`` and
``resume`` check the ``operate`` scope of the token that sent the call (a tool error naming
the missing scope otherwise). The actor recorded in ``run.forked.by`` / ``run.resumed.by`` is
the token's name. Each fork and resume call, done, refused or failed, is also recorded as
``api.called`` (``POST /mcp/tools/NAME`` with its status, the run and the token's name), like
every mutating request to the HTTP API. Needs the ``mcp`` extra; without it ``/mcp`` is not
mounted.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from telic.access import Identity, TokenStore
from telic.errors import TelicError, Unauthenticated
from telic.ledger.base import BaseLedger
from telic.serve.auth import ANONYMOUS
from telic.serve.problems import problem

if TYPE_CHECKING:
    from telic.mcp.server import Scope as McpScope

__all__ = ["PATH", "McpEndpoint", "available"]

PATH = "/mcp"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def available() -> bool:
    """Whether the ``mcp`` extra is installed."""
    try:
        import mcp.server  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        return False
    return True


def _token(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("the Authorization header must be `Bearer <token>`")
    return value.strip()


class McpEndpoint:
    """The ASGI app at ``/mcp``: checks the request's token, then hands the request to the
    MCP server's streamable HTTP handler. :meth:`running` (in the app's lifespan) builds the
    server on the ledger and runs the SDK's session manager."""

    def __init__(self, *, anonymous_read: bool, host: str) -> None:
        self.anonymous_read = anonymous_read
        self.host = host
        self._tokens: TokenStore | None = None
        self._handler: ASGIApp | None = None

    def identity(self, headers: Mapping[str, str] | None, scope: str) -> Identity:
        tokens = self._tokens
        if tokens is None:
            raise Unauthenticated("the server is not ready")
        token = _token(headers or {})
        if token is None and self.anonymous_read and scope == "read":
            return ANONYMOUS
        who = tokens.authenticate(token)
        who.require(scope)
        return who

    def authorize(self, scope: McpScope, headers: Mapping[str, str] | None) -> str:
        return f"{self.identity(headers, scope).name} via mcp"

    def audit(self, tool: str, run: str, headers: Mapping[str, str] | None, status: int) -> None:
        """Record a mutating tool call with who made it (``api.called``), as the HTTP API
        records its mutating requests; a request that got this far had a valid token."""
        tokens = self._tokens
        if tokens is None:  # pragma: no cover - the server stopped between call and record
            return
        try:
            token = _token(headers or {})
            who = ANONYMOUS.name if token is None else tokens.authenticate(token).name
        except TelicError:
            return  # no identity to record: the check at the door refuses such requests
        tokens.record_call(who, "POST", f"{PATH}/tools/{tool}", status, run)

    @contextlib.asynccontextmanager
    async def running(self, ledger: BaseLedger, tokens: TokenStore) -> AsyncGenerator[None]:
        from mcp.server.transport_security import TransportSecuritySettings

        from telic.mcp.server import build_server

        server = build_server(ledger, authorize=self.authorize, audit=self.audit)
        # The SDK guards loopback servers against DNS rebinding by their Host header; a
        # server bound elsewhere is reached by names it cannot know (tokens guard it).
        security = (
            None
            if self.host in _LOOPBACK  # the SDK's own protection for these names
            else TransportSecuritySettings(enable_dns_rebinding_protection=False)
        )
        app = server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            host=self.host,
            transport_security=security,
        )
        route: Any = app.routes[0]
        handler: ASGIApp = route.app
        async with server.session_manager.run():
            self._tokens, self._handler = tokens, handler
            try:
                yield
            finally:
                self._tokens = self._handler = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._handler
        if scope["type"] != "http":  # pragma: no cover - only HTTP is routed here
            return
        if handler is None:
            await problem(503, "the MCP endpoint is not running", "unavailable")(
                scope, receive, send
            )
            return
        try:
            self.identity(Headers(scope=scope), "read")
        except TelicError as exc:
            status = 401 if isinstance(exc, Unauthenticated) else 403
            await problem(status, str(exc))(scope, receive, send)
            return
        await handler(scope, receive, send)
