"""The engine of the event kernel: fan-out, catch-up, TTL timer and the system record.

Everything here runs on the event loop's thread and holds no lock: ``publish`` only appends
to bounded queues and completes futures, so no user code runs while the hub is mid-update
(processors excepted; they are called between deliveries and must be quick).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Final, cast

from telic.clock import Clock
from telic.errors import (
    BadSubscription,
    BadTTL,
    EventKernelClosed,
    RunExists,
    RunNotFound,
    SequenceConflict,
    SequenceError,
)
from telic.events.catalogue import SYSTEM_RUN
from telic.events.event import Event
from telic.events.patterns import Routes, compile_pattern
from telic.events.processors import EventProcessor
from telic.events.state import Closing, Dense, SubscriptionState
from telic.kinds import (
    CATALOGUE,
    Payload,
    SubscriberLagged,
    SubscriptionCreated,
    SubscriptionEnded,
    SubscriptionExpired,
)
from telic.ledger.base import Ledger
from telic.transition import Transition, draft

__all__ = ["MAX_QUEUE", "MAX_TTL", "PAGE", "Hub"]

log = logging.getLogger("telic.events")

MAX_TTL: Final = 7 * 24 * 3600.0
"""The longest TTL accepted, in seconds (a week); longer ones are almost surely a unit error."""
MAX_QUEUE: Final = 1 << 20
PAGE: Final = 256
"""Transitions read from the ledger per catch-up step."""
_EPSILON: Final = 1e-6
"""Deadlines this close to now count as due (float rounding of loop timers)."""

_KINDS: Final = frozenset(CATALOGUE)
COMMITTED: Final = "transition.committed"


_make: Final = cast(
    Callable[[type[Event], tuple[str, Transition]], Event],
    tuple.__new__,  # pyright: ignore[reportUnknownMemberType]
)
"""``_make(Event, (type, transition))`` builds an Event in C, without the Python-level
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


def check_ttl(ttl: object) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise BadTTL(ttl, "it must be a number of seconds")  # type: ignore[arg-type]
    value = float(ttl)
    if math.isnan(value) or value <= 0:
        raise BadTTL(value, "it must be positive")
    if value > MAX_TTL:
        raise BadTTL(value, f"it must be at most {MAX_TTL:g} s (a week); omit it for none")
    return value


