"""Tools: plain async functions with typed arguments, a timeout, retries and impact flags.

``@tool`` derives a JSON schema from the signature (via pydantic) and validates arguments
before the call. The kernel records a tool's start and its result, error or timeout as
transitions, so a tool whose result is in the ledger never runs again.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from telic.errors import ConfigError, ToolArgumentsInvalid, UnknownTool

__all__ = ["RetryPolicy", "Tool", "ToolRegistry", "check_resources", "tool"]


def check_resources(name: str, resources: Mapping[str, float], *, what: str = "tool") -> None:
    """Refuse a resource map Ray could not schedule: names must be non-empty text and amounts
    finite numbers above zero. ``what`` names the owner in the error (a tool, an agent)."""
    for key, amount in resources.items():
        if not isinstance(key, str) or not key.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigError(
                f"{what} {name!r}: resource names must be non-empty text, not {key!r}"
            )
        if (
            isinstance(amount, bool)
            or not isinstance(amount, (int, float))  # pyright: ignore[reportUnnecessaryIsInstance]
            or not math.isfinite(amount)
            or amount <= 0
        ):
            raise ConfigError(
                f"{what} {name!r}: resource {key!r} needs a positive amount, not {amount!r}"
            )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries for a failed or timed-out call (only for idempotent tools)."""

    attempts: int = 1
    """Total attempts, the first included."""
    backoff_s: float = 0.1
    """Wait before the second attempt; doubles each time."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A callable the kernel may run for an agent.

    A tool made by ``@tool`` validates its arguments with ``args_model`` (from the
    signature). A tool from elsewhere (an MCP server) has no model: ``input_schema`` is its
    JSON schema and ``check`` validates arguments against it, and ``fn`` takes them as keywords.
    """

    name: str
    fn: Callable[..., Awaitable[Any]]
    args_model: type[BaseModel] | None
    description: str = ""
    timeout_s: float = 30.0
    idempotent: bool = False
    high_impact: bool = False
    """High-impact calls need approval before they run."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    input_schema: Mapping[str, Any] | None = None
    """The JSON schema of the arguments when there is no ``args_model``."""
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Validates arguments against ``input_schema`` (raises :class:`ToolArgumentsInvalid`)."""
    source: str = ""
    """Where the tool comes from, e.g. ``mcp:<server>``; empty for a Python tool."""
    version: str = ""
    """What identifies this version of the tool (an MCP tool's schema hash)."""
    resources: Mapping[str, float] = field(default_factory=dict[str, float])
    """What a call needs where it runs, in Ray's terms: ``num_cpus``, ``num_gpus``, ``memory``
    (bytes) or any custom resource (``{"num_gpus": 1}``, ``{"scanner": 1}``). On a Ray cluster
    (:mod:`telic.cluster`) such a call runs as a Ray task on a node that has them; elsewhere
    the tool runs in the run's own process and this is only recorded."""

    def __post_init__(self) -> None:
        if self.args_model is None and (self.input_schema is None or self.check is None):
            raise ConfigError(f"tool {self.name!r} needs an args_model or input_schema + check")
        check_resources(self.name, self.resources)

    @property
    def schema(self) -> dict[str, Any]:
        """JSON schema of the arguments."""
        if self.args_model is None:
            return dict(self.input_schema or {})
        return self.args_model.model_json_schema()

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Validated arguments (as JSON), or :class:`ToolArgumentsInvalid`."""
        if self.args_model is None:
            assert self.check is not None
            return self.check(args)
        try:
            model = self.args_model.model_validate(args, strict=False)
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(args)'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolArgumentsInvalid(self.name, detail) from None
        return model.model_dump(mode="json")

    async def __call__(self, args: dict[str, Any]) -> Any:
        if self.args_model is None:
            assert self.check is not None
            return await self.fn(**self.check(args))
        return await self.fn(**self.args_model.model_validate(args).model_dump())


def _args_model(name: str, fn: Callable[..., Any]) -> type[BaseModel]:
    sig = inspect.signature(fn)
    hints = inspect.get_annotations(fn, eval_str=True)
    fields: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tool {name!r}: *args and **kwargs are not supported")
        if pname not in hints:
            raise ConfigError(f"tool {name!r}: parameter {pname!r} needs a type annotation")
        default = ... if param.default is param.empty else param.default
        fields[pname] = (hints[pname], default)
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{name}_args", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


@overload
def tool(fn: Callable[..., Awaitable[Any]], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    timeout: float = 30.0,
    idempotent: bool = False,
    high_impact: bool = False,
    retry: RetryPolicy | None = None,
    resources: Mapping[str, float] | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Tool]: ...
def tool(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    timeout: float = 30.0,
    idempotent: bool = False,
    high_impact: bool = False,
    retry: RetryPolicy | None = None,
    resources: Mapping[str, float] | None = None,
) -> Tool | Callable[[Callable[..., Awaitable[Any]]], Tool]:
    """Make an async function a :class:`Tool` (usable bare or with options). ``resources``:
    see :attr:`Tool.resources`."""

    def wrap(f: Callable[..., Awaitable[Any]]) -> Tool:
        if not inspect.iscoroutinefunction(f):
            raise ConfigError(f"tool {f.__name__!r} must be an async function")
        if timeout <= 0:
            raise ConfigError(f"tool {f.__name__!r}: timeout must be positive")
        tool_name = name or f.__name__
        return Tool(
            name=tool_name,
            fn=f,
            args_model=_args_model(tool_name, f),
            description=inspect.cleandoc(f.__doc__ or ""),
            timeout_s=timeout,
            idempotent=idempotent,
            high_impact=high_impact,
            retry=retry or RetryPolicy(),
            resources=dict(resources or {}),
        )

    return wrap(fn) if fn is not None else wrap


class ToolRegistry:
    """Tools by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> None:
        if t.name in self._tools:
            raise ConfigError(f"two tools are named {t.name!r}")
        self._tools[t.name] = t

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(name, sorted(self._tools)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tools.values())
