"""Tool calls as Ray tasks, placed by the resources their tool declares.

A tool with :attr:`~telic.tools.Tool.resources` (``{"num_gpus": 1}``, ``{"scanner": 1}``)
hosted on a Ray cluster is called through :func:`on_ray`: the same :class:`Tool` (name,
schema, timeout, idempotence, approval) whose function submits one Ray task per call with
those resources and awaits its result. Everything the kernel does around a call is
unchanged: it records ``tool.started`` first, its guard (:mod:`telic.kernel.guard`) holds the
deadline, and when it cancels the call (a timeout, a stopped run) the Ray task is cancelled
too (``ray.cancel(force=True)``: the worker running it is killed, so a call that ignores
cancellation cannot linger).

The tool's function travels to the worker pickled by cloudpickle (by reference when it lives
in an importable module); ``paths`` are put on the worker's ``sys.path`` before it is
unpickled, so a tool module beside a spec file is found on every node that sees that
directory. A task that raises is the tool's own error (its cause, not Ray's wrapper), so the
ledger records ``ValueError: ...`` whether the call ran here or there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, cast

from telic.cluster._ray import cloudpickle, exceptions, ray
from telic.tools import Tool

__all__ = ["BUILTIN_RESOURCES", "on_ray", "outcome", "ray_options"]

BUILTIN_RESOURCES: Final = frozenset({"num_cpus", "num_gpus", "memory"})
"""Resource names Ray takes as options of their own; any other name is a custom resource."""


def ray_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray's ``.options(...)`` for a call that needs ``resources``. A tool that names no CPUs
    reserves none (a tool call mostly waits on I/O); name ``num_cpus`` to reserve some."""
    options: dict[str, Any] = {"num_cpus": 0}
    custom: dict[str, float] = {}
    for name, amount in resources.items():
        if name in BUILTIN_RESOURCES:
            options[name] = int(amount) if name == "memory" else amount
        else:
            custom[name] = amount
    if custom:
        options["resources"] = custom
    return options


def _call_tool(paths: Sequence[str], fn_blob: bytes, kwargs: dict[str, Any]) -> Any:
    """The Ray task: unpickle the tool's function with ``paths`` importable, and run it."""
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    fn = cast(Callable[..., Awaitable[Any]], cloudpickle.loads(fn_blob))
    return asyncio.run(_awaited(fn, kwargs))


async def _awaited(fn: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
    return await fn(**kwargs)


_remote_call: Any = ray.remote(max_retries=0)(_call_tool)
"""Never retried by Ray: whether a failed call is tried again is the kernel's decision (only
idempotent tools with a retry policy are, each attempt on record)."""


def on_ray(tool: Tool, *, paths: Sequence[str] = ()) -> Tool:
    """``tool`` with each call run as a Ray task where its :attr:`~Tool.resources` are (a
    tool without resources is returned as it is: it runs in the run's own process)."""
    if not tool.resources:
        return tool
    options = ray_options(tool.resources)
    blob = cloudpickle.dumps(tool.fn)
    where = tuple(paths)

    async def remote(**kwargs: Any) -> Any:
        ref = _remote_call.options(name=f"telic-tool-{tool.name}", **options).remote(
            where, blob, kwargs
        )
        return await outcome(ref)

    return dataclasses.replace(tool, fn=remote)


async def outcome(ref: Any) -> Any:
    """Await a Ray task's result. The task is cancelled with its caller; an exception the
    task's own code raised is raised here as itself (not Ray's wrapper), as if it had run in
    this process; Ray's own errors (a task whose node or worker died, or that Ray gave up on)
    are raised as they are."""
    try:
        return await ref
    except asyncio.CancelledError:
        ray.cancel(ref, force=True)
        raise
    except exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, Exception):
            raise cause from None
        raise
