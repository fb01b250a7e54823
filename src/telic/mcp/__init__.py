"""MCP integration (the ``telic[mcp]`` extra): MCP servers' tools for telic runs
(:mod:`telic.mcp.tools`), and telic's runs for MCP clients (:mod:`telic.mcp.server`,
``telic mcp``). See docs/integrations.md."""

from __future__ import annotations

try:
    import mcp  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError:  # pragma: no cover - exercised without the extra
    from telic.errors import MissingExtra

    raise MissingExtra("mcp", "mcp") from None

from telic.mcp.server import Authorize, Scope, build_server, local_operator
from telic.mcp.tools import McpServer, McpServerSpec, connect, load, schema_hash

__all__ = [
    "Authorize",
    "McpServer",
    "McpServerSpec",
    "Scope",
    "build_server",
    "connect",
    "load",
    "local_operator",
    "schema_hash",
]
