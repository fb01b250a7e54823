"""An agent process: one supervised asyncio task that thinks and acts for one agent.

The kernel talks to a process only through its inbox: "propose" (ask the mind) and "execute"
(run a tool under its timeout). The process replies first, then, on a failure, crashes, so
that its supervisor restarts it; the inbox belongs to the kernel and survives restarts, and
the state a restarted agent sees is rebuilt from the ledger at the next tick.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from telic.canonical import decode, encode
from telic.errors import MalformedOutput, NotCanonical
from telic.kinds import ModelCalled
from telic.minds.base import Mind, View
from telic.proposal import Proposal
from telic.tools import Tool

__all__ = ["AgentCrash", "AgentProcess", "ToolOutcome"]


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
    kind: Literal["propose", "execute"]
    reply: asyncio.Future[Any]
    view: View | None = None
    tool: Tool | None = None
    args: dict[str, Any] = field(default_factory=dict[str, Any])
    crash_on_failure: bool = True


class AgentProcess:
    """The body the supervisor runs for one agent, and the kernel's handle on it.

    The inbox is a plain list and one waiter future, not an ``asyncio.Queue``: an idle agent
    is only its task, this object and that future (the kernel never has more than a request
    or two in flight for one agent).
    """

    __slots__ = ("_inbox", "_waiter", "mind", "mind_timeout_s", "name")

    def __init__(self, name: str, mind: Mind, *, mind_timeout_s: float) -> None:
        self.name = name
        self.mind = mind
        self.mind_timeout_s = mind_timeout_s
        self._inbox: list[_Request] = []
        self._waiter: asyncio.Future[None] | None = None

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

    async def body(self) -> None:
        """Serve the inbox until cancelled; crash (raise) on a mind or tool failure."""
        while True:
            req = await self._next()
            if req.reply.cancelled():
                continue
            if req.kind == "propose":
                await self._propose(req)
            else:
                await self._execute(req)

    async def _propose(self, req: _Request) -> None:
        assert req.view is not None
        try:
            # A timeout scope, not wait_for: the mind runs in this task, not in a new one.
            async with asyncio.timeout(self.mind_timeout_s):
                proposal = await self.mind.propose(req.view)
        except MalformedOutput as exc:  # a bad reply is a rejection, not a crash
            _settle(req.reply, exc)
            return
        except TimeoutError:
            crash = AgentCrash(
                "MindTimeout", f"the mind did not answer within {self.mind_timeout_s:g} s"
            )
            _settle(req.reply, crash)
            raise crash from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            calls: tuple[ModelCalled, ...] = tuple(getattr(exc, "calls", ()))
            crash = AgentCrash(type(exc).__name__, str(exc) or repr(exc), calls)
            _settle(req.reply, crash)
            raise crash from exc
        if not isinstance(proposal, Proposal):  # pyright: ignore[reportUnnecessaryIsInstance]
            _settle(
                req.reply,
                MalformedOutput(f"the mind returned {type(proposal).__name__}, not a Proposal"),
            )
            return
        _settle(req.reply, proposal)

    async def _execute(self, req: _Request) -> None:
        tool = req.tool
        assert tool is not None
        try:
            async with asyncio.timeout(tool.timeout_s):
                result = await tool(req.args)
            # what is recorded (and observed) is the result's JSON, e.g. a tuple as a list
            outcome = ToolOutcome("completed", decode(encode(result)))
        except TimeoutError:
            outcome = ToolOutcome(
                "timeout",
                error="ToolTimeout",
                message=f"{tool.name} took longer than {tool.timeout_s:g} s",
            )
        except NotCanonical as exc:
            outcome = ToolOutcome("failed", error="Unserialisable", message=str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = ToolOutcome("failed", error=type(exc).__name__, message=str(exc) or repr(exc))
        _settle(req.reply, outcome)
        if outcome.status != "completed" and req.crash_on_failure:
            raise AgentCrash(outcome.error, outcome.message)

    # -- the kernel's side ---------------------------------------------------------------

    def propose(self, view: View) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Request("propose", fut, view=view))
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
