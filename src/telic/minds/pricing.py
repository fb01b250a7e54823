"""Prices: what a model call costs, from a table that is data (``prices.toml``), not code.

A :class:`PriceTable` maps models to input and output prices per million tokens. The shipped
table holds list prices; pass your own (a mapping, a TOML file or a table) to override it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from telic.errors import ConfigError

__all__ = ["LOCAL_PROVIDERS", "Price", "PriceTable", "PricesLike", "default_prices", "price_table"]

LOCAL_PROVIDERS = frozenset({"ollama", "vllm", "lmstudio", "llamacpp"})
"""Providers that run on your own hardware: free unless the table says otherwise."""


@dataclass(frozen=True, slots=True)
class Price:
    """Prices per million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


FREE = Price(0.0, 0.0)


class PriceTable:
    """Prices by model; see ``prices.toml`` for the lookup order."""

    def __init__(self, prices: Mapping[str, Price], *, currency: str = "USD") -> None:
        self._prices = dict(prices)
        self.currency = currency

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, currency: str = "USD") -> PriceTable:
        """From ``{"gpt-4.1": {"input": 2.0, "output": 8.0}}`` or ``{"gpt-4.1": (2.0, 8.0)}``."""
        out: dict[str, Price] = {}
        for model, value in data.items():
            out[model] = _price(model, value)
        return cls(out, currency=currency)

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
        """This table with ``other``'s entries on top."""
        return PriceTable({**self._prices, **other._prices}, currency=other.currency)

    def price(self, provider: str, model: str) -> Price:
        """The price of ``model`` at ``provider`` (0 for an unknown or local model)."""
        exact = self._prices.get(f"{provider}:{model}") or self._prices.get(model)
        if exact is not None:
            return exact
        if provider in LOCAL_PROVIDERS:
            return FREE
        best = ""
        for name in self._prices:
            if ":" not in name and model.startswith(name) and len(name) > len(best):
                best = name
        return self._prices[best] if best else FREE

    def cost(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> float:
        return self.price(provider, model).cost(input_tokens, output_tokens)

    def __contains__(self, model: object) -> bool:
        return model in self._prices


PricesLike = PriceTable | Mapping[str, Any] | str | Path | None
"""What ``prices=`` accepts: a table, a mapping (merged over the defaults), a TOML path."""


def _price(model: str, value: Any) -> Price:
    try:
        if isinstance(value, Price):
            return value
        if isinstance(value, Mapping):
            return Price(float(value["input"]), float(value["output"]))  # pyright: ignore[reportUnknownArgumentType]
        inp, outp = value
        return Price(float(inp), float(outp))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"price for {model!r} must be {{input = ..., output = ...}} (per million tokens), "
            f"got {value!r}"
        ) from None


_default: PriceTable | None = None


def default_prices() -> PriceTable:
    """The shipped table (``telic/minds/prices.toml``)."""
    global _default
    if _default is None:
        text = resources.files("telic.minds").joinpath("prices.toml").read_text(encoding="utf-8")
        _default = PriceTable.from_toml(text)
    return _default


def price_table(prices: PricesLike) -> PriceTable:
    """Resolve ``prices=``: None is the shipped table; a mapping or a path is laid over it."""
    if prices is None:
        return default_prices()
    if isinstance(prices, PriceTable):
        return prices
    if isinstance(prices, str | Path):
        return default_prices().merged(PriceTable.load(prices))
    return default_prices().merged(PriceTable.from_mapping(prices))
