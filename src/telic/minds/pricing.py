"""Prices: what a model call costs, and whether that is known.

Where a price comes from, first found wins:

1. entries you give (``prices=``: a mapping, a TOML file or a table), by the exact model
   string (``"openai:gpt-4.1"``) or model name, or that name without a date suffix
   (``gpt-4.1-2025-04-14`` is ``gpt-4.1``);
2. the maintained list of the ``genai-prices`` package (the ``prices`` extra), when it is
   installed: per-model prices with cache-read and cache-write rates, kept up to date by its
   maintainers;
3. the bundled ``prices.toml``, the offline fallback (exact names and date suffixes only);
4. a local provider (ollama, vllm, lmstudio, llamacpp) costs nothing;
5. otherwise the price is **unknown**: the call costs 0 in the record, with
   ``cost_known=false``, and a warning is logged once per model.

There is no prefix matching: ``o3-pro`` is not ``o3``, and ``o3-mini`` is not ``o3``.
Cached input is billed at the cache-read price and cache writes at the cache-write price;
reasoning tokens are output tokens (they are counted separately in the record).
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from telic.errors import ConfigError

__all__ = [
    "LOCAL_PROVIDERS",
    "Price",
    "PriceTable",
    "PricesLike",
    "Quote",
    "Usage",
    "default_prices",
    "price_table",
]

LOCAL_PROVIDERS = frozenset({"ollama", "vllm", "lmstudio", "llamacpp"})
"""Providers that run on your own hardware: free unless the table says otherwise."""

_log = logging.getLogger("telic.minds.pricing")
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True, slots=True)
class Usage:
    """The tokens of one call. The cache counts are parts of ``input_tokens``; reasoning
    is a part of ``output_tokens``."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Price:
    """Prices per million tokens. A cache price left out is the input price."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        plain = usage.input_tokens - cached - written
        read_price = self.input if self.cache_read is None else self.cache_read
        write_price = self.input if self.cache_write is None else self.cache_write
        return (
            plain * self.input
            + cached * read_price
            + written * write_price
            + usage.output_tokens * self.output
        ) / 1_000_000


FREE = Price(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Quote:
    """What a call cost, in the table's currency, and where the price came from."""

    cost: float
    currency: str
    known: bool
    source: str
    """``"table"``, ``"genai-prices"``, ``"bundled"``, ``"local"`` or ``"unknown"``."""


class PriceTable:
    """Prices by model (see the module docstring for the lookup order).

    ``entries`` are the table's own prices; ``maintained`` consults ``genai-prices`` after
    ``overrides`` and before ``entries`` (the shipped table is the offline fallback).
    """

    def __init__(
        self,
        entries: Mapping[str, Price],
        *,
        currency: str = "USD",
        overrides: Mapping[str, Price] | None = None,
        maintained: bool = False,
    ) -> None:
        self._entries = dict(entries)
        self._overrides = dict(overrides or {})
        self.currency = currency
        self.maintained = maintained
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, currency: str = "USD") -> PriceTable:
        """From ``{"gpt-4.1": {"input": 2.0, "output": 8.0}}`` or ``{"gpt-4.1": (2.0, 8.0)}``."""
        return cls(
            {model: _price(model, value) for model, value in data.items()}, currency=currency
        )

    @classmethod
    def from_toml(cls, text: str) -> PriceTable:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"price table is not valid TOML: {exc}") from None
        models: Any = data.get("models", {})
        if not isinstance(models, dict):
            raise ConfigError("price table: [models] must be a table of models")
        return cls.from_mapping(models, currency=str(data.get("currency", "USD")))  # pyright: ignore[reportUnknownArgumentType]

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        return cls.from_toml(Path(path).read_text(encoding="utf-8"))

    def merged(self, other: PriceTable) -> PriceTable:
        """This table with ``other``'s entries first (they win over ``genai-prices`` too)."""
        if other.currency != self.currency:
            raise ConfigError(
                f"price table in {other.currency} laid over one in {self.currency}: give "
                f"prices in {self.currency}"
            )
        return PriceTable(
            self._entries,
            currency=self.currency,
            overrides={**self._overrides, **other._overrides, **other._entries},
            maintained=self.maintained,
        )

    def _find(self, table: Mapping[str, Price], provider: str, model: str) -> Price | None:
        for name in (model, _DATED.sub("", model)):
            found = table.get(f"{provider}:{name}") or table.get(name)
            if found is not None:
                return found
        return None

    def lookup(self, provider: str, model: str) -> tuple[Price, str] | None:
        """The price of ``model`` at ``provider`` and its source; None when unknown."""
        found = self._find(self._overrides, provider, model)
        if found is not None:
            return found, "table"
        if self.maintained and provider not in LOCAL_PROVIDERS:
            maintained = _maintained(provider, model)
            if maintained is not None:
                return maintained, "genai-prices"
        found = self._find(self._entries, provider, model)
        if found is not None:
            return found, "bundled" if self.maintained else "table"
        if provider in LOCAL_PROVIDERS:
            return FREE, "local"
        return None

    def price(self, provider: str, model: str) -> Price | None:
        """The price of ``model`` at ``provider``, or None when it is unknown."""
        found = self.lookup(provider, model)
        return None if found is None else found[0]

    def quote(self, provider: str, model: str, usage: Usage) -> Quote:
        """What ``usage`` of ``model`` costs; an unknown price is a logged warning and a
        quote with ``known=False``."""
        found = self.lookup(provider, model)
        if found is None:
            if (provider, model) not in self._warned:
                self._warned.add((provider, model))
                _log.warning(
                    "no price is known for %s:%s: its calls are recorded with cost 0 and "
                    "cost_known=false; give one with prices= (or a spec's [prices])",
                    provider,
                    model,
                )
            return Quote(0.0, self.currency, False, "unknown")
        price, source = found
        return Quote(price.cost(usage), self.currency, True, source)

    def __contains__(self, model: object) -> bool:
        return model in self._entries or model in self._overrides


