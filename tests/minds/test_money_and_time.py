"""Specs that cannot work are refused with one line: a budget currency with no rate for the
model prices, timeouts that leave no room for the retries. With a rate, costs are converted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from minds_helpers import RecordingLog

from telic.errors import ConfigError, SpecError
from telic.kernel import AgentSpec, Budget, RunConfig
from telic.minds import View, model_mind
from telic.minds.testing import ModelServer, Reply
from telic.spec import build_run

SPEC = """
goal = "g"
model = "openai:gpt-4.1-mini"
{extra}
[[agents]]
name = "a"
role = "planner"
"""


def _spec(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(extra=extra))
    return path


def test_a_budget_currency_without_a_rate_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    with pytest.raises(SpecError, match=r"prices are in USD but the budget is in CHF.*rates"):
        build_run(_spec(tmp_path, '[budget]\ncurrency = "CHF"\n'))
    built = build_run(_spec(tmp_path, '[budget]\ncurrency = "CHF"\nrates = { USD = 0.8 }\n'))
    assert built.config.budget.rates == {"USD": 0.8}
    asyncio.run(built.aclose())


def test_a_mind_in_another_currency_than_the_budget_is_refused_at_boot(
    server: ModelServer,
) -> None:
    async def build() -> None:
        mind = model_mind("openai:gpt-4.1-mini", base_url=server.openai_url)
        config = RunConfig("g", [AgentSpec("a", "planner", mind)], budget=Budget(currency="CHF"))
        try:
            with pytest.raises(ConfigError, match="counts model costs in USD"):
                config.validate()
        finally:
            await mind.aclose()

    asyncio.run(build())


def test_timeouts_must_leave_room_for_every_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    tight = "[policy]\nmind_timeout_s = 120\n[scheduler]\ntimeout_s = 60\nmax_retries = 4\n"
    with pytest.raises(SpecError, match=r"leaves time for 1 of the 5 tries.*at least 307\.5"):
        build_run(_spec(tmp_path, tight))
    roomy = "[policy]\nmind_timeout_s = 150\n[scheduler]\ntimeout_s = 45\nmax_retries = 2\n"
    asyncio.run(build_run(_spec(tmp_path, roomy)).aclose())


def test_costs_are_converted_and_cached_tokens_billed_at_the_cache_price(
    server: ModelServer, make_view: Callable[..., View]
) -> None:
    server.script(
        Reply.propose(
            {"action": "finish", "args": {}, "confidence": 1, "reason": "ok"},
            input_tokens=1_000_000,
            output_tokens=0,
            cached_tokens=1_000_000,
        )
    )
    log = RecordingLog()

    async def ask() -> None:
        mind = model_mind(
            "anthropic:claude-haiku-4-5",
            base_url=server.anthropic_url,
            currency="CHF",
            rates={"USD": 0.5},
        )
        try:
            await mind.propose(replace(make_view(), calls=log))
        finally:
            await mind.aclose()

    asyncio.run(ask())
    (call,) = log.called()
    # Anthropic: 1M uncached input at $1 plus 1M cache reads at $0.10, in CHF at 0.5
    assert call.input_tokens == 2_000_000
    assert call.cached_input_tokens == 1_000_000
    assert call.cost == pytest.approx((1.0 + 0.10) * 0.5)
    assert (call.currency, call.rate, call.cost_known) == ("CHF", 0.5, True)


def test_an_unknown_price_is_flagged_not_free(
    server: ModelServer, make_view: Callable[..., View], caplog: pytest.LogCaptureFixture
) -> None:
    log = RecordingLog()

    async def ask() -> None:
        mind = model_mind("openai:house-model-7", base_url=server.openai_url)
        try:
            await mind.propose(replace(make_view(), calls=log))
        finally:
            await mind.aclose()

    asyncio.run(ask())
    (call,) = log.called()
    assert call.cost_known is False
    assert call.cost == 0
    assert "no price is known for openai:house-model-7" in caplog.text


def test_o3_pro_o3_and_o3_mini_each_have_their_own_price() -> None:
    from telic.minds.pricing import PriceTable, default_prices

    bundled = PriceTable.load(Path(__file__).parents[2] / "src/telic/minds/prices.toml")
    for table in (default_prices(), bundled):
        prices = {m: table.price("openai", m) for m in ("o3-pro", "o3", "o3-mini")}
        assert prices["o3-pro"] is not None and prices["o3-pro"].input == 20.0
        assert prices["o3"] is not None and prices["o3"].input == 2.0
        assert prices["o3-mini"] is not None and prices["o3-mini"].input == 1.10
        assert table.price("openai", "o3-deep-thought") is None
