"""Model strings, providers, keys, extras, the global switch, prices and role prompts."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import telic.minds
from telic.errors import (
    ConfigError,
    MissingCredentials,
    MissingExtra,
    ModelRequestsForbidden,
    UnknownProvider,
)
from telic.minds import (
    PRESETS,
    Limits,
    Price,
    PriceTable,
    Scheduler,
    View,
    default_prices,
    model_mind,
    parse_model,
    resolve_provider,
    shared_scheduler,
)
from telic.minds.anthropic import AnthropicMind
from telic.minds.openai import OpenAIMind
from telic.minds.pricing import Usage
from telic.minds.providers import is_loopback
from telic.minds.testing import ModelServer
from telic.prompts import ROLES, protocol_prompt, role_prompt, shipped_prompt

# -- model strings and providers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider", "name", "wire"),
    [
        ("openai:gpt-4.1-mini", "openai", "gpt-4.1-mini", "openai"),
        ("anthropic:claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6", "anthropic"),
        ("ollama:qwen3", "ollama", "qwen3", "openai"),
        (
            "vllm:meta-llama/Llama-3.1-8B-Instruct",
            "vllm",
            "meta-llama/Llama-3.1-8B-Instruct",
            "openai",
        ),
        ("lmstudio:qwen2.5-7b-instruct", "lmstudio", "qwen2.5-7b-instruct", "openai"),
        ("llamacpp:local", "llamacpp", "local", "openai"),
        ("ollama:qwen3:8b", "ollama", "qwen3:8b", "openai"),  # the model name may hold ':'
    ],
)
def test_model_strings_name_a_provider_and_a_model(
    model: str, provider: str, name: str, wire: str
) -> None:
    preset, got = parse_model(model)
    assert (preset.name, got, preset.wire) == (provider, name, wire)


@pytest.mark.parametrize("model", ["gpt-4.1", "mistral:large", "openai:", ":gpt-4", ""])
def test_an_unknown_or_incomplete_model_string_is_refused(model: str) -> None:
    with pytest.raises(UnknownProvider, match="use one of: anthropic, llamacpp, lmstudio"):
        parse_model(model)


def test_keys_come_from_the_environment_unless_given() -> None:
    env = {"OPENAI_API_KEY": "sk-env", "ANTHROPIC_API_KEY": "ak-env"}
    assert resolve_provider("openai", env=env).api_key == "sk-env"
    assert resolve_provider("openai", env=env, api_key="sk-arg").api_key == "sk-arg"
    assert resolve_provider("anthropic", env=env).api_key == "ak-env"
    assert resolve_provider("openai", env=env).base_url == "https://api.openai.com/v1"
    assert resolve_provider("anthropic", env=env).base_url == "https://api.anthropic.com"


def test_a_missing_key_names_the_variable_to_set() -> None:
    with pytest.raises(MissingCredentials, match="OPENAI_API_KEY"):
        resolve_provider("openai", env={})
    with pytest.raises(MissingCredentials, match="ANTHROPIC_API_KEY"):
        resolve_provider("anthropic", env={})


def test_local_presets_need_no_key_and_have_base_urls() -> None:
    urls = {
        "ollama": "http://localhost:11434/v1",
        "vllm": "http://localhost:8000/v1",
        "lmstudio": "http://localhost:1234/v1",
        "llamacpp": "http://localhost:8080/v1",
    }
    for name, url in urls.items():
        provider = resolve_provider(name, env={})
        assert provider.base_url == url
        assert provider.local
        assert provider.api_key  # the SDK needs one; any will do
    assert resolve_provider("vllm", env={"VLLM_API_KEY": "v"}).api_key == "v"


def test_base_urls_can_be_overridden_by_argument_or_environment() -> None:
    env = {"OLLAMA_BASE_URL": "http://gpu-box:11434/v1/"}
    assert resolve_provider("ollama", env=env).base_url == "http://gpu-box:11434/v1"
    got = resolve_provider("ollama", env=env, base_url="http://127.0.0.1:9/v1")
    assert got.base_url == "http://127.0.0.1:9/v1"
    # a loopback endpoint for a keyed provider needs no key (a local proxy or test server)
    assert resolve_provider("openai", env={}, base_url="http://localhost:4000/v1").local


def test_loopback_detection() -> None:
    for url in (
        "http://127.0.0.1:8/v1",
        "http://localhost/v1",
        "http://[::1]:80",
        "http://127.8.0.1",
    ):
        assert is_loopback(url), url
    for url in (
        "https://api.openai.com/v1",
        "http://10.0.0.1",
        "http://localhost.evil.com",
        "nonsense",
    ):
        assert not is_loopback(url), url


def test_model_mind_builds_the_adapter_of_the_wire_format(server: ModelServer) -> None:
    async def build() -> list[object]:
        minds = [
            model_mind("openai:gpt-4.1-mini", base_url=server.openai_url),
            model_mind("ollama:qwen3", base_url=server.openai_url),
            model_mind("anthropic:claude-haiku-4-5", base_url=server.anthropic_url),
        ]
        kinds: list[object] = [type(m) for m in minds]
        for m in minds:
            await m.aclose()
        return kinds

    assert asyncio.run(build()) == [OpenAIMind, OpenAIMind, AnthropicMind]


def test_model_mind_reports_configuration_errors_early() -> None:
    with pytest.raises(UnknownProvider):
        model_mind("gemini:pro")
    with pytest.raises(MissingCredentials):
        model_mind("openai:gpt-4.1", base_url="https://api.openai.com/v1", api_key="")
    with pytest.raises(ConfigError, match="structured"):
        model_mind("ollama:qwen3", structured="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scheduler limits"):
        model_mind("ollama:qwen3", scheduler={"max_concurency": 2})


@pytest.mark.parametrize(
    ("model", "extra"), [("openai:gpt-4.1", "openai"), ("anthropic:claude-haiku-4-5", "anthropic")]
)
def test_a_missing_sdk_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, model: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, extra, None)  # as if the package were not installed
    with pytest.raises(MissingExtra, match=rf"pip install 'telic\[{extra}\]'") as info:
        model_mind(model, api_key="k")
    assert info.value.extra == extra


# -- the global switch --------------------------------------------------------------------


def test_the_test_session_forbids_model_requests() -> None:
    assert telic.minds.ALLOW_MODEL_REQUESTS is False


def test_a_real_endpoint_is_refused_while_requests_are_forbidden(
    make_view: Callable[..., View],
) -> None:
    async def attempt(model: str) -> None:
        async with model_mind(model, api_key="k", scheduler=Limits(max_retries=0)) as mind:
            await mind.propose(make_view())

    for model in ("openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5"):
        with pytest.raises(ModelRequestsForbidden, match="ALLOW_MODEL_REQUESTS"):
            asyncio.run(attempt(model))


def test_the_switch_is_read_at_request_time(
    server: ModelServer, monkeypatch: pytest.MonkeyPatch, make_view: Callable[..., View]
) -> None:
    # 0.0.0.0 is not a loopback address, yet on Linux a connection to it reaches this host:
    # a "remote" endpoint that needs no network
    url = server.openai_url.replace("127.0.0.1", "0.0.0.0")
    assert not is_loopback(url)

    async def ask() -> str:
        async with model_mind("openai:gpt-4.1-mini", base_url=url, api_key="k") as mind:
            return (await mind.propose(make_view())).action

    with pytest.raises(ModelRequestsForbidden):
        asyncio.run(ask())
    assert server.requests == []
    monkeypatch.setattr(telic.minds, "ALLOW_MODEL_REQUESTS", True)
    assert asyncio.run(ask()) == "finish"
    assert len(server.requests) == 1


# -- schedulers ---------------------------------------------------------------------------


def test_minds_on_one_endpoint_share_a_scheduler(server: ModelServer) -> None:
    async def build() -> tuple[Scheduler, ...]:
        a = model_mind("openai:m1", base_url=server.openai_url)
        b = model_mind("openai:m2", base_url=server.openai_url)
        c = model_mind("anthropic:m3", base_url=server.anthropic_url)
        own = Scheduler(Limits(max_concurrent=1))
        d = model_mind("openai:m1", base_url=server.openai_url, scheduler=own)
        e = model_mind("openai:m1", base_url=server.openai_url, scheduler={"max_concurrent": 3})
        for m in (a, b, c, d, e):
            await m.aclose()
        return a.scheduler, b.scheduler, c.scheduler, d.scheduler, own, e.scheduler

    a, b, c, d, own, e = asyncio.run(build())
    assert a is b
    assert a is not c
    assert d is own
    assert e.limits.max_concurrent == 3
    assert shared_scheduler(resolve_provider("openai", base_url=server.openai_url)) is e
    assert PRESETS["ollama"].max_concurrent == 4


# -- prices -------------------------------------------------------------------------------


def test_prices_come_from_the_maintained_list_then_the_shipped_table() -> None:
    prices = default_prices()
    assert prices.price("openai", "gpt-4.1-mini") == Price(0.40, 1.60, 0.10)
    assert prices.price("openai", "gpt-4.1-mini-2025-04-14") == Price(0.40, 1.60, 0.10)
    assert prices.price("ollama", "gpt-4.1-mini-local-copy") == Price(0.0, 0.0)
    assert prices.price("openai", "unknown-model") is None
    assert prices.quote("openai", "gpt-4.1", Usage(1_000_000, 500_000)).cost == pytest.approx(6.0)


def test_prices_can_be_overridden(tmp_path: Path, server: ModelServer) -> None:
    custom = tmp_path / "prices.toml"
    custom.write_text('currency = "USD"\n[models."ollama:qwen3"]\ninput = 0.1\noutput = 0.2\n')
    table = PriceTable.load(custom)
    assert table.price("ollama", "qwen3") == Price(0.1, 0.2)
    assert table.currency == "USD"
    with pytest.raises(ConfigError, match="CHF"):
        default_prices().merged(PriceTable.from_mapping({"m": (1, 2)}, currency="CHF"))
    with pytest.raises(ConfigError, match="per million tokens"):
        PriceTable.from_mapping({"m": {"input": "cheap"}})
    with pytest.raises(ConfigError, match="not valid TOML"):
        PriceTable.from_toml("models = [")

    async def build() -> list[PriceTable]:
        minds = [
            model_mind("openai:gpt-4.1", base_url=server.openai_url, prices={"gpt-4.1": (1, 2)}),
            model_mind("ollama:qwen3", base_url=server.openai_url, prices=custom),
        ]
        for m in minds:
            await m.aclose()
        return [m.prices for m in minds]

    over_openai, over_ollama = asyncio.run(build())
    assert over_openai.price("openai", "gpt-4.1") == Price(1.0, 2.0)
    assert over_openai.price("openai", "gpt-4o") == Price(2.5, 10.0, 1.25)  # the rest stays
    assert over_ollama.price("ollama", "qwen3") == Price(0.1, 0.2)


# -- role prompts -------------------------------------------------------------------------


def test_every_reference_role_ships_a_prompt() -> None:
    assert ROLES == ("budgeter", "coordinator", "planner", "researcher", "skeptic", "verifier")
    for role in ROLES:
        text = role_prompt(role)
        assert text.startswith(f"# Role: {role}\n")
        assert f"**{role}**" in text
        assert shipped_prompt(role) is not None
    assert "`propose`" in protocol_prompt()
    assert "**explorer**" in role_prompt("explorer")


def test_an_unknown_role_gets_the_template_without_its_comments() -> None:
    text = role_prompt("translator")
    assert text.startswith("# Role: translator")
    assert "You are the **translator**" in text
    assert "<!--" not in text
    assert "$role" not in text


def test_prompts_can_be_overridden_from_a_directory_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine"
    env = tmp_path / "env"
    mine.mkdir()
    env.mkdir()
    (mine / "planner.md").write_text("# Role: planner\nPlan tersely. <!-- note -->\n")
    (env / "planner.md").write_text("from the environment\n")
    (env / "skeptic.md").write_text("doubt everything\n")
    monkeypatch.setenv("TELIC_PROMPTS", str(env))
    assert role_prompt("planner", directory=mine) == "# Role: planner\nPlan tersely.\n"
    assert role_prompt("planner") == "from the environment\n"
    assert role_prompt("skeptic", directory=mine) == "doubt everything\n"
    assert "**verifier**" in role_prompt("verifier", directory=mine)  # falls back to the package
    with pytest.raises(ConfigError, match="cannot name a prompt file"):
        role_prompt("../etc/passwd")
