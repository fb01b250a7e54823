"""The engine of the event kernel: subscriptions, publishing, catch-up, the system record.

Everything here runs on the event loop's thread and holds no lock: ``publish`` only appends
to bounded queues and completes futures, so no subscriber code runs while the hub is
mid-update (processors excepted: they are called after a batch is delivered and must be
quick). Routing and fan-out are in ``router``, the TTL timer in ``ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final

from telic.clock import Clock
from telic.errors import (
    BadSubscription,
    EventKernelClosed,
    RunExists,
    RunNotFound,
    SequenceConflict,
    SequenceError,
    UnknownEventType,
)
from telic.events.catalogue import SYSTEM_RUN
from telic.events.event import Event
from telic.events.patterns import compile_pattern
from telic.events.processors import EventProcessor
from telic.events.router import Router, dense_mode, make_event
from telic.events.state import LOGGED_IN_FULL, Closing, SubscriptionState, logged
from telic.events.ttl import Expiry, check_ttl
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

__all__ = ["MAX_QUEUE", "PAGE", "Hub", "running_loop"]

log = logging.getLogger("telic.events")

MAX_QUEUE: Final = 1 << 20
"""The largest ``maxsize`` accepted."""
PAGE: Final = 256
"""Transitions read from the ledger per catch-up step."""

_KINDS: Final = frozenset(CATALOGUE)

LAG_PENDING: Final = Event(
    "subscriber.lagged",
    Transition(SYSTEM_RUN, 0, 0, None, "subscriber.lagged", (), 0, 0, {}, b"", b""),
)
"""Stands in a subscription's ``lag_event`` until its lagged transition is recorded."""


def running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise BadSubscription(
            "a subscription with a TTL (or a callback) needs a running event loop"
        ) from None


