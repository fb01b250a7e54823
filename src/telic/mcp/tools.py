"""MCP servers as a source of telic tools (the ``telic[mcp]`` extra).

An :class:`McpServerSpec` names a server: a stdio command or a streamable HTTP URL. Its tools
become :class:`~telic.tools.Tool` objects whose argument schema is the server's input schema
(the kernel validates proposals against it), whose ``source`` is ``mcp:<server>`` and whose
``version`` is a hash of the tool's definition. Tools the server marks ``destructiveHint``, or
that the spec lists as ``high_impact``, need approval. The kernel enforces the timeout
(``tool.timeout``) and records every call as ``tool.started`` / ``tool.completed`` /
``tool.failed``.

Each server has one connection, owned by a task of its :class:`McpServer` (the SDK's client is
a context that must be entered and left by one task); calls from agents' tasks go through it
concurrently. A server that crashes, hangs past a timeout, or cannot be reached makes that call
fail with a typed error (:class:`~telic.errors.McpServerUnavailable`) and is started again for
the next call. Close everything with :meth:`McpServer.aclose` (or ``async with``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO

import httpx2
import orjson
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import CONNECTION_CLOSED

from telic.errors import (
    ConfigError,
    McpMalformedResult,
    McpServerUnavailable,
    McpToolFailed,
    ToolArgumentsInvalid,
)
from telic.tools import Tool

__all__ = ["McpServer", "McpServerSpec", "connect", "load", "schema_hash"]

_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
"""The SDK's own client's timeouts (a server may hold a response stream open)."""


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """How to reach one MCP server, and what telic makes of its tools."""

    name: str
    """The server's name in telic (recorded as the tools' ``source``, ``mcp:<name>``)."""
    command: tuple[str, ...] = ()
    """A stdio server: the command and its arguments."""
    url: str | None = None
    """A streamable HTTP server: its URL (e.g. ``http://127.0.0.1:8000/mcp``)."""
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    """Extra environment variables of a stdio server."""
    cwd: str | None = None
    """The working directory of a stdio server."""
    timeout_s: float = 30.0
    """The kernel's timeout of each call of this server's tools."""
    connect_timeout_s: float = 30.0
    """How long starting (or reaching) the server and listing its tools may take."""
    tools: tuple[str, ...] | None = None
    """Only these of the server's tools (None: all of them)."""
    high_impact: tuple[str, ...] = ()
    """Tools that need approval besides those the server marks ``destructiveHint``."""
    idempotent: tuple[str, ...] = ()
    """Tools telic may run again after a crash (besides those marked ``idempotentHint``)."""
    prefix: str = ""
    """Prepended to every tool name (e.g. ``files.``), to keep names apart."""
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    """HTTP headers of every request to a streamable HTTP server (e.g. ``Authorization``);
    never recorded in the ledger."""

    def __post_init__(self) -> None:
        if bool(self.command) == bool(self.url):
            raise ConfigError(f"MCP server {self.name!r}: give exactly one of command or url")
        if self.headers and self.url is None:
            raise ConfigError(f"MCP server {self.name!r}: headers are for a url, not a command")
        if not self.name:
            raise ConfigError("an MCP server needs a name")
        if not (self.timeout_s > 0 and self.connect_timeout_s > 0):
            raise ConfigError(f"MCP server {self.name!r}: timeouts must be positive")

    def target(self, http: httpx2.AsyncClient | None = None) -> Any:
        """What the SDK's ``Client`` connects to: the URL (through ``http``, a client that
        sends :attr:`headers`, when given), or a stdio transport."""
        if self.url is not None:
            if http is not None:
                return streamable_http_client(self.url, http_client=http)
            return self.url
        params = StdioServerParameters(
            command=self.command[0],
            args=list(self.command[1:]),
            env=dict(self.env) or None,
            cwd=self.cwd,
        )
        return stdio_client(params, errlog=_errlog())


def schema_hash(tool: Any) -> str:
    """A hash of an MCP tool's definition (name, input schema, annotations), as its version."""
    definition = {
        "name": tool.name,
        "input_schema": tool.input_schema,
        "annotations": None
        if tool.annotations is None
        else tool.annotations.model_dump(mode="json", exclude_none=True),
    }
    digest = hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "sha256:" + digest[:16]


def _checker(name: str, schema: Mapping[str, Any]) -> Any:
    cls: Any = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"MCP tool {name!r} has an invalid input schema: {exc.message}") from None
    validator: Any = cls(schema)

    def check(args: dict[str, Any]) -> dict[str, Any]:
        errors: list[Any] = sorted(validator.iter_errors(args), key=lambda e: list(e.path))
        if errors:
            detail = "; ".join(
                f"{'.'.join(map(str, e.path)) or '(args)'}: {e.message}" for e in errors
            )
            raise ToolArgumentsInvalid(name, detail)
        return args

    return check


