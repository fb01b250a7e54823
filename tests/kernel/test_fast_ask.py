"""The ask fast path: a mind that answers synchronously is asked in the kernel's task while
its process is idle (:meth:`telic.kernel.process.AgentProcess.ask`), and everything it does
ends as it would through the process: the same records, the same hashes, the same crashes,
restarts and timeouts."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pytest

from telic.errors import MalformedOutput
from telic.kernel import AgentSpec
from telic.kernel.intake import Admitted, Refused
from telic.kernel.process import AgentCrash, AgentProcess
from telic.minds.base import FunctionMind, ScriptedMind, Step, SyncMind, View
from telic.proposal import Proposal

from .kit import config, finish, on_virtual_time, play, remember


class _AsyncOnly:
    """The same steps as a :class:`ScriptedMind`, but only ``propose`` (no synchronous
    answer): always asked through the process's inbox, in a task of its own."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self._script = ScriptedMind(steps, repeat_last=True)

    async def propose(self, view: View) -> Proposal:
        return self._script.propose_now(view)


def _played(
    fast: bool,
    scripts: dict[str, list[Step]],
    strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one",
) -> list[tuple[str, str | None, Any]]:
    def mind(steps: list[Step]) -> Any:
        return ScriptedMind(steps, repeat_last=True) if fast else _AsyncOnly(steps)

    cfg = config(
        *(AgentSpec(name, "worker", mind(steps)) for name, steps in scripts.items()),
        strategy=strategy,
    )
    played = play(cfg, max_ticks=8)
    records: list[tuple[str, str | None, Any]] = [
        (t.kind, t.agent, t.data) for t in played.transitions()
    ]
    return [*records, ("head", None, played.result.head_hash if played.result else None)]


SCRIPTS: list[dict[str, list[Step]]] = [
    {"a": [remember("k", 1), remember("k", 2), finish()]},
    {"a": [remember("k", 1), RuntimeError("boom"), remember("k", 2), finish()]},
    {"a": [MalformedOutput("not json"), remember("k", 1), finish()]},
    {"a": [KeyboardInterrupt(), finish()]},
    {"a": [asyncio.CancelledError(), finish()]},
    {"a": [lambda view: {"not": "a proposal"}, finish()]},  # type: ignore[list-item]
    {
        "a": [remember("k", 1), remember("k", 2), remember("k", 3), finish()],
        "b": [remember("k", 1), RuntimeError("boom"), finish()],
        "c": [remember("k", 1), remember("k", 2), finish()],
    },
]


@pytest.mark.parametrize("scripts", SCRIPTS)
@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all"])
def test_the_fast_path_records_what_the_process_path_records(
    scripts: dict[str, list[Step]], strategy: Literal["one_for_one", "one_for_all"]
) -> None:
    fast = _played(True, scripts, strategy)
    slow = _played(False, scripts, strategy)
    assert fast == slow  # every record and the head hash


def _where(asked_in: list[str], answer: Step) -> Step:
    """``answer``, noting the task the mind was asked in (a mind's own task is named
    ``telic-mind-<agent>``; on the fast path it is the kernel's)."""

    def step(view: View) -> Proposal:
        task = asyncio.current_task()
        asked_in.append(
            "own task" if task and task.get_name().startswith("telic-mind-") else "fast"
        )
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, Proposal)
        return answer

    return step


def test_a_crash_on_the_fast_path_restarts_the_agent_which_then_answers_fast_again() -> None:
    asked_in: list[str] = []
    steps = [remember("k", 1), remember("k", 2), RuntimeError("boom"), remember("k", 3), finish()]
    cfg = config(AgentSpec("a", "worker", ScriptedMind([_where(asked_in, s) for s in steps])))
    played = play(cfg)
    failed = played.one("agent.failed", "a")
    assert failed.data["message"] == "RuntimeError: boom"
    assert played.one("agent.restarted", "a").seq == failed.seq + 1
    assert played.result is not None and played.result.status == "completed"
    # only the first tick waits for the process to start (the restarted one is serving by the
    # time the tick that recorded its restart ends)
    assert asked_in == ["own task", "fast", "fast", "fast", "fast"]


def _process(mind: Any) -> AgentProcess:
    return AgentProcess("a", mind, mind_timeout_s=5.0)


