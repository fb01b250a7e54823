"""The machinery of a supervisor: its task, exits, restarts, intensity, stopping.

One child is one asyncio task. The supervisor does not wrap a child's body: the child's record
is the task's done-callback, which queues the exit in the supervisor's inbox; the supervisor's
own task handles exits one at a time, in the order they happened. Everything that changes the
set of children (handling an exit, and the ``*_child`` calls) holds one lock, so events come
out in a deterministic order. The public face is :class:`telic.supervision.Supervisor`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Literal, NoReturn

from telic.clock import Clock
from telic.errors import SupervisionError
from telic.kinds import AgentRestarted, AgentTerminated, Payload, SupervisorEscalated
from telic.supervision._exits import classify, failure, retrieve, terminate
from telic.supervision.spec import AutoShutdown, ChildSpec, Shutdown, Strategy

__all__ = ["Child", "EventSink", "SupervisorCore", "SupervisorStart", "nested"]

EventSink = Callable[[Payload], None]
"""Receives every AgentFailed, AgentTerminated, AgentRestarted and SupervisorEscalated."""

_State = Literal["idle", "running", "stopped", "failed"]


class SupervisorStart:
    """The ``start`` of a supervisor's :class:`ChildSpec` (see ``Supervisor.as_child``).

    A parent recognises it and boots the child supervisor itself, so that a grandchild whose
    start raises fails the parent's start too; called directly, it boots and serves.
    """

    __slots__ = ("supervisor",)

    def __init__(self, supervisor: SupervisorCore) -> None:
        self.supervisor = supervisor

    def __call__(self) -> Coroutine[Any, Any, None]:
        return self.supervisor._run_alone()  # pyright: ignore[reportPrivateUsage]

    def __repr__(self) -> str:
        return f"<start of supervisor {self.supervisor.name!r}>"


def nested(spec: ChildSpec) -> SupervisorCore | None:
    """The supervisor a spec starts, if it starts one."""
    start = spec.start
    return start.supervisor if isinstance(start, SupervisorStart) else None


class _Inbox:
    """Exits waiting for the supervisor's task, and the future that wakes it."""

    __slots__ = ("exits", "waiter")

    def __init__(self) -> None:
        self.exits: deque[tuple[Child, asyncio.Task[None]]] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


class Child:
    """A child's live record; also its task's done-callback (no per-child closure)."""

    __slots__ = ("inbox", "kill_reason", "restarts", "spec", "stopping", "task")

    def __init__(self, inbox: _Inbox, spec: ChildSpec) -> None:
        self.inbox = inbox
        self.spec = spec
        self.task: asyncio.Task[None] | None = None
        self.restarts = 0
        self.kill_reason: str | None = None
        self.stopping = False

    def __call__(self, task: asyncio.Task[None]) -> None:
        # Exits the supervisor caused itself (stopping) are accounted for where it stops them.
        if task is self.task and not self.stopping:
            self.inbox.exits.append((self, task))
            self.inbox.wake()


class _StartFailed(Exception):
    def __init__(self, child: Child, reason: str) -> None:
        self.child = child
        self.reason = reason


