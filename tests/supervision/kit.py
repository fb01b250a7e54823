"""Test helpers: scripted children, an event recorder, and a virtual-time runner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from telic.clock import VirtualClock
from telic.kinds import AgentFailed, AgentRestarted, AgentTerminated, Payload, SupervisorEscalated
from telic.supervision import ChildSpec

T = TypeVar("T")

SETTLE = 0.01
"""Virtual seconds that let every ready task (and every kill retry) run to quiescence."""


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run ``scenario`` on a fresh virtual clock; fail if it leaves a task behind."""

    async def main() -> T:
        result = await scenario()
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"orphan tasks: {leftover}"
        return result

    return VirtualClock().run(main())


async def settle() -> None:
    await asyncio.sleep(SETTLE)


def now() -> float:
    return asyncio.get_running_loop().time()


class Recorder:
    """An ``on_event`` sink that keeps every payload; ``lines`` gives a compact view."""

    def __init__(self) -> None:
        self.events: list[Payload] = []

    def __call__(self, event: Payload) -> None:
        self.events.append(event)

    def lines(self) -> list[str]:
        return [_line(e) for e in self.events]

    def take(self) -> list[str]:
        """The lines so far, then forget them."""
        out = self.lines()
        self.events.clear()
        return out


def _line(e: Payload) -> str:
    if isinstance(e, AgentFailed):
        return f"failed {e.agent} {e.error}"
    if isinstance(e, AgentTerminated):
        return f"terminated {e.agent} {e.reason}"
    if isinstance(e, AgentRestarted):
        return f"restarted {e.agent} #{e.attempt}"
    if isinstance(e, SupervisorEscalated):
        return f"escalated {e.supervisor} {e.restarts}"
    raise AssertionError(f"unexpected event {e!r}")


class Puppets:
    """Children that start, then wait for a command: crash, finish (return normally).

    ``log`` records ``start <id>`` when a body begins and ``stop <id>`` when it is cancelled.
    """

    def __init__(self) -> None:
        self.log: list[str] = []
        self._commands: dict[str, asyncio.Future[str]] = {}

    def spec(self, id: str, **options: Any) -> ChildSpec:
        async def body() -> None:
            self.log.append(f"start {id}")
            command = asyncio.get_running_loop().create_future()
            self._commands[id] = command
            try:
                what = await command
            except asyncio.CancelledError:
                self.log.append(f"stop {id}")
                raise
            if what == "crash":
                raise RuntimeError(f"{id} crashed")

        return ChildSpec(id, body, **options)

    def crash(self, id: str) -> None:
        self._commands[id].set_result("crash")

    def finish(self, id: str) -> None:
        self._commands[id].set_result("finish")

    def take(self) -> list[str]:
        out = list(self.log)
        self.log.clear()
        return out


async def forever() -> None:
    await asyncio.Event().wait()


def crashing_every(
    seconds: float, error: type[Exception] = RuntimeError
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A start function whose body raises ``error`` after ``seconds``."""

    async def body() -> None:
        await asyncio.sleep(seconds)
        raise error(f"failed after {seconds:g} s")

    return body
