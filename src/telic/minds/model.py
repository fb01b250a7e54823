"""What every model adapter shares: the propose loop with repairs, replay and accounting.

:class:`ModelMind` asks a model for a proposal:

1. it builds the request from the :class:`~telic.minds.View` (role prompt, protocol, the
   rendered view, the proposal schema as the ``propose`` tool or as a JSON schema);
2. it computes the request digest; if the view holds a recorded response for that digest
   (a tick resumed after a crash: the kernel fills ``View.recorded`` from the ledger), it
   uses it and calls nothing;
3. otherwise it takes tokens from the run's token budget (``View.calls.reserve``: the
   request's ``max_tokens`` is cut to what is left, so a budget is overrun by at most the
   prompt of one call) and sends the request through the provider's :class:`Scheduler`
   (from another process when :attr:`ModelMind.remote` is set: only the HTTP request leaves,
   see :mod:`telic.minds.endpoint`);
4. it reads the reply into a :class:`~telic.proposal.Proposal`; an unusable reply (prose,
   bad JSON, a schema failure, a call to another function, over the size limit) is answered
   with what was wrong, up to ``max_repairs`` times;
5. every answered call becomes a :class:`~telic.kinds.ModelCalled` record (usage with
   cached and reasoning tokens, latency, cost in the budget's currency, ``cost_known``,
   ``error`` when the reply was unusable), and every failed try (429, 5xx, timeout, reset) a
   :class:`~telic.kinds.ModelFailed`. In a kernel they are written to the ledger as they
   happen (``View.calls.record``, before the tick commits); outside one the answered calls
   travel with the proposal's ``model_calls`` or the raised
   :class:`~telic.errors.MalformedOutput` / :class:`~telic.errors.ProviderError`.

Subclasses say how to talk to one API (:mod:`telic.minds.openai`,
:mod:`telic.minds.anthropic`, :mod:`telic.minds.responses`).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from telic.clock import Clock
from telic.errors import (
    ConfigError,
    MalformedOutput,
    ModelRequestsForbidden,
    ProviderError,
    TokensExhausted,
)
from telic.kinds import ModelCalled, ModelFailed
from telic.minds.base import CallLog, View
from telic.minds.endpoint import Endpoint, RemoteSend
from telic.minds.pricing import PriceTable, Usage, default_prices
from telic.minds.prompt import (
    Unusable,
    as_list,
    as_map,
    proposal_schema,
    read_proposal,
    render_view,
    request_digest,
    view_priority,
)
from telic.minds.providers import Provider, is_loopback
from telic.minds.scheduler import FailedAttempt, Retryable, Scheduler
from telic.prompts import protocol_prompt, role_prompt
from telic.proposal import Proposal

__all__ = ["ModelMind", "Reply", "Structured", "as_list", "as_map", "model_requests_allowed"]

Structured = Literal["tool", "json"]
"""How the proposal schema is offered: as a forced ``propose`` tool, or as a JSON schema
(response format / instructions) for endpoints without tool calling."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as the adapter reads it, independent of the wire format."""

    calls: tuple[tuple[str, str | Mapping[str, Any]], ...]
    """Function calls in the reply: (name, arguments as a JSON string or an object)."""
    text: str
    input_tokens: int
    """All input tokens, cached ones included."""
    output_tokens: int
    """All output tokens, reasoning ones included."""
    truncated: bool = False
    """The model stopped at its output limit."""
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def usage(self) -> Usage:
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """A sent request's answer, as the scheduler delivered it."""

    response: dict[str, Any]
    latency_ms: float
    """Of the try that answered."""
    retries: int
    """Tries that failed before it."""
    node: str | None
    """The cluster node that sent it, when it was sent from one."""


def model_requests_allowed() -> bool:
    """The global switch :data:`telic.minds.ALLOW_MODEL_REQUESTS` (tests turn it off)."""
    pkg = sys.modules.get("telic.minds")
    return bool(getattr(pkg, "ALLOW_MODEL_REQUESTS", True))