def _result(server: str, tool: str, result: Any) -> Any:
    """The JSON telic records for a ``CallToolResult``."""
    if result.is_error:
        text = " ".join(
            getattr(block, "text", "") for block in result.content if getattr(block, "text", "")
        )
        raise McpToolFailed(server, f"tool {tool!r} failed: {text or 'no message'}")
    if result.structured_content is not None:
        return result.structured_content
    blocks: list[Any] = []
    for block in result.content:
        kind = getattr(block, "type", None)
        if kind == "text":
            blocks.append(block.text)
        elif kind is not None:
            blocks.append(block.model_dump(mode="json", exclude_none=True))
        else:
            raise McpMalformedResult(server, f"tool {tool!r} returned {block!r}")
    if len(blocks) == 1:
        return blocks[0]
    return blocks


class McpServer:
    """One MCP server: its connection, its tools as telic tools, restarts after a failure."""

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self.connections = 0
        """How many times the connection was opened (more than once: after failures)."""
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    async def __aenter__(self) -> McpServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the connection ------------------------------------------------------------------

    async def _hold(self, ready: asyncio.Event, stop: asyncio.Event) -> None:
        """The owner task: enter the client, wait until told to stop (or the server dies)."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                http = None
                if self.spec.headers:  # a client of our own; the SDK's would send none
                    http = await stack.enter_async_context(
                        httpx2.AsyncClient(headers=dict(self.spec.headers), timeout=_HTTP_TIMEOUT)
                    )
                client = await stack.enter_async_context(
                    Client(self.spec.target(http), read_timeout_seconds=self.spec.connect_timeout_s)
                )
                self._client = client
                ready.set()
                await stop.wait()
        except Exception as exc:  # the transport failed: recorded, reported to callers
            self._failure = exc
        finally:
            self._client = None
            ready.set()

    async def _connected(self) -> Client:
        if self._closed:
            raise McpServerUnavailable(self.spec.name, "the server was closed")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            client = self._client
            if client is not None and self._owner is not None and not self._owner.done():
                return client
            if self._owner is not None:
                await self._drop()
            self._failure = None
            ready, stop = asyncio.Event(), asyncio.Event()
            self._ready, self._stop = ready, stop
            self._owner = asyncio.get_running_loop().create_task(
                self._hold(ready, stop), name=f"telic-mcp-{self.spec.name}"
            )
            try:
                async with asyncio.timeout(self.spec.connect_timeout_s):
                    await ready.wait()
            except TimeoutError:
                await self._drop()
                raise McpServerUnavailable(
                    self.spec.name,
                    f"not ready within {self.spec.connect_timeout_s:g} s; check its command or URL",
                ) from None
            if self._client is None:
                failure = self._failure
                await self._drop()
                raise McpServerUnavailable(
                    self.spec.name, f"cannot connect: {_describe(failure)}"
                ) from None
            self.connections += 1
            return self._client

    async def _drop(self) -> None:
        """End the owner task (and with it the connection or the server process)."""
        owner, self._owner = self._owner, None
        if self._stop is not None:
            self._stop.set()
        self._client = None
        if owner is None:
            return
        try:
            async with asyncio.timeout(2.0):
                await asyncio.shield(owner)
        except TimeoutError:
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)
        except asyncio.CancelledError:
            owner.cancel()
            raise

    async def aclose(self) -> None:
        """Close the connection (a stdio server process ends with it)."""
        self._closed = True
        await self._drop()

    # -- tools ---------------------------------------------------------------------------

    async def list_tools(self) -> list[Tool]:
        """The server's tools as telic tools (only ``spec.tools`` when set)."""
        return self.tools(await self.definitions())

    async def definitions(self) -> list[Any]:
        """The server's tool definitions (the SDK's ``Tool`` objects), only ``spec.tools``."""
        client = await self._connected()
        listed: list[Any] = []
        cursor: str | None = None
        try:
            while True:
                page = await client.list_tools(cursor=cursor)
                listed.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        except MCPError as exc:
            raise McpToolFailed(self.spec.name, f"listing tools failed: {exc}") from None
        except Exception as exc:
            await self._drop()
            raise McpServerUnavailable(
                self.spec.name, f"listing tools failed: {_describe(exc)}"
            ) from None
        wanted = self.spec.tools
        names = {t.name for t in listed}
        if wanted is not None:
            missing = [n for n in wanted if n not in names]
            if missing:
                raise ConfigError(
                    f"MCP server {self.spec.name!r} has no tool {missing[0]!r} "
                    f"(it has: {', '.join(sorted(names)) or 'none'})"
                )
        return [t for t in listed if wanted is None or t.name in wanted]

    def tools(self, definitions: Sequence[Any]) -> list[Tool]:
        """Telic tools for ``definitions`` (from :meth:`definitions`), calling this server."""
        return [self._tool(d) for d in definitions]

    def record(self, tools: Sequence[Tool]) -> dict[str, Any]:
        """What a run records of this server (in ``run.booted``'s config): its transport and
        each tool's version, so a replay knows what was called."""
        return {
            "transport": "http" if self.spec.url else "stdio",
            "target": self.spec.url or " ".join(self.spec.command),
            "tools": {t.name: t.version for t in tools if t.source == f"mcp:{self.spec.name}"},
        }

    def _tool(self, listed: Any) -> Tool:
        spec = self.spec
        remote: str = listed.name
        name = spec.prefix + remote
        schema: dict[str, Any] = dict(listed.input_schema or {"type": "object"})
        hints = listed.annotations
        destructive = bool(hints is not None and hints.destructive_hint)
        idempotent = bool(hints is not None and hints.idempotent_hint) or remote in spec.idempotent

        async def call(**args: Any) -> Any:
            return await self.call(remote, args)

        return Tool(
            name=name,
            fn=call,
            args_model=None,
            description=listed.description or listed.title or "",
            timeout_s=spec.timeout_s,
            idempotent=idempotent,
            high_impact=destructive or remote in spec.high_impact or name in spec.high_impact,
            input_schema=schema,
            check=_checker(name, schema),
            source=f"mcp:{spec.name}",
            version=schema_hash(listed),
        )

    async def call(self, tool: str, args: dict[str, Any]) -> Any:
        """Call ``tool`` with ``args``; its result as JSON, or a typed :class:`McpError`."""
        client = await self._connected()
        try:
            result = await client.call_tool(tool, args)
        except asyncio.CancelledError:
            # The kernel's timeout (or a shutdown) cancelled the call: the server may still be
            # busy with it, so the next call starts it again.
            self._failure = None
            self._client = None
            raise
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:  # the server died or hung up
                await self._drop()
                raise McpServerUnavailable(
                    self.spec.name, f"the connection closed during the call of {tool!r}"
                ) from None
            raise McpToolFailed(self.spec.name, f"tool {tool!r}: {exc.error.message}") from None
        except Exception as exc:
            await self._drop()
            raise McpServerUnavailable(
                self.spec.name, f"the call of {tool!r} failed: {_describe(exc)}"
            ) from None
        return _result(self.spec.name, tool, result)


