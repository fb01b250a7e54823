"""A per-provider request scheduler: limits, priorities, fairness, retries, timeouts.

Every model request of a provider goes through one :class:`Scheduler`, which holds

- at most ``max_concurrent`` requests in flight;
- ``requests_per_minute`` and ``tokens_per_minute`` as token buckets on the injected clock
  (a bucket holds ``burst_s`` seconds of its rate, so traffic is smooth, not minute-bursty);
- priorities between agents (higher first) and, within a priority, round-robin between
  agents, so one chatty agent cannot starve the others;
- retries with exponential back-off and jitter on rate limits (429), server errors (5xx),
  connection failures and timeouts, honouring ``Retry-After``: an answer with
  ``Retry-After`` pauses the whole provider (the limit it reports is shared), and the pause
  is set before the failed request's slot is freed, so no other request leaves inside it,
  also when that request has no retries left;
- a report of every failed attempt (``on_failure``: its status, latency and the wait
  before the next one), so that the caller can put each attempt on the ledger;
- a timeout per request;
- cancellation: a cancelled caller leaves the queue or cancels its request; :meth:`aclose`
  fails every waiter and cancels every request in flight. The scheduler starts no task that
  outlives the request it serves.

Adapters tell the scheduler what may be retried by raising :class:`Retryable`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telic.clock import Clock, SystemClock
from telic.errors import ConfigError, ProviderError

__all__ = [
    "Dispatch",
    "FailedAttempt",
    "Limits",
    "Retryable",
    "Scheduler",
    "TokenBucket",
    "parse_retry_after",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Limits:
    """A provider's limits and the retry policy for its requests."""

    max_concurrent: int = 8
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst_s: float = 1.0
    """How many seconds of the per-minute rates a bucket may spend at once."""
    timeout_s: float = 60.0
    """Per request (one attempt)."""
    max_retries: int = 4
    """Retries after the first attempt."""
    backoff_s: float = 0.5
    """Back-off before the first retry; doubles each time, with jitter in [50%, 100%]."""
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ConfigError("scheduler: max_concurrent must be at least 1")
        for name in ("requests_per_minute", "tokens_per_minute"):
            value: float | None = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"scheduler: {name} must be positive or None")
        if self.burst_s <= 0 or self.timeout_s <= 0:
            raise ConfigError("scheduler: burst_s and timeout_s must be positive")
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError("scheduler: retries and back-off must not be negative")


class Retryable(Exception):
    """Raised by a request to say: this attempt failed, but another may succeed."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        node: str | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        """Seconds the provider asked us to wait, if it said."""
        self.status = status
        self.node = node
        """The cluster node the try was sent from, when it was sent from one."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments survive pickling (a try failed in a Ray task comes back whole).
        return (_retryable, (self.reason, self.retry_after, self.status, self.node))