class ModelMind(ABC):
    """A :class:`~telic.minds.Mind` backed by a model endpoint. Use :func:`telic.minds.model_mind`."""

    client: Any
    """The SDK client requests are sent with (the subclass says which)."""
    remote: RemoteSend | None = None
    """Sends each request from elsewhere instead of through :attr:`client` (set by a Ray
    cluster host for an agent that declares resources, :mod:`telic.cluster.model_calls`):
    the scheduler, budgets and records stay here, only the HTTP request leaves."""

    def __init__(
        self,
        provider: Provider,
        model: str,
        *,
        scheduler: Scheduler,
        role_prompt: str | None = None,
        prompts_dir: str | None = None,
        prices: PriceTable | None = None,
        structured: Structured = "tool",
        max_repairs: int = 2,
        max_tokens: int = 1024,
        temperature: float | None = None,
        max_reply_bytes: int = 64 * 1024,
        priority: int | None = None,
        clock: Clock | None = None,
        currency: str = "USD",
        rates: Mapping[str, float] | None = None,
    ) -> None:
        """``currency`` is the budget's; ``rates`` give units of it per unit of another
        currency (``{"USD": 0.8}`` for a CHF budget), to convert the price list's."""
        self.provider = provider
        self.model = model
        self.scheduler = scheduler
        self.role_prompt = role_prompt
        self.prompts_dir = prompts_dir
        self.prices = prices or default_prices()
        self.structured: Structured = structured
        self.max_repairs = max(0, max_repairs)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_reply_bytes = max_reply_bytes
        self.priority = priority
        self.clock = clock or scheduler.clock
        self.currency = currency
        self.rate = _rate(self.prices.currency, currency, rates or {})
        self._systems: dict[str, str] = {}

    @property
    def name(self) -> str:
        """The model string, e.g. ``openai:gpt-4.1-mini``."""
        return f"{self.provider.name}:{self.model}"

    # -- what subclasses provide -----------------------------------------------------------

    @property
    @abstractmethod
    def base_url(self) -> str:
        """Where requests go (the switch lets loopback endpoints through)."""

    @abstractmethod
    def first_request(self, system: str, user: str) -> dict[str, Any]:
        """The wire request (JSON) for a system prompt and a user message."""

    @property
    def limit_key(self) -> str:
        """The request field that caps the reply's tokens."""
        return "max_tokens"

    @abstractmethod
    def repair_request(
        self, request: dict[str, Any], response: Mapping[str, Any], problem: str
    ) -> dict[str, Any]:
        """The next request: ``request`` plus the model's reply and what was wrong with it."""

    @property
    @abstractmethod
    def endpoint(self) -> Endpoint:
        """Where and how requests are posted (the provider, the API, the client timeout)."""

    async def send(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request with this mind's client; return the response as JSON. Raises
        :class:`~telic.minds.scheduler.Retryable` for what may be retried,
        :class:`~telic.errors.ProviderError` for what may not."""
        return await self.endpoint.post(self.client, request)

    @abstractmethod
    def read(self, response: Mapping[str, Any]) -> Reply:
        """Read a (fresh or recorded) response."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the SDK client's connections (if the mind created the client)."""

    async def __aenter__(self) -> ModelMind:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the loop --------------------------------------------------------------------------

    def system_prompt(self, role: str) -> str:
        text = self._systems.get(role)
        if text is None:
            body = self.role_prompt or role_prompt(role, directory=self.prompts_dir)
            text = self._systems[role] = (
                body.rstrip() + "\n\n" + protocol_prompt(directory=self.prompts_dir)
            )
        return text

    def schema(self) -> dict[str, Any]:
        return proposal_schema()

    async def propose(self, view: View) -> Proposal:
        log = view.calls
        request = self.first_request(self.system_prompt(view.role), render_view(view))
        calls: list[ModelCalled] = []  # outside a kernel: they travel with the result
        problem = ""
        attempts = self.max_repairs + 1
        for attempt in range(1, attempts + 1):
            # The digest is of the question, before the budget cut on max_tokens: a resumed
            # tick asks the same question with less budget left, and must find its answer.
            digest = request_digest(request)
            recorded = view.recall(digest)
            held = 0
            try:
                if recorded is not None:
                    response, answer = _recorded_response(recorded), None
                else:
                    sent, held = self._within_budget(request, view, log)
                    try:
                        answer = await self._call(sent, view, digest)
                        response = answer.response
                    except ProviderError as exc:
                        if calls:  # keep the earlier attempts' usage on record
                            raise ProviderError(str(exc), calls=(*exc.calls, *calls)) from exc
                        raise
                try:
                    proposal = self._proposal(response)
                    error = None
                except Unusable as exc:
                    proposal, error = None, exc.problem
                if answer is not None:
                    call = self._record(view, digest, answer, attempt, error)
                    if log is not None:
                        log.record(call)
                    else:
                        calls.append(call)
            finally:
                if held and log is not None:
                    log.release(held)
            if proposal is not None:
                return proposal.model_copy(update={"model_calls": tuple(calls)})
            problem = error or ""
            if attempt < attempts:
                request = self.repair_request(request, response, problem)
        raise MalformedOutput(
            f"{self.name} gave no valid proposal in {attempts} attempt(s); last problem: {problem}",
            calls=tuple(calls),
        )

    def _within_budget(
        self, request: dict[str, Any], view: View, log: CallLog | None
    ) -> tuple[dict[str, Any], int]:
        """``request`` with its reply cut to the token budget left, and the tokens held."""
        prompt = len(_dumps(request)) // 4
        want = prompt + self.max_tokens
        if log is not None:
            granted = log.reserve(want)
        else:
            left = view.budget_left.get("tokens")
            granted = want if left is None else max(0, min(want, int(left)))
        if granted >= want:
            return request, granted
        reply = granted - prompt
        if reply < 1:
            if log is not None and granted:
                log.release(granted)
            raise TokensExhausted(self.name, granted, prompt)
        return {**request, self.limit_key: reply}, granted

    def _proposal(self, response: Mapping[str, Any]) -> Proposal:
        reply = self.read(response)
        size = len(reply.text.encode()) + sum(
            len(a.encode()) if isinstance(a, str) else len(_dumps(a)) for _, a in reply.calls
        )
        if size > self.max_reply_bytes:
            raise Unusable(
                f"the reply is {size} bytes, over the limit of {self.max_reply_bytes}; "
                "answer with a shorter proposal"
            )
        wanted = [args for name, args in reply.calls if name == "propose"]
        if reply.calls and not wanted:
            names = ", ".join(sorted({name for name, _ in reply.calls}))
            raise Unusable(
                f"you called {names}, which is not available to you: tools are used through a "
                'proposal with action "tool"; call the `propose` function'
            )
        try:
            return read_proposal(wanted[0] if wanted else None, reply.text)
        except Unusable as exc:
            if reply.truncated:
                raise Unusable(
                    f"{exc.problem} (the reply was cut off at the output limit: be brief)"
                ) from None
            raise

    async def _call(self, request: dict[str, Any], view: View, digest: str) -> _Answer:
        """Send ``request``; returns the response, the answering try's latency, how many
        tries failed before it (each written to the view's call log) and where it ran."""
        if not model_requests_allowed() and not is_loopback(self.base_url):
            raise ModelRequestsForbidden(self.name)
        clock = self.clock
        started = 0.0
        failed = 0
        node: str | None = None  # where the try in progress (or the last) was sent from

        async def call() -> dict[str, Any]:
            nonlocal started, node
            started = clock.monotonic()
            node = None
            remote = self.remote
            if remote is None:
                return await self.send(request)
            try:
                sent = await remote(self.endpoint, request)
            except Retryable as exc:
                node = exc.node
                raise
            node = sent.node
            return sent.response

        def on_failure(f: FailedAttempt) -> None:
            nonlocal failed
            failed += 1
            if view.calls is not None:
                view.calls.record(
                    ModelFailed(
                        agent=view.agent,
                        model=self.name,
                        request_digest=digest,
                        attempt=f.attempt,
                        error=f.reason,
                        status=f.status,
                        latency_ms=round(f.latency_s * 1000, 3),
                        retry_after_s=f.retry_after_s,
                        wait_s=f.wait_s,
                        node=node,
                    )
                )

        estimate = len(_dumps(request)) // 4 + int(request.get(self.limit_key) or self.max_tokens)
        response = await self.scheduler.run(
            call,
            agent=view.agent,
            priority=self.priority if self.priority is not None else view_priority(view),
            tokens=estimate,
            used=self._tokens_used,
            on_failure=on_failure,
        )
        return _Answer(response, (clock.monotonic() - started) * 1000, failed, node)

    def _tokens_used(self, response: dict[str, Any]) -> float:
        reply = self.read(response)
        return reply.input_tokens + reply.output_tokens

    def _record(
        self,
        view: View,
        digest: str,
        answer: _Answer,
        attempt: int,
        error: str | None,
    ) -> ModelCalled:
        reply = self.read(answer.response)
        quote = self.prices.quote(self.provider.name, self.model, reply.usage)
        return ModelCalled(
            agent=view.agent,
            model=self.name,
            request_digest=digest,
            response=answer.response,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cached_input_tokens=reply.cached_input_tokens,
            cache_write_tokens=reply.cache_write_tokens,
            reasoning_tokens=reply.reasoning_tokens,
            latency_ms=round(answer.latency_ms, 3),
            cost=round(quote.cost * self.rate, 12),
            currency=self.currency,
            cost_known=quote.known,
            rate=self.rate,
            attempt=attempt,
            retries=answer.retries,
            error=error,
            node=answer.node,
        )


def _rate(prices: str, budget: str, rates: Mapping[str, float]) -> float:
    """Units of ``budget`` currency per unit of ``prices`` currency."""
    if prices == budget:
        return 1.0
    rate = rates.get(prices)
    if rate is None or rate <= 0:
        raise ConfigError(
            f"model prices are in {prices} but the budget is in {budget}: state the rate "
            f"(rates = {{ {prices} = <{budget} per {prices}> }} in the spec's [budget], "
            f"rates= in Python) or keep the budget in {prices}"
        )
    return float(rate)


def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


def _recorded_response(recorded: Any) -> dict[str, Any]:
    """A recorded response, given either as the response itself or as a ``model.called``
    payload (a mapping with ``request_digest`` and ``response``)."""
    value: Any = recorded.response if isinstance(recorded, ModelCalled) else recorded
    found = as_map(value)
    if "request_digest" in found and "response" in found:
        found = as_map(found["response"])
    if not found:
        raise MalformedOutput(f"a recorded response must be a JSON object, got {value!r:.200}")
    return dict(found)
