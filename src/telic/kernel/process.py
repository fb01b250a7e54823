"""An agent process: one supervised asyncio task that thinks and acts for one agent.

The kernel talks to a process only through its inbox: "propose" (ask the mind) and "execute"
(run a tool under its timeout). The process replies first, then, on a failure, crashes, so
that its supervisor restarts it; the inbox belongs to the kernel and survives restarts, and
the state a restarted agent sees is rebuilt from the ledger at the next tick.

The fast path (:meth:`AgentProcess.ask`): a mind that can answer synchronously
(:class:`~telic.minds.base.SyncMind`: a :class:`~telic.minds.FunctionMind` of a plain
function, a :class:`~telic.minds.ScriptedMind`) is asked in the caller's task while its
process is idle, in a copy of the caller's context, as its task would be: no task, no
hand-off, no timer. Nothing else changes: synchronous code cannot be stopped or timed out in
a task either (it holds the event loop until it returns), the reply is the same, and a mind
that fails still crashes its process (the crash is handed to the process, which raises it,
so that its supervisor restarts it as before). A mind that is not idle-able (the process is
serving a request, or has not started) or that answers with an awaitable goes through the
inbox.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from telic.errors import MalformedOutput, NotCanonical, PayloadTooLarge
from telic.kernel.guard import Called, call
from telic.kernel.intake import admit, admit_calls, check_value
from telic.kinds import ModelCalled
from telic.ledger.base import DEFAULT_MAX_PAYLOAD
from telic.minds.base import Mind, View
from telic.proposal import Proposal
from telic.tools import Tool

__all__ = ["AgentCrash", "AgentProcess", "ToolOutcome"]

_ENVELOPE: Final = 4096
"""Bytes of a ``tool.completed`` payload kept for what surrounds the result (names, ids)."""


class AgentCrash(Exception):
    """Raised inside a process to crash it (its supervisor decides what follows)."""

    def __init__(self, error: str, message: str, calls: tuple[ModelCalled, ...] = ()) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message
        self.calls = calls
        """Model calls the mind made before it failed (the kernel records them)."""


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    status: Literal["completed", "failed", "timeout"]
    result: Any = None
    error: str = ""
    message: str = ""


@dataclass(slots=True)
class _Request:
    kind: Literal["propose", "execute", "crash"]
    reply: asyncio.Future[Any] | None
    view: View | None = None
    tool: Tool | None = None
    args: dict[str, Any] = field(default_factory=dict[str, Any])
    crash_on_failure: bool = True
    pending: Any = None
    """For "propose": what is left to await of an answer begun in the caller's task (see
    :meth:`AgentProcess.ask`); for "crash": the :class:`AgentCrash` to raise."""


async def _awaited(pending: Any) -> Any:
    return await pending


class AgentProcess:
    """The body the supervisor runs for one agent, and the kernel's handle on it.

    The inbox is a plain list and one waiter future, not an ``asyncio.Queue``: an idle agent
    is only its task, this object and that future (the kernel never has more than a request
    or two in flight for one agent).

    The mind and the tools run in tasks of their own under their deadlines
    (:mod:`telic.kernel.guard`), never in the process's task, so the process can always be
    stopped; every request it takes is answered, whatever happens, stopping included. A
    proposal is answered as :class:`~telic.kernel.intake.Admitted` or
    :class:`~telic.kernel.intake.Refused` (see :mod:`telic.kernel.intake`).
    """

    __slots__ = (
        "_busy",
        "_inbox",
        "_now",
        "_waiter",
        "abandoned",
        "cancel_grace_s",
        "max_payload",
        "mind",
        "mind_timeout_s",
        "name",
    )

    def __init__(
        self,
        name: str,
        mind: Mind,
        *,
        mind_timeout_s: float,
        cancel_grace_s: float = 1.0,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        abandoned: list[asyncio.Task[Any]] | None = None,
    ) -> None:
        self.name = name
        self.mind = mind
        self.mind_timeout_s = mind_timeout_s
        self.cancel_grace_s = cancel_grace_s
        self.max_payload = max_payload
        self.abandoned: list[asyncio.Task[Any]] = [] if abandoned is None else abandoned
        """Calls that swallowed their cancellation and were left running."""
        self._inbox: list[_Request] = []
        self._waiter: asyncio.Future[None] | None = None
        self._busy = True
        """The body is not between requests: not started, serving one, or ended."""
        now = getattr(mind, "propose_now", None)
        self._now: Any = now if callable(now) else None
        """The mind's synchronous answer (:class:`~telic.minds.base.SyncMind`), if it has one."""

    async def _next(self) -> _Request:
        while not self._inbox:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._inbox.pop(0)

    def _put(self, req: _Request) -> None:
        self._inbox.append(req)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail_pending(self, why: str) -> None:
        """Answer every request still waiting in the inbox with a crash (the agent is gone)."""
        inbox, self._inbox = self._inbox, []
        for req in inbox:
            if req.reply is not None:
                _settle(req.reply, AgentCrash("AgentStopped", why))

    async def body(self) -> None:
        """Serve the inbox until cancelled; crash (raise) on a mind or tool failure."""
        try:
            while True:
                self._busy = False
                req = await self._next()
                self._busy = True
                if req.kind == "crash":
                    raise req.pending  # the mind failed in the caller's task (see ask)
                assert req.reply is not None
                if req.reply.done():
                    continue
                try:
                    if req.kind == "propose":
                        await self._propose(req)
                    else:
                        await self._execute(req)
                except asyncio.CancelledError:
                    what = "proposing" if req.kind == "propose" else "running a tool"
                    _settle(
                        req.reply,
                        AgentCrash("AgentStopped", f"the agent was stopped while {what}"),
                    )
                    raise
        finally:
            self._busy = True

    async def _propose(self, req: _Request) -> None:
        assert req.view is not None and req.reply is not None
        reply = req.reply
        fn, arg = (self.mind.propose, req.view) if req.pending is None else (_awaited, req.pending)

        def then(value: Any) -> None:
            _settle(reply, admit(value, self.name, max_bytes=self.max_payload))
            self._busy = False  # only unwinding is left: the next mind may be asked at once

        called = await call(
            fn,
            arg,
            limit=self.mind_timeout_s,
            grace=self.cancel_grace_s,
            abandoned=self.abandoned,
            name=f"telic-mind-{self.name}",
            then=then,
        )
        if called.status == "timeout":
            left = " (it ignored its cancellation and was abandoned)" if called.abandoned else ""
            crash = AgentCrash(
                "MindTimeout", f"the mind did not answer within {self.mind_timeout_s:g} s{left}"
            )
            _settle(req.reply, crash)
            raise crash
        if called.status == "raised":
            answer = self._failure(called)
            _settle(req.reply, answer)
            if isinstance(answer, AgentCrash):
                raise answer
        # returned: the reply was settled by ``then``, in the mind's task

    def _failure(self, called: Called) -> AgentCrash | MalformedOutput:
        """The answer to a proposal whose mind raised: a rejection for a malformed reply,
        otherwise the crash of the process (with the model calls the mind reported)."""
        exc = called.exc
        if isinstance(exc, MalformedOutput):  # a bad reply is a rejection, not a crash
            return exc
        error, message = called.describe()
        calls, unfit = admit_calls(getattr(exc, "calls", ()), max_bytes=self.max_payload)
        if unfit:
            message += f" ({unfit} model call(s) it reported could not be recorded)"
        return AgentCrash(error, message, calls)

    async def _execute(self, req: _Request) -> None:
        tool = req.tool
        assert tool is not None and req.reply is not None
        called = await call(
            tool,
            req.args,
            limit=tool.timeout_s,
            grace=self.cancel_grace_s,
            abandoned=self.abandoned,
            name=f"telic-tool-{tool.name}",
        )
        if called.status == "timeout":
            left = " (it ignored its cancellation and was abandoned)" if called.abandoned else ""
            outcome = ToolOutcome(
                "timeout",
                error="ToolTimeout",
                message=f"{tool.name} took longer than {tool.timeout_s:g} s{left}",
            )
        elif called.status == "raised":
            error, message = called.describe()
            outcome = ToolOutcome("failed", error=error, message=message)
        else:
            # what is recorded (and observed) is the result's JSON, e.g. a tuple as a list
            try:
                result = check_value(
                    called.value, what="tool.completed", max_bytes=self.max_payload - _ENVELOPE
                )
                outcome = ToolOutcome("completed", result)
            except NotCanonical as exc:
                outcome = ToolOutcome("failed", error="Unserialisable", message=str(exc))
            except PayloadTooLarge as exc:
                outcome = ToolOutcome("failed", error="PayloadTooLarge", message=str(exc))
        _settle(req.reply, outcome)
        if outcome.status != "completed" and req.crash_on_failure:
            raise AgentCrash(outcome.error, outcome.message)

    # -- the kernel's side ---------------------------------------------------------------

    def propose(self, view: View) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Request("propose", fut, view=view))
        return fut

    def ask(self, view: View) -> object:
        """Ask the mind for a proposal: its answer at once (the fast path, see the module),
        or a future of it (what :meth:`propose` returns)."""
        now = self._now
        if now is None or self._busy or self._inbox:
            return self.propose(view)  # not idle: the inbox keeps the order
        try:
            value = contextvars.copy_context().run(now, view)
        except BaseException as exc:  # synchronous user code: see guard.attempt
            if isinstance(exc, asyncio.CancelledError):  # what a task of it would report
                exc = asyncio.CancelledError("the call raised CancelledError")
            answer = self._failure(Called("raised", exc=exc))
            if isinstance(answer, AgentCrash):
                self._put(_Request("crash", None, pending=answer))
            return answer
        if isinstance(value, Proposal) or not inspect.isawaitable(value):
            return admit(value, self.name, max_bytes=self.max_payload)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Request("propose", fut, view=view, pending=value))
        return fut

    def execute(
        self, tool: Tool, args: dict[str, Any], *, crash_on_failure: bool
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Request("execute", fut, tool=tool, args=args, crash_on_failure=crash_on_failure))
        return fut


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if fut.done():
        return
    if isinstance(value, BaseException):
        fut.set_exception(value)
    else:
        fut.set_result(value)