class Hub:
    """The state and the work of one :class:`~telic.events.EventKernel`."""

    def __init__(self, ledger: Ledger, clock: Clock, processors: Iterable[EventProcessor]) -> None:
        self.ledger = ledger
        self.clock = clock
        self.processors: tuple[EventProcessor, ...] = tuple(processors)
        self.subs: dict[str, SubscriptionState] = {}
        self.any_run: dict[str, _Targets] = {}
        """kind -> subscriptions without a run filter that receive it (and as which type)."""
        self.by_run: dict[str, dict[str, _Targets]] = {}
        self.dense_any: tuple[SubscriptionState, ...] = ()
        """Subscriptions without a run filter that take every kind (delivered by the batch)."""
        self.dense_by_run: dict[str, tuple[SubscriptionState, ...]] = {}
        self.publishing = False
        self.backlog: deque[tuple[Sequence[Transition], SubscriptionState | None]] = deque()
        self.system_ready = False
        self.closed = False
        self.heap: list[tuple[float, int, str]] = []
        self.heap_order = itertools.count()
        self.timer: asyncio.Task[None] | None = None
        self.timer_wake: asyncio.Event | None = None
        self.timer_target = math.inf

    # -- subscribing ---------------------------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        *,
        run: object,
        agent: object,
        from_seq: object,
        ttl: object,
        maxsize: object,
        overflow: object,
    ) -> SubscriptionState:
        # Arguments are typed ``object`` here because they are checked here: the public
        # signature is EventKernel.subscribe's.
        if self.closed:
            raise EventKernelClosed()
        routes = compile_pattern(pattern)
        ttl = check_ttl(ttl)
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise BadSubscription(f"maxsize must be an int, not {maxsize!r}")
        if not 1 <= maxsize <= MAX_QUEUE:
            raise BadSubscription(f"maxsize must be in 1..{MAX_QUEUE}, not {maxsize}")
        if overflow not in ("drop_oldest", "disconnect"):
            raise BadSubscription(
                f"overflow must be 'drop_oldest' or 'disconnect', not {overflow!r}"
            )
        if run is not None:
            if not isinstance(run, str):
                raise BadSubscription(f"run must be a run id (str), not {run!r}")
            self.ledger.run(run)  # RunNotFound
        if agent is not None and not isinstance(agent, str):
            raise BadSubscription(f"agent must be an agent name (str), not {agent!r}")
        if from_seq is not None:
            if run is None:
                raise BadSubscription("from_seq needs run=: catch-up reads one run's ledger")
            if isinstance(from_seq, bool) or not isinstance(from_seq, int):
                raise BadSubscription(f"from_seq must be an int, not {from_seq!r}")
            head = self.ledger.run(run).head
            if not 1 <= from_seq <= head + 1:
                raise SequenceError(run, from_seq, head)
        loop = self._loop() if ttl is not None else None
        sub_id = self.record_created(pattern, ttl)
        state = SubscriptionState(
            id=sub_id,
            pattern=pattern,
            routes=routes,
            run=run,
            agent=agent,
            ttl=ttl,
            maxsize=maxsize,
            drop_oldest=overflow == "drop_oldest",
            dense=dense_mode(routes),
            monotonic=self.clock.monotonic,
        )
        self.subs[state.id] = state
        if from_seq is None:
            self.attach(state)
        else:
            assert run is not None
            head = self.ledger.run(run).head
            if from_seq > head:
                state.floor = from_seq
                self.attach(state)
            else:
                state.catchup = from_seq
        if loop is not None:
            state.renew()
            self.schedule(state, loop)
        return state

    def record_created(self, pattern: str, ttl: float | None) -> str:
        """Record ``subscription.created`` and return the new subscription's id.

        The id is ``sub-<seq>``, the sequence number of that record in the system run: unique
        in the ledger (even with several processes on one file: a lost race is retried) and
        deterministic, with no random source.
        """
        seq = 0
        for _ in range(64):
            seq = self.system_head() + 1
            sub_id = f"sub-{seq}"
            payload = SubscriptionCreated(subscription=sub_id, pattern=pattern, ttl_s=ttl)
            try:
                self.record(payload, expected=seq)
            except SequenceConflict:
                continue  # another writer appended to the system run first
            return sub_id
        raise SequenceConflict(SYSTEM_RUN, seq, self.system_head() + 1)

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

    def end(
        self, state: SubscriptionState, closing: Closing, reason: str, *, record: bool = True
    ) -> None:
        """Remove a subscription, free its memory, wake its reader, and record why."""
        if state.closing is not None:
            return
        state.closing = closing
        state.reason = reason
        if state.catchup is None:
            self.detach(state)
        self.subs.pop(state.id, None)
        state.queue = deque()
        state.reader = None
        state.lag_event = None
        state.catchup = None
        state.deadline = None
        state.wake()
        if not record:
            return
        payload: Payload
        if closing == "expired":
            assert state.ttl is not None
            payload = SubscriptionExpired(
                subscription=state.id, pattern=state.pattern, ttl_s=state.ttl
            )
        else:
            payload = SubscriptionEnded(subscription=state.id, reason=reason)
        self.record_quietly(payload)

    # -- publishing ----------------------------------------------------------------------

    def publish(self, transitions: Sequence[Transition], skip: SubscriptionState | None) -> None:
        for t in transitions:
            if t.kind not in _KINDS:
                from telic.errors import UnknownEventType

                raise UnknownEventType(t.kind)
        if self.publishing:
            self.backlog.append((transitions, skip))
            return
        self.publishing = True
        try:
            self.fan_out(transitions, skip)
            while self.backlog:
                more, skip = self.backlog.popleft()
                self.fan_out(more, skip)
        finally:
            self.publishing = False

    def fan_out(self, transitions: Sequence[Transition], skip: SubscriptionState | None) -> None:
        """Deliver one batch: to dense subscriptions by the batch, to the others by kind."""
        make = _make
        own = [make(Event, (t.kind, t)) for t in transitions]
        lagged: list[SubscriptionState] = []
        if self.any_run or self.by_run:
            self.fan_out_by_kind(transitions, own, skip, lagged)
        if self.dense_any or self.dense_by_run:
            self.fan_out_dense(transitions, own, skip, lagged)
        processors = self.processors
        if processors:
            for event in own:
                self.process(event, processors)
        for state in lagged:
            self.note_lag(state)

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
        make = _make
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
                    make = _make
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
            self.end(
                state,
                "disconnected",
                f"its queue of {state.maxsize} overflowed (overflow='disconnect')",
            )
            return False
        state.dropped += over
        if not state.lagging:
            state.lagging = True
            state.episode_start = state.dropped - over
            lagged.append(state)
        return True

    def process(self, event: Event, processors: tuple[EventProcessor, ...]) -> None:
        for p in processors:
            try:
                p.on_event(event)
            except Exception:
                log.exception("event processor %r failed on %s", p, event.type)

    def note_lag(self, state: SubscriptionState) -> None:
        if state.closing is not None:
            return
        state.episodes += 1
        t = self.record_quietly(
            SubscriberLagged(subscription=state.id, dropped=state.dropped - state.episode_start),
            skip=state,
        )
        if t is not None and state.closing is None:
            state.lag_event = Event(t.kind, t)
            state.wake()

    # -- the system run ------------------------------------------------------------------

    def system_head(self) -> int:
        """The head of the system run, which is created on first use."""
        ledger = self.ledger
        try:
            return ledger.run(SYSTEM_RUN).head
        except RunNotFound:
            with contextlib.suppress(RunExists):  # another process created it first
                ledger.create_run(SYSTEM_RUN)
            return ledger.run(SYSTEM_RUN).head

    def record(
        self,
        payload: Payload,
        *,
        skip: SubscriptionState | None = None,
        expected: int | None = None,
    ) -> Transition:
        """Append ``payload`` to the system run and publish it."""
        if not self.system_ready:
            self.system_head()
            self.system_ready = True
        (t,) = self.ledger.append(
            SYSTEM_RUN, [draft(payload, ts=self.clock.now_us())], expected=expected
        )
        self.publish((t,), skip)
        return t

    def record_quietly(
        self, payload: Payload, *, skip: SubscriptionState | None = None
    ) -> Transition | None:
        """:meth:`record`, logging instead of raising (for paths that must not fail)."""
        try:
            return self.record(payload, skip=skip)
        except Exception:
            log.exception("could not record %s in the event kernel's system run", payload.kind)
            return None

    # -- catch-up ------------------------------------------------------------------------

    def fill(self, state: SubscriptionState) -> None:
        """Read the next page of a catching-up subscription into its queue; go live at the end.

        Going live happens in the same synchronous step as the last read found the head, so
        no publish can slip between them; ``floor`` drops what was read and published since.
        """
        run = state.run
        start = state.catchup
        assert run is not None
        assert start is not None
        reader = state.reader
        if reader is None:
            reader = state.reader = self.ledger.read(run, start)
        get = state.routes.get
        agent = state.agent
        append = state.queue.append
        page = PAGE
        make = _make
        last: Transition | None = None
        for t in itertools.islice(reader, page):
            last = t
            etype = get(t.kind)
            if etype is not None and (agent is None or t.agent == agent):
                append(make(Event, (etype, t)))
        nxt = start if last is None else last.seq + 1
        state.catchup = nxt
        state.pages += 1
        if nxt - start < page:  # sequence numbers are dense: the reader is exhausted
            state.reader = None
            if self.ledger.run(run).head < nxt:
                state.catchup = None
                state.floor = nxt
                self.attach(state)

    # -- TTL -----------------------------------------------------------------------------

    def _loop(self) -> asyncio.AbstractEventLoop:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            raise BadSubscription(
                "a subscription with a TTL (or a callback) needs a running event loop"
            ) from None

    def schedule(self, state: SubscriptionState, loop: asyncio.AbstractEventLoop) -> None:
        assert state.deadline is not None
        heapq.heappush(self.heap, (state.deadline, next(self.heap_order), state.id))
        if len(self.heap) > 2 * len(self.subs) + 64:
            self.heap[:] = [
                (s.deadline, next(self.heap_order), s.id)
                for s in self.subs.values()
                if s.deadline is not None
            ]
            heapq.heapify(self.heap)
        if self.timer is None:
            self.timer_wake = asyncio.Event()
            self.timer = loop.create_task(self.run_timer(), name="telic-events-ttl")
        elif state.deadline < self.timer_target and self.timer_wake is not None:
            self.timer_wake.set()

    def reschedule(self, state: SubscriptionState) -> None:
        """After :meth:`renew` with a new TTL, which may be shorter."""
        if state.deadline is not None and state.deadline < self.timer_target:
            self.schedule(state, self._loop())

    async def run_timer(self) -> None:
        wake = self.timer_wake
        assert wake is not None
        while True:
            now = self.clock.monotonic()
            self.expire_due(now)
            wake.clear()
            if self.heap:
                self.timer_target = self.heap[0][0]
                try:
                    async with asyncio.timeout(max(0.0, self.timer_target - now)):
                        await wake.wait()
                except TimeoutError:
                    pass
            else:
                self.timer_target = math.inf
                await wake.wait()

    def expire_due(self, now: float) -> None:
        """End every subscription whose deadline has passed (a method of its own, so that
        the timer's frame keeps no reference to an expired subscription)."""
        heap = self.heap
        while heap and heap[0][0] <= now + _EPSILON:
            _, _, sub_id = heapq.heappop(heap)
            state = self.subs.get(sub_id)
            if state is None or state.deadline is None:
                continue
            if state.deadline <= now + _EPSILON:
                assert state.ttl is not None
                self.end(state, "expired", f"its TTL of {state.ttl:g} s lapsed without renewal")
            else:
                heapq.heappush(heap, (state.deadline, next(self.heap_order), sub_id))