def _view() -> View:
    from telic.state import RunState

    return View(agent="a", role="worker", tick=1, goal="g", state=RunState({}))


def _with_process(mind: Any, then: Callable[[AgentProcess, asyncio.Task[None]], Any]) -> Any:
    async def scenario(_clock: Any) -> Any:
        proc = _process(mind)
        body = asyncio.get_running_loop().create_task(proc.body())
        await asyncio.sleep(0)  # the body is waiting for a request: the process is idle
        try:
            return await then(proc, body)
        finally:
            body.cancel()
            await asyncio.gather(body, return_exceptions=True)

    return on_virtual_time(scenario)


def test_an_idle_process_answers_a_synchronous_mind_at_once() -> None:
    mind = FunctionMind(lambda view: remember("k", view.tick))
    assert isinstance(mind, SyncMind)

    async def ask(proc: AgentProcess, body: asyncio.Task[None]) -> object:
        return proc.ask(_view())

    reply = _with_process(mind, ask)
    assert isinstance(reply, Admitted)
    assert reply.made["args"] == {"key": "k", "value": 1}


def test_a_process_not_yet_started_is_asked_through_its_inbox() -> None:
    async def scenario(_clock: Any) -> object:
        proc = _process(FunctionMind(lambda view: finish()))
        got = proc.ask(_view())  # no body is serving: the request waits in the inbox
        assert isinstance(got, asyncio.Future)
        body = asyncio.get_running_loop().create_task(proc.body())
        try:
            return await got
        finally:
            body.cancel()
            await asyncio.gather(body, return_exceptions=True)

    assert isinstance(on_virtual_time(scenario), Admitted)


def test_a_synchronous_mind_that_raises_crashes_its_process() -> None:
    def boom(view: View) -> Proposal:
        raise RuntimeError("boom")

    async def ask(proc: AgentProcess, body: asyncio.Task[None]) -> tuple[object, BaseException]:
        reply = proc.ask(_view())
        with pytest.raises(AgentCrash) as crashed:
            await body  # the process raises the crash, for its supervisor
        return reply, crashed.value

    reply, crash = _with_process(FunctionMind(boom), ask)
    assert isinstance(reply, AgentCrash)
    assert (reply.error, reply.message) == ("RuntimeError", "boom")
    assert crash is reply


def test_a_malformed_reply_on_the_fast_path_is_a_rejection_not_a_crash() -> None:
    def bad(view: View) -> Proposal:
        raise MalformedOutput("not json")

    async def ask(proc: AgentProcess, body: asyncio.Task[None]) -> tuple[object, bool]:
        reply = proc.ask(_view())
        await asyncio.sleep(0)
        return reply, body.done()

    reply, ended = _with_process(FunctionMind(bad), ask)
    assert isinstance(reply, MalformedOutput)
    assert not ended


def test_something_that_is_not_a_proposal_is_refused_on_the_fast_path() -> None:
    mind = ScriptedMind([lambda view: "no"], name="s")  # type: ignore[list-item]

    async def ask(proc: AgentProcess, body: asyncio.Task[None]) -> object:
        return proc.ask(_view())

    reply = _with_process(mind, ask)
    assert isinstance(reply, Refused)
    assert "not a Proposal" in reply.reason


_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="kernel")


def test_a_synchronous_mind_runs_in_a_context_of_its_own() -> None:
    def sets(view: View) -> Proposal:
        _SEEN.set("mind")
        return finish()

    async def ask(proc: AgentProcess, body: asyncio.Task[None]) -> str:
        proc.ask(_view())
        return _SEEN.get()

    assert _with_process(FunctionMind(sets), ask) == "kernel"


def test_a_busy_process_queues_the_next_question_behind_its_request() -> None:
    gate = asyncio.Event()

    async def slow(view: View) -> Proposal:
        await gate.wait()
        return finish()

    async def ask(proc: AgentProcess, body: asyncio.Task[None]) -> list[object]:
        first = proc.ask(_view())  # an awaitable: the process serves it in a task
        second = proc.ask(_view())  # the process is busy: queued, never run beside it
        assert isinstance(first, asyncio.Future) and isinstance(second, asyncio.Future)
        await asyncio.sleep(0)
        assert not second.done()
        gate.set()
        return [await first, await second]

    replies = _with_process(FunctionMind(slow), ask)
    assert all(isinstance(r, Admitted) for r in replies)
