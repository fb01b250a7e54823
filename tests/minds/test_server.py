"""The local model server itself: its limits, and running it on its own."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable

import pytest

from telic.errors import ProviderError
from telic.minds import Limits, View, model_mind
from telic.minds.testing import ModelServer


def test_the_server_refuses_requests_over_its_rate_limit(make_view: Callable[..., View]) -> None:
    async def ask(url: str) -> str:
        async with model_mind("openai:m", base_url=url, scheduler=Limits(max_retries=0)) as mind:
            return (await mind.propose(make_view())).action

    with ModelServer(requests_per_minute=2) as server:
        assert asyncio.run(ask(server.openai_url)) == "finish"
        assert asyncio.run(ask(server.openai_url)) == "finish"
        with pytest.raises(ProviderError, match="429"):
            asyncio.run(ask(server.openai_url))
        assert server.rejected == 1
        assert len(server.requests) == 2  # a refused request is not served


def test_the_server_runs_on_its_own_and_reports_its_stats(make_view: Callable[..., View]) -> None:
    cmd = [sys.executable, "-m", "telic.minds.testing", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        openai_line = proc.stdout.readline()
        anthropic_line = proc.stdout.readline()
        assert openai_line.startswith("OpenAI base URL:")
        assert anthropic_line.startswith("Anthropic base URL:")
        openai_url = openai_line.split()[-1]
        anthropic_url = anthropic_line.split()[-1]

        async def ask() -> list[str]:
            actions: list[str] = []
            for model, url in (("openai:m", openai_url), ("anthropic:m", anthropic_url)):
                async with model_mind(model, base_url=url) as mind:
                    actions.append((await mind.propose(make_view())).action)
            return actions

        assert asyncio.run(ask()) == ["finish", "finish"]
        with urllib.request.urlopen(f"{anthropic_url}/stats") as response:
            stats = json.load(response)
        assert stats["requests"] == 2
        assert stats["rejected"] == 0
        assert len(stats["handled_s"]) == 2
    finally:
        proc.terminate()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