PricesLike = PriceTable | Mapping[str, Any] | str | Path | None
"""What ``prices=`` accepts: a table, a mapping (laid over the defaults), a TOML path."""


def _price(model: str, value: Any) -> Price:
    try:
        if isinstance(value, Price):
            return value
        if isinstance(value, Mapping):
            fields: Mapping[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
            read, write = fields.get("cache_read"), fields.get("cache_write")
            return Price(
                float(fields["input"]),
                float(fields["output"]),
                None if read is None else float(read),
                None if write is None else float(write),
            )
        inp, outp = value
        return Price(float(inp), float(outp))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"price for {model!r} must be {{input = ..., output = ...}} (per million tokens, "
            f"cache_read and cache_write optional), got {value!r}"
        ) from None


_MAINTAINED: dict[tuple[str, str], Price | None] = {}


def _maintained(provider: str, model: str) -> Price | None:
    """The ``genai-prices`` price of ``model`` at ``provider`` (cached per process); None
    when the package is not installed, does not know the model, or prices it in tiers."""
    key = (provider, model)
    if key in _MAINTAINED:
        return _MAINTAINED[key]
    found: Price | None = None
    try:
        from datetime import UTC, datetime

        from genai_prices.data_snapshot import get_snapshot
    except ImportError:
        _MAINTAINED[key] = None
        return None
    try:
        _, info = get_snapshot().find_provider_model(model, None, provider, None)
        prices: Any = info.get_prices(datetime.now(tz=UTC))
        values = [
            getattr(prices, name, None)
            for name in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
        ]
        if values[0] is not None and values[1] is not None:
            # A tiered price (by prompt length) is an object, not a number: use its base rate.
            plain = [_number(v) for v in values]
            if plain[0] is not None and plain[1] is not None:
                found = Price(plain[0], plain[1], plain[2], plain[3])
    except LookupError:
        found = None
    _MAINTAINED[key] = found
    return found


def _number(value: Any) -> float | None:
    if value is None:
        return None
    base: Any = getattr(value, "base", value)
    try:
        return float(base)
    except (TypeError, ValueError):
        return None


_default: PriceTable | None = None


def default_prices() -> PriceTable:
    """The maintained list (``genai-prices``, when installed) over the shipped
    ``telic/minds/prices.toml``."""
    global _default
    if _default is None:
        text = resources.files("telic.minds").joinpath("prices.toml").read_text(encoding="utf-8")
        bundled = PriceTable.from_toml(text)
        _default = PriceTable(bundled._entries, currency=bundled.currency, maintained=True)  # pyright: ignore[reportPrivateUsage]
    return _default


def price_table(prices: PricesLike) -> PriceTable:
    """Resolve ``prices=``: None is the default table; a mapping or a path is laid over it."""
    if prices is None:
        return default_prices()
    if isinstance(prices, PriceTable):
        return prices
    if isinstance(prices, str | Path):
        return default_prices().merged(PriceTable.load(prices))
    return default_prices().merged(PriceTable.from_mapping(prices))
