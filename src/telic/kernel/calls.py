"""Model calls written ahead of the tick: nothing answered is paid for twice.

A tick commits once its minds have answered, but a model call is spent when it completes.
So each call's record (``model.called``, or ``model.failed`` for a try that got no usable
answer) is written to the ledger as it completes, through the :class:`TickCalls` of the tick
(the first one commits ``tick.started`` with it). A crash mid-tick then leaves the tick open
with its answered calls in the ledger, and :func:`reentry` lets the resumed run ask the same
tick again (same tick number, same view: the state as the tick started), with the recorded
answers in each agent's ``View.recorded``: a model mind finds its answer by request digest
and asks nothing.

:class:`TickCalls` also holds the token budget the tick's agents share: a mind reserves
what its call may use (prompt and reply), so that concurrent agents cannot each spend the
same remainder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from telic.kernel.batch import Batch
from telic.kernel.view import TickState
from telic.kinds import ModelCalled, ModelFailed
from telic.ledger.base import BaseLedger
from telic.reducer import Fold
from telic.state import RunState

if TYPE_CHECKING:
    from telic.kernel.run import Run

__all__ = ["AgentCalls", "Reentry", "TickCalls", "open_tick", "reentry"]

_OPEN_TICK_KINDS: Final = frozenset(
    {"model.called", "model.failed", "run.resumed", "run.forked", "agent.terminated"}
)
"""What may follow ``tick.started`` in a tick that can be asked again: the minds' calls,
and what ``resume`` and ``fork`` write (a fork inside a tick is asked again as a crash is)."""


@dataclass(frozen=True, slots=True)
class Reentry:
    """An open tick to ask again after a resume."""

    tick: int
    state: TickState
    """The state as the tick started (what its minds saw the first time)."""
    recorded: Mapping[str, Mapping[str, Any]]
    """Answered calls by agent, then by request digest."""


def reentry(run: Run) -> Reentry | None:
    """The open tick of a resumed ``run`` whose minds were being asked when it stopped, or
    None (no open tick, or one that got further: its proposals are in the ledger)."""
    # the live state, read here and never kept: a read-only copy each tick costs more
    return open_tick(run.ledger, run.id, run.fold.live)


def open_tick(ledger: BaseLedger, run_id: str, state: RunState) -> Reentry | None:
    """:func:`reentry` for the run ``run_id`` of ``ledger`` at ``state`` (its head state)."""
    if not state.tick_open:
        return None
    recorded: dict[str, dict[str, Any]] = {}
    seq = state.seq
    while seq > 0:
        t = ledger.get(run_id, seq)
        if t.kind == "tick.started":
            if t.data["tick"] != state.tick:
                return None
            fold = Fold.adopt(ledger.state_at(run_id, seq))
            return Reentry(state.tick, TickState(fold, state.tick), recorded)
        if t.kind not in _OPEN_TICK_KINDS:
            return None
        if t.kind == "model.called" and t.agent is not None:
            recorded.setdefault(t.agent, {}).setdefault(t.data["request_digest"], t.data)
        seq -= 1
    return None


class TickCalls:
    """The tick's side of its minds' model calls (see the module docstring)."""

    def __init__(self, run: Run, batch: Batch, tick: int, state: TickState) -> None:
        self._run = run
        self._batch = batch
        self._tick = tick
        self._state = state
        self._held = 0.0

    def log(self, agent: str) -> AgentCalls:
        """This tick's call log for ``agent`` (what its view carries as ``calls``)."""
        return AgentCalls(self, agent)

    def record(self, agent: str, payload: ModelCalled | ModelFailed) -> None:
        # The minds that have not read their view yet must see the state as the tick
        # started, not the spend written here: make the view's copy now.
        _ = self._state.json
        self._batch.add(payload, tick=self._tick, agent=agent)
        self._run.commit_now(self._batch)  # the mind is waiting: no shared commit

    def reserve(self, tokens: int) -> int:
        live = self._run.fold.live
        limit = live.budget.get("tokens")
        if limit is None:
            return tokens
        left = float(limit) - float(live.spent.tokens) - self._held
        granted = max(0, min(tokens, int(left)))
        self._held += granted
        return granted

    def release(self, tokens: int) -> None:
        self._held = max(0.0, self._held - tokens)


class AgentCalls:
    """One agent's :class:`~telic.minds.CallLog` in one tick."""

    __slots__ = ("_agent", "_tick")

    def __init__(self, tick: TickCalls, agent: str) -> None:
        self._tick = tick
        self._agent = agent

    def record(self, payload: ModelCalled | ModelFailed) -> None:
        self._tick.record(self._agent, payload)

    def reserve(self, tokens: int) -> int:
        return self._tick.reserve(tokens)

    def release(self, tokens: int) -> None:
        self._tick.release(tokens)
