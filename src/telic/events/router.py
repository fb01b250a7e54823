"""Routing and fan-out: which live subscriptions get a published transition, and how.

Two kinds of live subscription are kept apart. *Dense* ones take every kind (``*``,
``transition.committed``): a batch goes to each with one ``deque.extend``. The others are
indexed by kind (and run), so publishing never looks at a subscription that does not want the
transition. Nothing here awaits or calls user code; a disconnect is handed back to the hub.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, cast

from telic.events.event import Event
from telic.events.patterns import Routes
from telic.events.state import Dense, SubscriptionState
from telic.kinds import CATALOGUE
from telic.transition import Transition

__all__ = ["COMMITTED", "Router", "dense_mode", "make_event"]

COMMITTED: Final = "transition.committed"
_KINDS: Final = frozenset(CATALOGUE)

make_event: Final = cast(
    Callable[[type[Event], tuple[str, Transition]], Event],
    tuple.__new__,  # pyright: ignore[reportUnknownMemberType]
)
"""``make_event(Event, (type, transition))`` builds an Event in C, without the Python-level
``__new__`` a NamedTuple has: it is called once per delivered event."""

_Targets = tuple[tuple[SubscriptionState, str], ...]


def dense_mode(routes: Routes) -> Dense | None:
    """Whether a route table takes every kind, each as itself or each as
    ``transition.committed``: such subscriptions are delivered a whole batch at once."""
    if len(routes) != len(_KINDS):
        return None
    if all(k == v for k, v in routes.items()):
        return "own"
    if all(v == COMMITTED for v in routes.values()):
        return "committed"
    return None


class Router:
    """The live subscriptions, indexed for publishing."""

    def __init__(self, disconnect: Callable[[SubscriptionState], None]) -> None:
        self.disconnect = disconnect
        """Called when a subscription with ``overflow='disconnect'`` overflows."""
        self.any_run: dict[str, _Targets] = {}
        """kind -> subscriptions without a run filter that receive it (and as which type)."""
        self.by_run: dict[str, dict[str, _Targets]] = {}
        self.dense_any: tuple[SubscriptionState, ...] = ()
        """Subscriptions without a run filter that take every kind (delivered by the batch)."""
        self.dense_by_run: dict[str, tuple[SubscriptionState, ...]] = {}

    @property
    def listening(self) -> bool:
        return bool(self.any_run or self.by_run or self.dense_any or self.dense_by_run)

    def attach(self, state: SubscriptionState) -> None:
        """Make ``state`` live: put it where :meth:`fan_out` looks."""
        if state.dense is not None:
            if state.run is None:
                self.dense_any = (*self.dense_any, state)
            else:
                self.dense_by_run[state.run] = (*self.dense_by_run.get(state.run, ()), state)
            return
        table = self.any_run if state.run is None else self.by_run.setdefault(state.run, {})
        for kind, etype in state.routes.items():
            table[kind] = (*table.get(kind, ()), (state, etype))

    def detach(self, state: SubscriptionState) -> None:
        if state.dense is not None:
            if state.run is None:
                self.dense_any = tuple(s for s in self.dense_any if s is not state)
            else:
                left = tuple(s for s in self.dense_by_run.get(state.run, ()) if s is not state)
                if left:
                    self.dense_by_run[state.run] = left
                else:
                    self.dense_by_run.pop(state.run, None)
            return
        table = self.any_run if state.run is None else self.by_run.get(state.run)
        if table is None:
            return
        for kind in state.routes:
            old = table.get(kind)
            if old is None:
                continue
            new = tuple(pair for pair in old if pair[0] is not state)
            if new:
                table[kind] = new
            else:
                del table[kind]
        if state.run is not None and not table:
            del self.by_run[state.run]

    def fan_out(
        self,
        transitions: Sequence[Transition],
        skip: SubscriptionState | None,
        lagged: list[SubscriptionState],
    ) -> list[Event]:
        """Deliver one batch (not to ``skip``); the transitions' own events are returned and
        the subscriptions that began a lag episode are added to ``lagged``."""
        make = make_event
        own = [make(Event, (t.kind, t)) for t in transitions]
        if self.any_run or self.by_run:
            self.fan_out_by_kind(transitions, own, skip, lagged)
        if self.dense_any or self.dense_by_run:
            self.fan_out_dense(transitions, own, skip, lagged)
        return own

    def fan_out_by_kind(
        self,
        transitions: Sequence[Transition],
        own: list[Event],
        skip: SubscriptionState | None,
        lagged: list[SubscriptionState],
    ) -> None:
        """Per transition, the subscriptions whose pattern takes its kind (from the routes)."""
        any_run = self.any_run
        by_run = self.by_run
        make = make_event
        run: str | None = None
        run_table: dict[str, _Targets] | None = None
        for t, own_event in zip(transitions, own, strict=True):
            kind = t.kind
            if t.run != run:
                run = t.run
                run_table = by_run.get(run)
            for targets in (
                any_run.get(kind),
                None if run_table is None else run_table.get(kind),
            ):
                if targets is None:
                    continue
                for state, etype in targets:
                    if state is skip:
                        continue
                    agent = state.agent
                    if agent is not None and agent != t.agent:
                        continue
                    if t.seq < state.floor:
                        continue
                    event = own_event if etype == kind else make(Event, (etype, t))
                    queue = state.queue
                    if len(queue) >= state.maxsize:
                        if not self.overflow(state, 1, lagged):
                            continue
                        queue.popleft()
                    queue.append(event)
                    waiter = state.waiter
                    if waiter is not None:
                        state.waiter = None
                        if not waiter.done():
                            waiter.set_result(None)

    def fan_out_dense(
        self,
        transitions: Sequence[Transition],
        own: list[Event],
        skip: SubscriptionState | None,
        lagged: list[SubscriptionState],
    ) -> None:
        """Subscriptions that take every kind (``*``, ``transition.committed``) get the batch
        with one ``deque.extend`` each, filtered only by what they filter on."""
        first = transitions[0].run if transitions else ""
        single = all(t.run == first for t in transitions)
        committed: list[Event] | None = None
        if single:
            states = (*self.dense_any, *self.dense_by_run.get(first, ()))
        else:
            states = (
                *self.dense_any,
                *(
                    s
                    for r in dict.fromkeys(t.run for t in transitions)
                    for s in self.dense_by_run.get(r, ())
                ),
            )
        for state in states:
            if state is skip:
                continue
            if state.dense == "own":
                events = own
            else:
                if committed is None:
                    make = make_event
                    committed = [make(Event, (COMMITTED, t)) for t in transitions]
                events = committed
            run = state.run
            if run is not None and not single:
                events = [e for e in events if e.transition.run == run]
            agent = state.agent
            if agent is not None:
                events = [e for e in events if e.transition.agent == agent]
            floor = state.floor
            if floor and events and events[0].transition.seq < floor:
                events = [e for e in events if e.transition.seq >= floor]
            if not events:
                continue
            queue = state.queue
            n = len(events)
            over = n - (state.maxsize - len(queue))
            if over > 0:
                if not self.overflow(state, over, lagged):
                    continue
                if n >= state.maxsize:
                    queue.clear()
                    queue.extend(events[n - state.maxsize :])
                else:
                    queue.extend(events)
                    for _ in range(over):
                        queue.popleft()
            else:
                queue.extend(events)
            waiter = state.waiter
            if waiter is not None:
                state.waiter = None
                if not waiter.done():
                    waiter.set_result(None)

    def overflow(
        self, state: SubscriptionState, over: int, lagged: list[SubscriptionState]
    ) -> bool:
        """``over`` events do not fit ``state``'s queue: True if the oldest are to be dropped
        (counted, starting a lag episode if none is on), False if it was disconnected."""
        if not state.drop_oldest:
            self.disconnect(state)
            return False
        state.dropped += over
        if not state.lagging:
            state.lagging = True
            state.episode_start = state.dropped - over
            lagged.append(state)
        return True