def _retryable(
    reason: str, retry_after: float | None, status: int | None, node: str | None
) -> Retryable:
    return Retryable(reason, retry_after=retry_after, status=status, node=node)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One request leaving the queue (for observers: benchmarks, dashboards, tests)."""

    agent: str
    priority: int
    attempt: int
    queued_at: float
    """Clock time (monotonic seconds) the request joined the queue."""
    started_at: float

    @property
    def waited_s(self) -> float:
        return self.started_at - self.queued_at


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """One attempt that failed in a way worth retrying (reported to ``on_failure``)."""

    attempt: int
    """1 for the first attempt."""
    reason: str
    status: int | None
    """The HTTP status, if there was an answer (None for a timeout or a connection failure)."""
    latency_s: float
    """From the attempt leaving the queue to its failure."""
    retry_after_s: float | None
    """What the provider asked us to wait, if it said."""
    wait_s: float | None
    """The wait before the next attempt; None when no attempt follows (retries used up)."""


class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity``; time comes from ``clock``.

    :meth:`settle` may push the level below zero when a request used more than it reserved;
    the debt is paid back by refill before anything else is granted.
    """

    def __init__(self, rate: float, capacity: float, clock: Clock) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._clock = clock
        self._level = self.capacity
        self._at = clock.monotonic()

    def _refill(self) -> float:
        now = self._clock.monotonic()
        self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
        self._at = now
        return self._level

    @property
    def level(self) -> float:
        return self._refill()

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` (capped at capacity) is available; 0 when it is now."""
        need = min(amount, self.capacity) - self._refill()
        return 0.0 if need <= 1e-9 else need / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self._level -= amount

    def settle(self, reserved: float, used: float) -> None:
        """Correct a reservation by what the request really used."""
        self._refill()
        self._level = min(self.capacity, self._level + reserved - used)


@dataclass(eq=False, slots=True)
class _Waiter:
    agent: str
    priority: int
    tokens: float
    attempt: int
    queued_at: float
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Level:
    """One priority level: agents in round-robin order, each with its queue of waiters."""

    ring: dict[str, deque[_Waiter]] = field(default_factory=dict[str, deque[_Waiter]])


class Scheduler:
    """Admits, paces, retries and times out the requests of one provider.

    ``await scheduler.run(call, agent=..., priority=..., tokens=...)`` runs ``call()`` when
    the limits allow and returns its result. ``tokens`` is the request's estimated size for
    the tokens-per-minute bucket; ``used`` (a function of the result) gives the real size.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        name: str = "provider",
        observer: Callable[[Dispatch], None] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.name = name
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random(0)
        self._observer = observer
        self._requests: TokenBucket | None = None
        self._tokens: TokenBucket | None = None
        self._buckets()
        self._levels: dict[int, _Level] = {}
        self._queued = 0
        self._in_flight = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._paused_until = 0.0
        self._closed = False
        self.retries = 0
        """Attempts that failed and were retried (for figures and tests)."""

    def _buckets(self) -> None:
        lim = self.limits
        rpm, tpm = lim.requests_per_minute, lim.tokens_per_minute
        self._requests = TokenBucket(rpm / 60, rpm / 60 * lim.burst_s, self._clock) if rpm else None
        self._tokens = TokenBucket(tpm / 60, tpm / 60 * lim.burst_s, self._clock) if tpm else None

    # -- public --------------------------------------------------------------------------

    def set_limits(self, limits: Limits) -> None:
        """Hold ``limits`` from now on (requests in flight finish; the buckets start full)."""
        if limits == self.limits:
            return
        self.limits = limits
        self._buckets()
        if not self._closed and self._levels:
            self._pump()

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return self._queued

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        agent: str = "",
        priority: int = 0,
        tokens: float = 0,
        used: Callable[[T], float] | None = None,
        on_failure: Callable[[FailedAttempt], None] | None = None,
    ) -> T:
        """Run ``call()`` under the limits, retrying what raises :class:`Retryable`.

        ``on_failure`` hears of every attempt that failed with :class:`Retryable` or a
        timeout, before the scheduler waits for the next one. Raises
        :class:`~telic.errors.ProviderError` when the retries are used up or the scheduler is
        closed; any other exception from ``call`` passes through unretried.
        """
        attempt = 1
        while True:
            await self._acquire(agent, priority, tokens, attempt)
            if self._closed:  # granted just before aclose(): do not start it
                self._release()
                raise self._closed_error()
            reason: str
            retry_after: float | None = None
            status: int | None = None
            started = self._clock.monotonic()
            try:
                result = await self._call(call)
            except Retryable as exc:
                reason, retry_after, status = exc.reason, exc.retry_after, exc.status
            except TimeoutError:
                reason = f"no response within {self.limits.timeout_s:g} s"
            except BaseException:
                self._settle(tokens, tokens)
                raise
            else:
                self._settle(tokens, used(result) if used is not None else tokens)
                return result
            latency = self._clock.monotonic() - started
            last = attempt > self.limits.max_retries
            delay = self._backoff(attempt, retry_after)
            if retry_after is not None:
                # Before the slot is freed: freeing it grants the next waiter at once, and
                # that request must not leave inside the window the provider asked for.
                self._paused_until = max(self._paused_until, self._clock.monotonic() + delay)
            self._settle(tokens, tokens)
            if on_failure is not None:
                on_failure(
                    FailedAttempt(
                        attempt, reason, status, latency, retry_after, None if last else delay
                    )
                )
            if last:
                raise ProviderError(
                    f"{self.name}: request failed after {attempt} attempt(s): {reason}; "
                    "check the endpoint and its limits, or raise Limits.max_retries"
                )
            self.retries += 1
            attempt += 1
            await self._clock.sleep(delay)

    async def aclose(self) -> None:
        """Refuse new requests, fail every waiter and cancel every request in flight."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for level in self._levels.values():
            for queue in level.ring.values():
                for w in queue:
                    if not w.future.done():
                        w.future.set_exception(self._closed_error())
        self._levels.clear()
        self._queued = 0
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- admission -----------------------------------------------------------------------

    async def _acquire(self, agent: str, priority: int, tokens: float, attempt: int) -> None:
        if self._closed:
            raise self._closed_error()
        loop = asyncio.get_running_loop()
        waiter = _Waiter(
            agent, priority, tokens, attempt, self._clock.monotonic(), loop.create_future()
        )
        level = self._levels.setdefault(priority, _Level())
        queue = level.ring.get(agent)
        if queue is None:
            queue = level.ring[agent] = deque()
        queue.append(waiter)
        self._queued += 1
        self._pump()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._release()  # granted, then cancelled before it could run
            else:
                self._forget(waiter)
            raise

    def _forget(self, waiter: _Waiter) -> None:
        level = self._levels.get(waiter.priority)
        queue = level.ring.get(waiter.agent) if level else None
        if level is None or queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        self._queued -= 1
        if not queue:
            del level.ring[waiter.agent]
            if not level.ring:
                del self._levels[waiter.priority]
        self._pump()  # the head may have changed

    def _pump(self) -> None:
        """Grant as many waiters as the limits allow; set a timer for the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._levels and self._in_flight < self.limits.max_concurrent:
            priority = max(self._levels)
            level = self._levels[priority]
            agent = next(iter(level.ring))
            queue = level.ring[agent]
            head = queue[0]
            wait = self._paused_until - self._clock.monotonic()
            if self._requests is not None:
                wait = max(wait, self._requests.wait_s(1))
            if self._tokens is not None:
                wait = max(wait, self._tokens.wait_s(head.tokens))
            if wait > 0:
                self._timer = asyncio.get_running_loop().call_later(wait, self._pump)
                return
            queue.popleft()
            self._queued -= 1
            del level.ring[agent]
            if queue:
                level.ring[agent] = queue  # to the back of the ring: round-robin
            elif not level.ring:
                del self._levels[priority]
            if self._requests is not None:
                self._requests.take(1)
            if self._tokens is not None:
                self._tokens.take(head.tokens)
            self._in_flight += 1
            head.future.set_result(None)
            if self._observer is not None:
                now = self._clock.monotonic()
                self._observer(Dispatch(agent, priority, head.attempt, head.queued_at, now))

    def _release(self) -> None:
        self._in_flight -= 1
        if not self._closed:
            self._pump()

    def _settle(self, reserved: float, used: float) -> None:
        if self._tokens is not None and (reserved or used):
            self._tokens.settle(reserved, used)
        self._release()

    # -- one attempt ---------------------------------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with asyncio.timeout(self.limits.timeout_s):
                return await call()

        task = asyncio.get_running_loop().create_task(attempt())
        self._tasks.add(task)
        try:
            # A cancelled caller cancels the awaited task and resumes only once it has ended.
            return await task
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self._closed and me is not None and me.cancelling() == 0:
                raise self._closed_error() from None  # aclose() cancelled the request
            raise
        finally:
            self._tasks.discard(task)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.limits.max_backoff_s)
        base = self.limits.backoff_s * 2 ** (attempt - 1)
        return min(base * (0.5 + 0.5 * self._rng.random()), self.limits.max_backoff_s)

    def _closed_error(self) -> ProviderError:
        return ProviderError(f"{self.name}: the scheduler is closed (the run stopped)")


def parse_retry_after(headers: Mapping[str, str], *, now_s: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)