class Hub:
    """The state and the work of one :class:`~telic.events.EventKernel`."""

    def __init__(self, ledger: Ledger, clock: Clock, processors: Iterable[EventProcessor]) -> None:
        self.ledger = ledger
        self.clock = clock
        self.processors: tuple[EventProcessor, ...] = tuple(processors)
        self.processor_failures: dict[int, int] = {}
        """Failures per processor (by id), for rate-limited logging."""
        self.subs: dict[str, SubscriptionState] = {}
        """Every open subscription (live or catching up), by id."""
        self.router = Router(self.disconnect)
        self.expiry = Expiry(clock, self.subs, self.expire)
        self.publishing = False
        self.backlog: deque[tuple[Sequence[Transition], SubscriptionState | None]] = deque()
        self.system_ready = False
        self.closed = False
        self.pending: list[tuple[Payload, SubscriptionState | None, SubscriptionState | None]] = []
        """Deferred records: (payload, subscription not to deliver it to, lagging one)."""
        self.flush_handle: asyncio.Handle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop subscriptions are read on (set by the first subscribe inside one)."""
        self.loop_thread: int | None = None

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
        if self.loop is None:
            with contextlib.suppress(RuntimeError):
                self.loop = asyncio.get_running_loop()
                self.loop_thread = threading.get_ident()
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
        loop = running_loop() if ttl is not None else None
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
            self.router.attach(state)
        else:
            assert run is not None
            head = self.ledger.run(run).head
            if from_seq > head:
                state.floor = from_seq
                self.router.attach(state)
            else:
                state.catchup = from_seq
        if loop is not None:
            state.renew()
            self.expiry.schedule(state, loop)
        return state

    def record_created(self, pattern: str, ttl: float | None) -> str:
        """Record ``subscription.created`` and return the new subscription's id.

        The id is ``sub-<seq>``, the sequence number of that record in the system run: unique
        in the ledger (even with several processes on one file: a lost race is retried) and
        deterministic, with no random source.
        """
        self.flush()  # deferred records first, so that the head read below stays true
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

    def end(
        self, state: SubscriptionState, closing: Closing, reason: str, *, record: bool = True
    ) -> None:
        """Remove a subscription, free its memory, wake its reader, and record why."""
        if state.closing is not None:
            return
        state.closing = closing
        state.reason = reason
        if state.catchup is None:
            self.router.detach(state)
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

    def disconnect(self, state: SubscriptionState) -> None:
        self.end(
            state,
            "disconnected",
            f"its queue of {state.maxsize} overflowed (overflow='disconnect')",
        )

    def expire(self, state: SubscriptionState) -> None:
        self.end(state, "expired", f"its TTL of {state.ttl:g} s lapsed without renewal")

    # -- publishing ----------------------------------------------------------------------

    def publish(self, transitions: Sequence[Transition], skip: SubscriptionState | None) -> None:
        for t in transitions:
            if t.kind not in _KINDS:
                raise UnknownEventType(t.kind)
        loop = self.loop
        if loop is not None and threading.get_ident() != self.loop_thread:
            # From another thread (an append done in a worker): hand it to the loop, in order.
            loop.call_soon_threadsafe(self.publish, tuple(transitions), skip)
            return
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
        router = self.router
        processors = self.processors
        if not (router.listening or processors):
            return  # nobody listens: publishing costs the kind check only
        lagged: list[SubscriptionState] = []
        own = router.fan_out(transitions, skip, lagged)
        if processors:
            for event in own:
                self.process(event, processors)
        for state in lagged:
            self.note_lag(state)

    def process(self, event: Event, processors: tuple[EventProcessor, ...]) -> None:
        for p in processors:
            try:
                p.on_event(event)
            except Exception:
                count = self.processor_failures[id(p)] = self.processor_failures.get(id(p), 0) + 1
                if logged(count):
                    log.exception(
                        "event processor %r failed on %s (failure %d; after %d, logged at "
                        "powers of two)",
                        p,
                        event.type,
                        count,
                        LOGGED_IN_FULL,
                    )

    def note_lag(self, state: SubscriptionState) -> None:
        """A lag episode began: its ``subscriber.lagged`` is recorded off the hot path."""
        if state.closing is not None:
            return
        state.episodes += 1
        state.lag_event = LAG_PENDING
        self.defer(
            SubscriberLagged(subscription=state.id, dropped=state.dropped - state.episode_start),
            skip=state,
            lag_for=state,
        )

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

    def defer(
        self,
        payload: Payload,
        *,
        skip: SubscriptionState | None = None,
        lag_for: SubscriptionState | None = None,
    ) -> None:
        """Record ``payload`` soon, not now: publishing never waits on a ledger append.

        Deferred records are appended as one group by a callback of the running loop (or at
        once, with no loop), before any other record, and whenever a reader reaches a lagged
        event that is not recorded yet; :meth:`EventKernel.aclose` flushes what is left.
        """
        self.pending.append((payload, skip, lag_for))
        if self.flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self.flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Record and publish every deferred record (logging, not raising, on failure)."""
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            recorded = self.append([payload for payload, _, _ in pending])
        except Exception:
            log.exception("could not record %d event kernel transitions", len(pending))
            for _, _, state in pending:
                if state is not None and state.lag_event is LAG_PENDING:
                    state.lag_event = None
            return
        for t, (_, skip, state) in zip(recorded, pending, strict=True):
            if state is not None and state.lag_event is LAG_PENDING:
                state.lag_event = Event(t.kind, t)
                state.wake()
            self.publish((t,), skip)

    def append(self, payloads: list[Payload], expected: int | None = None) -> list[Transition]:
        if not self.system_ready:
            self.system_head()
            self.system_ready = True
        now = self.clock.now_us()
        return self.ledger.append(
            SYSTEM_RUN, [draft(p, ts=now) for p in payloads], expected=expected
        )

    def record(self, payload: Payload, *, expected: int | None = None) -> Transition:
        """Append ``payload`` to the system run now (after what was deferred) and publish it."""
        self.flush()
        (t,) = self.append([payload], expected)
        self.publish((t,), None)
        return t

    def record_quietly(self, payload: Payload) -> None:
        """:meth:`record`, or :meth:`defer` while publishing; logging instead of raising."""
        if self.publishing:
            self.defer(payload)
            return
        try:
            self.record(payload)
        except Exception:
            log.exception("could not record %s in the event kernel's system run", payload.kind)

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
        batch = list(itertools.islice(reader, PAGE))
        make = make_event
        agent = state.agent
        if state.dense == "own" and agent is None:
            events = [make(Event, (t.kind, t)) for t in batch]
        else:
            get = state.routes.get
            events = [
                make(Event, (etype, t))
                for t in batch
                if (etype := get(t.kind)) is not None and (agent is None or t.agent == agent)
            ]
        state.queue.extend(events)
        nxt = batch[-1].seq + 1 if batch else start
        state.catchup = nxt
        state.pages += 1
        if len(batch) < PAGE:  # the reader is exhausted (it stops at the head it first saw)
            state.reader = None
            if self.ledger.run(run).head < nxt:
                state.catchup = None
                state.floor = nxt
                self.router.attach(state)
