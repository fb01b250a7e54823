"""Calling user code so that whatever it does ends as an outcome the kernel can record.

Minds, tools and approvers are awaited in a task of their own, owned by the caller, under a
deadline: past it the task is cancelled, given ``grace`` seconds to end, and then abandoned
if it swallows the cancellation: appended to ``abandoned`` (and kept there, ended or not), so
that no task is orphaned silently. The caller
itself never runs user code, so it can always be stopped.

Whatever the call raises becomes a :class:`Called` with the exception's type name and a
message that is safe to record: ``KeyboardInterrupt`` and ``SystemExit`` (which asyncio would
otherwise let out of the event loop), a ``CancelledError`` the callee raised itself (not a
cancellation of the caller, which always propagates), and exceptions whose ``__str__`` raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, TypeVar

__all__ = [
    "MAX_MESSAGE",
    "Called",
    "Failed",
    "attempt",
    "call",
    "describe",
    "safe_text",
]

T = TypeVar("T")

MAX_MESSAGE: Final = 4096
"""Characters of an error message kept on record (the rest is counted, not stored)."""


def safe_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters and made encodable (lone surrogates replaced)."""
    if len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more chars]"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def describe(exc: BaseException) -> tuple[str, str]:
    """``(type name, message)`` of ``exc``, never raising: its ``__str__`` is user code."""
    name = safe_text(type(exc).__name__, 200)
    try:
        message = str(exc) or repr(exc)
    except BaseException:  # user code; a sync __str__ cannot be a cancellation
        message = f"<{name}: its str() raised>"
    if not isinstance(message, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        message = f"<{name}: its str() is not a string>"
    return name, safe_text(message)


@dataclass(frozen=True, slots=True)
class Called:
    """How a guarded call ended."""

    status: Literal["returned", "raised", "timeout"]
    value: Any = None
    """What it returned."""
    exc: BaseException | None = None
    """What it raised (``KeyboardInterrupt``/``SystemExit`` as raised, not wrapped)."""
    abandoned: bool = False
    """For a timeout: the call swallowed its cancellation and was left running."""

    def describe(self) -> tuple[str, str]:
        assert self.exc is not None
        return describe(self.exc)


class _Escaped(Exception):
    """Carries a KeyboardInterrupt/SystemExit out of a task without stopping the loop."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc


class _Deadline:
    __slots__ = ("passed",)

    def __init__(self) -> None:
        self.passed = False


async def _contained(
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    then: Callable[[Any], None] | None,
    deadline: _Deadline,
) -> Any:
    try:
        value = await fn(*args)
    except (KeyboardInterrupt, SystemExit) as exc:
        raise _Escaped(exc) from None
    if then is not None and not deadline.passed:
        then(value)
    return value


async def call(
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
    limit: float | None,
    grace: float,
    abandoned: list[asyncio.Task[Any]],
    name: str = "telic-call",
    then: Callable[[Any], None] | None = None,
) -> Called:
    """Await ``fn(*args)`` in a task of its own, ``limit`` seconds at most (see the module;
    ``None``: no deadline, as for a human approver when the policy sets no approval timeout).

    ``then(value)``, if given, runs in that task as soon as ``fn`` returns within its deadline
    (so that whoever waits on the answer need not wait for the caller to wake up first); it
    must not raise.
    """
    loop = asyncio.get_running_loop()
    deadline = _Deadline()
    task = loop.create_task(_contained(fn, args, then, deadline), name=name)
    # One future, one timer: cheaper than asyncio.wait, which this is called as often as.
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = None if limit is None else loop.call_later(limit, wake)
    try:
        await waiter
    except asyncio.CancelledError:
        deadline.passed = True
        await _stop(task, grace, abandoned)  # the call goes with its caller
        raise
    finally:
        if timer is not None:
            timer.cancel()
        task.remove_done_callback(wake)
    if not task.done():
        deadline.passed = True
        await _stop(task, grace, abandoned)
        return Called("timeout", abandoned=not task.done())
    if task.cancelled():  # not by us: the callee raised CancelledError itself
        return Called("raised", exc=asyncio.CancelledError("the call raised CancelledError"))
    exc = task.exception()
    if exc is None:
        return Called("returned", task.result())
    if isinstance(exc, _Escaped):
        exc = exc.exc
    return Called("raised", exc=exc)


async def _stop(task: asyncio.Task[Any], grace: float, abandoned: list[asyncio.Task[Any]]) -> None:
    """Cancel ``task``, wait up to ``grace`` seconds for it, abandon it if it is still running."""
    task.cancel()
    try:
        await asyncio.wait((task,), timeout=grace)
    finally:
        if task.done():
            _seen(task)
        else:
            abandoned.append(task)
            task.add_done_callback(_seen)


def _seen(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # asyncio logs exceptions nobody retrieved


class Failed(NamedTuple):
    """A user function (a check, a resolver, the progress function...) raised."""

    error: str
    message: str

    def __str__(self) -> str:
        return f"{self.error}: {self.message}"


def attempt(fn: Callable[..., T], *args: Any) -> T | Failed:
    """``fn(*args)``, or :class:`Failed` if it raised anything.

    For synchronous user code only: a ``CancelledError`` or ``KeyboardInterrupt`` raised
    without an ``await`` cannot be a cancellation of the kernel (asyncio delivers those at
    await points, and turns Ctrl-C into one), so it is the function's own failure.
    """
    try:
        return fn(*args)
    except BaseException as exc:  # see the docstring
        return Failed(*describe(exc))
