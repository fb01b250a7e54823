"""Handing an accepted HTTP connection to another process.

A stream request is authenticated and checked by the server's process (tokens, the run, the
seq), then its socket is passed to a stream worker (:mod:`telic.serve.workers`) with
``SCM_RIGHTS``, and the server forgets it: from then on the worker writes the response and
the server's process does nothing for that client.

To pass a socket one needs it, and ASGI does not give the app its connection: the
:class:`HandoffHttp` protocol (uvicorn's httptools protocol, of which it is a thin subclass)
puts the request's transport in the ASGI scope's ``extensions`` under :data:`EXTENSION`.
``telic serve`` runs uvicorn with it (:func:`uvicorn_options`); under another server, or over
TLS, :func:`connection_of` finds nothing and streams are served in-process as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["EXTENSION", "HandoffHttp", "connection_of", "uvicorn_options"]

EXTENSION: Final = "telic.connection"
"""The scope extension holding the request's :class:`asyncio.Transport`."""

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: uvicorn uses h11 and streams stay in-process
    HandoffHttp: type[asyncio.Protocol] | None = None
else:

    class _HandoffHttp(HttpToolsProtocol):
        """uvicorn's httptools protocol, with each request's transport in its scope."""

        def on_headers_complete(self) -> None:
            extensions: dict[str, Any] = dict(self.scope.get("extensions") or {})
            extensions[EXTENSION] = self.transport
            self.scope["extensions"] = extensions  # pyright: ignore[reportGeneralTypeIssues]
            super().on_headers_complete()

    HandoffHttp = _HandoffHttp


def uvicorn_options() -> dict[str, Any]:
    """The options ``uvicorn.Config``/``uvicorn.run`` need for streams to be handed off."""
    return {} if HandoffHttp is None else {"http": HandoffHttp}


def connection_of(scope: Mapping[str, Any]) -> asyncio.Transport | None:
    """The plain TCP/Unix transport of the request, if the server put it in the scope."""
    extensions: Mapping[str, Any] = scope.get("extensions") or {}
    transport = extensions.get(EXTENSION)
    if not isinstance(transport, asyncio.Transport) or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None  # TLS state lives in this process: it cannot be handed over
    return transport
