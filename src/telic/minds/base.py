"""The Mind protocol, the read-only view a mind gets, and the two deterministic minds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from telic.errors import ScriptExhausted, ScriptUnused
from telic.kinds import ModelCalled, ModelFailed
from telic.proposal import Proposal
from telic.state import Observation, RunState

__all__ = [
    "CallLog",
    "FunctionMind",
    "Mind",
    "ScriptedMind",
    "Step",
    "SyncMind",
    "ToolInfo",
    "View",
]


@runtime_checkable
class CallLog(Protocol):
    """The kernel's side of one agent's model calls in a tick (:mod:`telic.kernel.calls`).

    A model mind writes each call's record through it as the call completes, before the
    tick commits (write-ahead: a crash mid-tick loses no answered call), and takes the
    tokens it may ask for from the run's token budget, which the tick's agents share.
    """

    def record(self, payload: ModelCalled | ModelFailed) -> None:
        """Write ``payload`` to the ledger now (durably)."""
        ...

    def reserve(self, tokens: int) -> int:
        """Hold up to ``tokens`` of the token budget left; returns what was granted (all of
        it when the run has no token budget)."""
        ...

    def release(self, tokens: int) -> None:
        """Give back a reservation (the call's real use is in the ledger by now)."""
        ...


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A tool as a mind sees it."""

    name: str
    description: str
    schema: Mapping[str, Any]
    high_impact: bool = False


@dataclass(frozen=True, slots=True)
class View:
    """What a mind may read: a copy of the run's state, never the state itself.

    ``state`` is the folded run state, typed (:class:`telic.state.RunState`, read by
    attribute: ``view.state.agents["a"].status``) and read-only; the properties are shortcuts
    into it for this agent.
    """

    agent: str
    role: str
    tick: int
    goal: str
    state: RunState
    tools: Sequence[ToolInfo] = ()
    question: str | None = None
    """For an explorer: the question it was spawned on."""
    recorded: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """Model responses already recorded for this agent in this tick, by request digest: a
    tick resumed after a crash reuses them instead of asking again."""
    calls: CallLog | None = None
    """Where a model mind writes its calls as they complete; None outside a kernel (the
    calls then travel with the proposal, in ``model_calls``)."""

    @property
    def observations(self) -> tuple[Observation, ...]:
        """This agent's recent observations: tool results, failures, rejections, messages."""
        agent = self.state.agents.get(self.agent)
        return () if agent is None else agent.observations

    @property
    def memory(self) -> Mapping[str, Any]:
        return self.state.memory.get(self.agent, {})

    @property
    def beliefs(self) -> Mapping[str, Any]:
        """The value of each belief of the run, by key."""
        return {k: v["value"] for k, v in self.state.beliefs.json.items()}

    @property
    def plan(self) -> Mapping[str, Any]:
        """The value of each item of the run's plan, by key."""
        return {k: v["value"] for k, v in self.state.plan.json.items()}

    @property
    def budget_left(self) -> dict[str, float]:
        return self.state.budget_left()

    def recall(self, request_digest: str) -> Any | None:
        return self.recorded.get(request_digest)


@runtime_checkable
class Mind(Protocol):
    """Given a read-only view, propose the next action. Never touches state."""

    async def propose(self, view: View) -> Proposal: ...


@runtime_checkable
class SyncMind(Mind, Protocol):
    """A mind that can answer without awaiting anything: the kernel asks it in its own task
    when the agent's process is idle (no task, no hand-off; see :mod:`telic.kernel.process`).

    ``propose_now(view)`` is ``propose``'s synchronous part: what ``propose`` would return,
    or an awaitable that ``propose`` would await for it (that part then runs in a task of its
    own, as ``propose`` does). It must raise what ``propose`` would raise.
    """

    def propose_now(self, view: View) -> Proposal | Awaitable[Proposal]: ...


Step = Proposal | Callable[[View], Proposal] | BaseException
"""A scripted step: a proposal, a function of the view, or an error to raise."""


class ScriptedMind:
    """A strict scripted mind: fails on a call beyond its script and on unused steps.

    ``repeat_last=True`` makes it answer with its last step once the script is used up (for
    agents that idle), in which case no step is ever unused.
    """

    def __init__(
        self, steps: Sequence[Step], *, name: str = "scripted", repeat_last: bool = False
    ) -> None:
        self.name = name
        self._steps = list(steps)
        self._calls = 0
        self._repeat_last = repeat_last

    @property
    def calls(self) -> int:
        return self._calls

    async def propose(self, view: View) -> Proposal:
        return self.propose_now(view)

    def propose_now(self, view: View) -> Proposal:
        """The next step's answer (synchronous: see :class:`SyncMind`)."""
        if self._calls >= len(self._steps):
            if not (self._repeat_last and self._steps):
                raise ScriptExhausted(self.name, len(self._steps))
            step = self._steps[-1]
        else:
            step = self._steps[self._calls]
        self._calls += 1
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Proposal):
            return step
        return step(view)

    def assert_done(self) -> None:
        """Raise :class:`ScriptUnused` if steps are left over."""
        left = len(self._steps) - self._calls
        if left > 0:
            raise ScriptUnused(self.name, left)


class FunctionMind:
    """A mind that is a function (sync or async) of the view."""

    def __init__(
        self, fn: Callable[[View], Proposal | Awaitable[Proposal]], *, name: str | None = None
    ) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")

    async def propose(self, view: View) -> Proposal:
        result = self.propose_now(view)
        if isinstance(result, Proposal):
            return result
        return await result

    def propose_now(self, view: View) -> Proposal | Awaitable[Proposal]:
        """The function's answer, or what is left to await of it (see :class:`SyncMind`)."""
        result = self.fn(view)
        if isinstance(result, Proposal):
            return result
        return _awaited(result)


async def _awaited(result: Awaitable[Proposal]) -> Proposal:
    return await result