class SupervisorCore:
    """State and machinery shared by every supervisor; see :class:`Supervisor`."""

    def __init__(
        self,
        name: str,
        specs: tuple[ChildSpec, ...],
        strategy: Strategy,
        intensity: int,
        period: float,
        auto_shutdown: AutoShutdown,
        clock: Clock | None,
        on_event: EventSink | None,
    ) -> None:
        self.name = name
        self.strategy: Strategy = strategy
        self.intensity = intensity
        self.period = period
        self.auto_shutdown: AutoShutdown = auto_shutdown
        self._specs = specs
        self._given_clock = clock
        self._given_sink = on_event
        self._monotonic: Callable[[], float] = time.monotonic  # set again at every start
        self._sink: EventSink | None = on_event
        self._children: dict[str, Child] = {}
        self._inbox = _Inbox()
        self._restarts: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._state: _State = "idle"
        self._stop_reason: str | None = None
        self._fault: Exception | None = None
        self._task: asyncio.Task[None] | None = None
        self._parent: SupervisorCore | None = None

    # -- the supervisor's task ----------------------------------------------------------

    async def _run_alone(self) -> None:
        await self._boot(None)
        await self._serve()

    async def _boot(self, parent: SupervisorCore | None) -> None:
        if self._state == "running":
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        if parent is not None:
            self._parent = parent
            self._sink = self._given_sink or parent._sink
        self._children = {}
        self._restarts.clear()
        self._inbox.exits.clear()
        self._stop_reason = None
        self._fault = None
        if self._given_clock is not None:
            self._monotonic = self._given_clock.monotonic
        elif parent is not None:
            self._monotonic = parent._monotonic
        else:  # no clock given: the event loop's time, which asyncio's timers follow too
            self._monotonic = asyncio.get_running_loop().time
        self._state = "running"
        for spec in self._specs:
            child = Child(self._inbox, spec)
            try:
                await self._spawn(child)
            except Exception as exc:
                self._emit(failure(spec.id, exc).event)
                await self._shutdown("shutdown", failed=True)
                raise
            except BaseException:
                self._abandon("shutdown")
                self._state = "stopped"
                raise
            self._children[spec.id] = child

    async def _serve(self) -> None:
        try:
            await self._supervise()
        except asyncio.CancelledError:
            await self._shutdown("shutdown", failed=False)
            raise
        except BaseException:
            await self._shutdown("shutdown", failed=True)
            raise
        await self._shutdown(self._stop_reason or "shutdown", failed=False)

    async def _supervise(self) -> None:
        inbox = self._inbox
        while True:
            if self._fault is not None:
                raise self._fault
            if self._stop_reason is not None:
                return
            if not inbox.exits:
                await inbox.wait()
                continue
            child, task = inbox.exits.popleft()
            async with self._lock:
                if child.task is task and not child.stopping:
                    await self._handle_exit(child, task)

    async def _handle_exit(self, child: Child, task: asyncio.Task[None]) -> None:
        spec = child.spec
        ex = classify(spec.id, task, child.kill_reason)
        child.task = None
        child.kill_reason = None
        await self._reap(child)
        self._emit(ex.event)
        if spec.restart == "permanent" or (spec.restart == "transient" and ex.abnormal):
            await self._restart(child, ex.reason)
            return
        if spec.restart == "temporary" or self.strategy == "simple_one_for_one":
            self._children.pop(spec.id, None)
        if spec.significant and self._auto_shutdown_due():
            self._stop_reason = "shutdown"

    def _auto_shutdown_due(self) -> bool:
        if self.auto_shutdown == "any_significant":
            return True
        if self.auto_shutdown == "all_significant":
            return not any(
                c.spec.significant and c.task is not None for c in self._children.values()
            )
        return False

    async def _restart(self, failed: Child, reason: str) -> None:
        while True:
            if not self._add_restart():
                await self._escalate(reason)
            try:
                await self._restart_group(failed, reason)
                return
            except _StartFailed as e:  # a start that raises counts as one more failure
                failed, reason = e.child, e.reason

    async def _restart_group(self, failed: Child, reason: str) -> None:
        group: list[Child] = [failed]
        if self.strategy in ("one_for_all", "rest_for_one"):
            everyone = list(self._children.values())
            if self.strategy == "rest_for_one":
                everyone = everyone[everyone.index(failed) :]
            for c in reversed(everyone):
                if c is not failed and c.task is not None:
                    await self._stop([c], "shutdown")
            group = []
            for c in everyone:
                if c is failed or c.spec.restart != "temporary":
                    group.append(c)
                else:  # OTP: temporary siblings are not brought back
                    del self._children[c.spec.id]
        for c in group:
            try:
                await self._spawn(c)
            except Exception as exc:
                ex = failure(c.spec.id, exc)
                self._emit(ex.event)
                raise _StartFailed(c, f"start failed: {ex.reason}") from exc
            c.restarts += 1
            why = (
                reason if c is failed else f"{self.strategy}: {failed.spec.id!r} exited ({reason})"
            )
            self._emit(
                AgentRestarted(
                    agent=c.spec.id, supervisor=self.name, attempt=c.restarts, reason=why
                )
            )

    def _add_restart(self) -> bool:
        """Record a restart; False if that makes more than ``intensity`` within ``period``."""
        now = self._monotonic()
        times = self._restarts
        times.append(now)
        while now - times[0] > self.period:
            times.popleft()
        return len(times) <= self.intensity

    async def _escalate(self, reason: str) -> NoReturn:
        restarts = len(self._restarts)
        self._emit(
            SupervisorEscalated(
                supervisor=self.name, restarts=restarts, period_s=self.period, reason=reason
            )
        )
        await self._stop_all("shutdown")
        raise SupervisionError(self.name, restarts, self.period)

    # -- starting and stopping children -------------------------------------------------

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        sup = nested(spec)
        if sup is None:
            self._spawn_worker(child)
            return
        await sup._boot(self)
        task = asyncio.get_running_loop().create_task(sup._serve(), name=spec.id)
        task.add_done_callback(child)
        child.task = task

    def _spawn_worker(self, child: Child) -> None:
        spec = child.spec
        task = asyncio.get_running_loop().create_task(spec.start(), name=spec.id)
        task.add_done_callback(child)
        child.task = task

    async def _stop(self, children: list[Child], reason: str) -> None:
        """Stop ``children`` concurrently and report each (in the order given)."""
        live = [(c, c.task) for c in children if c.task is not None]
        # A child that ended before we got to it reports how it really ended.
        exits = [classify(c.spec.id, t, c.kill_reason) if t.done() else None for c, t in live]
        by_shutdown: dict[Shutdown, list[asyncio.Task[None]]] = {}
        for c, t in live:
            c.stopping = True
            by_shutdown.setdefault(c.spec.shutdown, []).append(t)
        try:
            if len(by_shutdown) == 1:
                [(shutdown, tasks)] = by_shutdown.items()
                await terminate(tasks, shutdown)
            elif by_shutdown:
                await asyncio.gather(*(terminate(ts, sd) for sd, ts in by_shutdown.items()))
        finally:
            for c, _ in live:
                c.stopping = False
        for (c, t), ex in zip(live, exits, strict=True):
            c.task = None
            c.kill_reason = None
            await self._reap(c)
            if ex is None:
                retrieve(t)
                self._emit(AgentTerminated(agent=c.spec.id, reason=reason))
            else:
                self._emit(ex.event)

    async def _stop_all(self, reason: str) -> None:
        running = [c for c in reversed(self._children.values()) if c.task is not None]
        if self.strategy == "simple_one_for_one":
            await self._stop(running, reason)  # OTP stops a pool all at once
        else:
            for c in running:
                await self._stop([c], reason)

    async def _reap(self, child: Child) -> None:
        """A nested supervisor whose task ended before it ran cannot have stopped its own
        children; stop them here so that none is left behind."""
        sup = nested(child.spec)
        if sup is not None and sup._state == "running":
            await sup._shutdown("shutdown", failed=False)

    async def _shutdown(self, reason: str, *, failed: bool) -> None:
        try:
            async with self._lock:
                await self._stop_all(reason)
        except asyncio.CancelledError:
            self._abandon(reason)
            raise
        finally:
            self._state = "failed" if failed else "stopped"

    def _abandon(self, reason: str) -> None:
        """Cancelled while stopping: cancel every child now rather than wait for them."""
        for c in reversed(self._children.values()):
            task = c.task
            if task is None:
                continue
            c.task = None
            c.kill_reason = None
            task.cancel()
            task.add_done_callback(retrieve)
            sup = nested(c.spec)
            if sup is not None and sup._state == "running":
                sup._abandon(reason)
                sup._state = "stopped"
            self._emit(AgentTerminated(agent=c.spec.id, reason=reason))

    def _emit(self, event: Payload) -> None:
        if self._sink is None or self._fault is not None:
            return
        try:
            self._sink(event)
        except Exception as exc:  # the sink is broken: fail the supervisor, loudly
            self._fault = exc
            self._inbox.wake()

    def _require_running(self) -> None:
        if self._state != "running":
            raise RuntimeError(f"supervisor {self.name!r} is {self._state}, not running")
