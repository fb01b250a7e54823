"""The kernel's own thread: the runs a server drives tick on an event loop of their own, so
nothing the HTTP side does (a hundred SSE clients, a slow request) delays a tick.

The HTTP loop (uvicorn's) serves requests and streams; the kernel loop runs the
:class:`~telic.serve.host.Host`'s runs. They meet in two places only: routes hand operations
to the kernel loop with :meth:`KernelLoop.call` (start, stop, resume), and the kernel hands
each committed batch to the HTTP loop with :meth:`KernelLoop.publisher` (one
``call_soon_threadsafe`` per batch, in order; the follower fans it out there).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from telic.transition import Transition

__all__ = ["KernelLoop"]

T = TypeVar("T")


class KernelLoop:
    """A thread running an event loop with one task group that owns every run's task."""

    def __init__(self, name: str = "telic-kernel") -> None:
        self._name = name
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group: asyncio.TaskGroup | None = None
        self._stop: asyncio.Future[None] | None = None
        self._error: BaseException | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the kernel loop is not started"
        return self._loop

    @property
    def group(self) -> asyncio.TaskGroup:
        assert self._group is not None, "the kernel loop is not started"
        return self._group

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by stop()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        async with asyncio.TaskGroup() as group:
            self._group = group
            self._ready.set()
            await self._stop
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the kernel loop and wait for it from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def publisher(
        self, deliver: Callable[[Sequence[Transition]], None]
    ) -> Callable[[Sequence[Transition]], None]:
        """A publish hook for the kernel: ``deliver`` runs on the loop that called this."""
        home = asyncio.get_running_loop()
        home_thread = threading.get_ident()

        def publish(transitions: Sequence[Transition]) -> None:
            if threading.get_ident() == home_thread:
                deliver(transitions)
            else:
                home.call_soon_threadsafe(deliver, tuple(transitions))

        return publish

    async def stop(self) -> None:
        """Cancel every run's task, close the loop, join the thread."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():

            def finish() -> None:
                if self._stop is not None and not self._stop.done():
                    self._stop.set_result(None)

            self._loop.call_soon_threadsafe(finish)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        if self._error is not None:
            raise self._error
