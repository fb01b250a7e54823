"""The supervisor's public face: lifecycle (start, stop, wait) and child management."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterable

from telic.clock import Clock
from telic.kinds import AgentRestarted
from telic.supervision._core import Child, EventSink, SupervisorCore, SupervisorStart, nested
from telic.supervision._exits import retrieve
from telic.supervision.spec import (
    AutoShutdown,
    ChildCount,
    ChildInfo,
    ChildSpec,
    RestartType,
    Shutdown,
    Strategy,
)

__all__ = ["Supervisor"]

_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
_AUTO_SHUTDOWNS = ("never", "any_significant", "all_significant")


class Supervisor(SupervisorCore):
    """An OTP supervisor for asyncio tasks. See :mod:`telic.supervision`."""

    def __init__(
        self,
        name: str,
        children: Iterable[ChildSpec | Supervisor] = (),
        *,
        strategy: Strategy = "one_for_one",
        intensity: int = 1,
        period: float = 5.0,
        auto_shutdown: AutoShutdown = "never",
        clock: Clock | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        if strategy not in _STRATEGIES:
            raise ValueError(f"supervisor {name!r}: unknown strategy {strategy!r}")
        if auto_shutdown not in _AUTO_SHUTDOWNS:
            raise ValueError(f"supervisor {name!r}: unknown auto_shutdown {auto_shutdown!r}")
        if intensity < 0:
            raise ValueError(f"supervisor {name!r}: intensity must be >= 0, not {intensity}")
        if not (period > 0 and math.isfinite(period)):
            raise ValueError(f"supervisor {name!r}: period must be > 0 seconds, not {period}")
        specs = tuple(_as_spec(c) for c in children)
        if strategy == "simple_one_for_one" and specs:
            raise ValueError(
                f"supervisor {name!r}: a simple_one_for_one pool starts empty; "
                "add children with start_child"
            )
        if dupes := sorted(i for i, n in Counter(s.id for s in specs).items() if n > 1):
            raise ValueError(f"supervisor {name!r}: duplicate child ids {dupes}")
        super().__init__(name, specs, strategy, intensity, period, auto_shutdown, clock, on_event)

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} {self.strategy} {self._state}>"

    @property
    def running(self) -> bool:
        return self._state == "running"

    def as_child(
        self,
        id: str | None = None,
        *,
        restart: RestartType = "permanent",
        shutdown: Shutdown = "infinity",
        significant: bool = False,
    ) -> ChildSpec:
        """This supervisor as a child of another; ``id`` defaults to its name."""
        start = SupervisorStart(self)
        return ChildSpec(id or self.name, start, restart, shutdown, significant)

    # -- the owner's side: start, stop, wait --------------------------------------------

    async def start(self) -> None:
        """Start the children in spec order, then supervise them from a task of our own.

        If a child's ``start`` raises, the children already started are stopped (in reverse
        order) and the exception propagates.
        """
        if self._parent is not None:
            raise RuntimeError(
                f"supervisor {self.name!r} is a child of {self._parent.name!r}, which starts it"
            )
        if self._state == "running":
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        await self._boot(None)
        if self._fault is not None:
            await self._shutdown("shutdown", failed=True)
            raise self._fault
        task = asyncio.get_running_loop().create_task(self._serve(), name=self.name)
        task.add_done_callback(retrieve)  # wait() and __aexit__ re-raise the failure
        self._task = task

    async def stop(self, reason: str = "shutdown") -> None:
        """Stop every child in reverse start order (each with its grace period), then
        the supervisor. Idempotent; does not raise the supervisor's failure (``wait`` does)."""
        if self._parent is not None:
            raise RuntimeError(
                f"supervisor {self.name!r} is a child of {self._parent.name!r}; "
                "stop it with the parent's terminate_child"
            )
        task = self._task
        if task is None or task.done():
            return
        self._stop_reason = reason
        self._inbox.wake()
        await asyncio.wait((task,))

    async def wait(self) -> None:
        """Return when the supervisor has stopped; raise SupervisionError if it gave up
        (or the exception of its ``on_event``, see :mod:`telic.supervision`)."""
        task = self._task
        if task is None:
            raise RuntimeError(f"supervisor {self.name!r} was not started with start()")
        await asyncio.wait((task,))
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        await self.stop()
        task = self._task
        if exc_type is None and task is not None and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error

    # -- children, from outside ---------------------------------------------------------

    async def start_child(self, spec: ChildSpec | Supervisor) -> None:
        """Add a child and start it (after the others: it is stopped first)."""
        if isinstance(spec, Supervisor):
            spec = spec.as_child()
        if isinstance(spec.start, SupervisorStart) or self._lock.locked():
            async with self._lock:
                self._require_new(spec)
                child = Child(self._inbox, spec)
                await self._spawn(child)
                self._children[spec.id] = child
            return
        # A worker: starting it never awaits, so nothing can interleave and the lock is not
        # needed. This is the path a pool takes 100,000 times; keep it short.
        if self._state != "running" or spec.id in self._children:
            self._require_new(spec)
        child = Child(self._inbox, spec)
        task = asyncio.get_running_loop().create_task(spec.start(), name=spec.id)
        task.add_done_callback(child)
        child.task = task
        self._children[spec.id] = child

    def _require_new(self, spec: ChildSpec) -> None:
        self._require_running()
        if spec.id in self._children:
            raise ValueError(f"supervisor {self.name!r} already has a child {spec.id!r}")

    async def terminate_child(self, id: str) -> None:
        """Stop a child (grace, then cancel); it is not restarted. Its spec stays unless it
        is temporary or in a simple_one_for_one pool."""
        async with self._lock:
            child = self._get(id)
            await self._stop([child], "shutdown")
            if child.spec.restart == "temporary" or self.strategy == "simple_one_for_one":
                del self._children[id]

    async def restart_child(self, id: str) -> None:
        """Start again a child that was stopped by terminate_child (or ended for good)."""
        self._refuse_in_pool("restart_child")
        async with self._lock:
            self._require_running()
            child = self._get(id)
            if child.task is not None:
                raise ValueError(f"child {id!r} of {self.name!r} is running")
            await self._spawn(child)
            child.restarts += 1
            self._emit(
                AgentRestarted(
                    agent=id, supervisor=self.name, attempt=child.restarts, reason="restart_child"
                )
            )

    async def delete_child(self, id: str) -> None:
        """Forget the spec of a child that is not running."""
        self._refuse_in_pool("delete_child")
        async with self._lock:
            if self._get(id).task is not None:
                raise ValueError(f"child {id!r} of {self.name!r} is running; terminate it first")
            del self._children[id]

    def kill(self, id: str, reason: str = "killed") -> bool:
        """Crash a running child from outside (OTP's ``exit(Pid, kill)``): it is cancelled,
        its exit is abnormal with ``reason``, and it is restarted by its restart type and the
        strategy. Returns False if the child was not running."""
        child = self._get(id)
        task = child.task
        if task is None or task.done() or child.stopping:
            return False
        child.kill_reason = reason
        task.cancel(reason)
        return True

    def has_child(self, id: str) -> bool:
        """Whether ``id`` is a child of this supervisor (running, or about to be restarted);
        False once it was terminated for good, e.g. a temporary child stopped by a sibling's
        restart under one_for_all or rest_for_one."""
        return id in self._children

    def which_children(self) -> list[ChildInfo]:
        """The children in start order."""
        return [
            ChildInfo(
                id=c.spec.id,
                running=c.task is not None and not c.task.done(),
                restarts=c.restarts,
                restart=c.spec.restart,
                kind="worker" if nested(c.spec) is None else "supervisor",
            )
            for c in self._children.values()
        ]

    def count_children(self) -> ChildCount:
        sups = sum(nested(c.spec) is not None for c in self._children.values())
        active = sum(c.task is not None and not c.task.done() for c in self._children.values())
        n = len(self._children)
        return ChildCount(specs=n, active=active, supervisors=sups, workers=n - sups)

    # -- small helpers ------------------------------------------------------------------

    def _get(self, id: str) -> Child:
        try:
            return self._children[id]
        except KeyError:
            ids = list(self._children)
            known = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            raise KeyError(
                f"supervisor {self.name!r} has no child {id!r} (has: {known or 'none'})"
            ) from None

    def _refuse_in_pool(self, what: str) -> None:
        if self.strategy == "simple_one_for_one":
            raise ValueError(
                f"{what} does not apply to the simple_one_for_one pool {self.name!r}; "
                "use start_child and terminate_child"
            )


def _as_spec(child: ChildSpec | Supervisor) -> ChildSpec:
    return child.as_child() if isinstance(child, Supervisor) else child