def _errlog() -> TextIO:
    """Where a stdio server's stderr goes: ours, or the process's own when ours is no file
    (captured by a test runner or a notebook)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ or sys.stderr
    return sys.stderr


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "the connection ended"
    found: BaseException = exc
    while True:
        inner: Any = getattr(found, "exceptions", None)  # an exception group's members
        if not inner:
            break
        found = inner[0]
    return f"{type(found).__name__}: {found}" if str(found) else type(found).__name__


async def connect(servers: Sequence[McpServerSpec]) -> tuple[list[McpServer], list[Tool]]:
    """Connect to ``servers`` and list their tools (on this loop); close the servers (their
    :meth:`McpServer.aclose`) when the run is done."""
    opened: list[McpServer] = []
    tools: list[Tool] = []
    try:
        for spec in servers:
            server = McpServer(spec)
            opened.append(server)
            tools.extend(await server.list_tools())
    except BaseException:
        for s in opened:
            await s.aclose()
        raise
    return opened, tools


def load(servers: Sequence[McpServerSpec]) -> tuple[list[McpServer], list[Tool]]:
    """:func:`connect` for synchronous code (a spec being built): the tools are listed on a
    loop of their own, in a worker thread; the servers returned connect again, lazily, on the
    loop of the first call."""

    async def definitions() -> list[list[Any]]:
        out: list[list[Any]] = []
        for spec in servers:
            async with McpServer(spec) as probe:
                out.append(await probe.definitions())
        return out

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="telic-mcp") as pool:
        listed = pool.submit(asyncio.run, definitions()).result()
    live = [McpServer(spec) for spec in servers]
    tools = [t for server, defs in zip(live, listed, strict=True) for t in server.tools(defs)]
    return live, tools
