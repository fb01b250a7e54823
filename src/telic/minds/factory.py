"""``model_mind("openai:gpt-4.1-mini")``: a model string to a ready mind.

Minds on the same endpoint share one :class:`~telic.minds.scheduler.Scheduler` (its limits
are the provider's, not the agent's) unless given a :class:`Scheduler` object of their own:
one scheduler per provider, base URL and key (a digest of it), however the minds are built.
Limits given for an endpoint (``scheduler=Limits(...)`` or a mapping) are set on its one
scheduler, so six minds built with ``Limits(max_concurrent=2)`` hold 2 together, not 12.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from telic.clock import Clock
from telic.errors import ConfigError
from telic.minds.model import ModelMind, Structured
from telic.minds.pricing import PricesLike, price_table
from telic.minds.providers import Preset, Provider, parse_model, resolve_provider
from telic.minds.scheduler import Limits, Scheduler

__all__ = ["Api", "model_mind", "shared_scheduler"]

Api = Literal["chat", "responses"]
"""Which OpenAI API an OpenAI-compatible mind speaks."""

_SCHEDULERS: dict[tuple[str, str, str], Scheduler] = {}
"""The registry: one scheduler per :attr:`Provider.key` (provider, base URL, key digest)."""


def shared_scheduler(
    provider: Provider, *, limits: Limits | None = None, clock: Clock | None = None
) -> Scheduler:
    """The scheduler every mind on ``provider``'s endpoint shares (created on first use).

    ``limits`` are set on it (the last limits given for an endpoint hold for every mind on
    it). A closed scheduler (its run stopped) or one on another clock is replaced.
    """
    found = _SCHEDULERS.get(provider.key)
    if found is None or found.closed or (clock is not None and found.clock is not clock):
        found = _SCHEDULERS[provider.key] = Scheduler(
            limits or _default_limits(provider.preset), clock=clock, name=provider.name
        )
    elif limits is not None:
        found.set_limits(limits)
    return found


def _default_limits(preset: Preset) -> Limits:
    return Limits(max_concurrent=preset.max_concurrent)


def model_mind(
    model: str,
    *,
    role_prompt: str | None = None,
    prompts_dir: str | Path | None = None,
    scheduler: Scheduler | Limits | Mapping[str, Any] | None = None,
    prices: PricesLike = None,
    base_url: str | None = None,
    api_key: str | None = None,
    structured: Structured = "tool",
    max_repairs: int = 2,
    max_tokens: int = 1024,
    temperature: float | None = None,
    max_reply_bytes: int = 64 * 1024,
    priority: int | None = None,
    clock: Clock | None = None,
    client: Any = None,
    currency: str = "USD",
    rates: Mapping[str, float] | None = None,
    api: Api = "chat",
) -> ModelMind:
    """A mind for ``model`` (``"<provider>:<model>"``, e.g. ``"ollama:qwen3"``).

    - ``role_prompt``: the system prompt's role part; by default the shipped (or overridden,
      see :mod:`telic.prompts`) prompt of the view's role, looked up in ``prompts_dir`` first.
    - ``scheduler``: a shared :class:`Scheduler`, or :class:`Limits` (or a mapping of its
      fields, as in a TOML spec) for a scheduler of this endpoint; by default the endpoint's
      shared scheduler.
    - ``prices``: a :class:`~telic.minds.pricing.PriceTable`, or a mapping / TOML path laid
      over the shipped table.
    - ``base_url`` / ``api_key``: override the preset and the environment.
    - ``structured``: ``"tool"`` (a forced ``propose`` function) or ``"json"`` (JSON schema).
    - ``max_repairs``: how many times an unusable reply is sent back to be fixed.
    - ``priority``: the agent's priority at the scheduler (default: its boot priority).
    - ``currency`` / ``rates``: the budget's currency, and units of it per unit of another
      (``{"USD": 0.8}``), to record costs in; prices in another currency need a rate.
    - ``api``: for OpenAI-compatible providers, ``"chat"`` (Chat Completions) or
      ``"responses"`` (the Responses API, for the providers that have it).
    - ``client``: an SDK client to use (and not close) instead of a new one; many minds on one
      endpoint can share one (``AsyncOpenAI`` / ``AsyncAnthropic``, same event loop).

    Raises :class:`~telic.errors.UnknownProvider`, :class:`~telic.errors.MissingCredentials`
    or :class:`~telic.errors.MissingExtra` (naming the extra to install).
    """
    preset, name = parse_model(model)
    provider = resolve_provider(preset, base_url=base_url, api_key=api_key)
    if isinstance(scheduler, Scheduler):
        sched = scheduler
    elif isinstance(scheduler, Limits):
        sched = shared_scheduler(provider, limits=scheduler, clock=clock)
    elif scheduler is not None:
        try:
            limits = Limits(**dict(scheduler))
        except TypeError as exc:
            raise ConfigError(f"scheduler limits for {model!r}: {exc}") from None
        sched = shared_scheduler(provider, limits=limits, clock=clock)
    else:
        sched = shared_scheduler(provider, clock=clock)
    if structured not in ("tool", "json"):
        raise ConfigError(f"structured must be 'tool' or 'json', not {structured!r}")
    options: dict[str, Any] = {
        "scheduler": sched,
        "role_prompt": role_prompt,
        "prompts_dir": str(prompts_dir) if prompts_dir is not None else None,
        "prices": price_table(prices),
        "structured": structured,
        "max_repairs": max_repairs,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "max_reply_bytes": max_reply_bytes,
        "priority": priority,
        "clock": clock,
        "currency": currency,
        "rates": rates,
    }
    if api not in ("chat", "responses"):
        raise ConfigError(f"api must be 'chat' or 'responses', not {api!r}")
    if provider.wire == "anthropic":
        if api != "chat":
            raise ConfigError(f"{model!r}: the Responses API is OpenAI's; leave api unset")
        from telic.minds.anthropic import AnthropicMind

        return AnthropicMind(provider, name, client=client, **options)
    if api == "responses":
        from telic.minds.responses import ResponsesMind

        return ResponsesMind(provider, name, client=client, **options)
    from telic.minds.openai import OpenAIMind

    return OpenAIMind(provider, name, client=client, **options)
