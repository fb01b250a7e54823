"""What a new user meets: base URLs in every form, Ollama's own OLLAMA_HOST, an endpoint
that is not running (one line, in seconds, through the real ``telic run``), a missing key
that names the environment variable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from telic.errors import EndpointUnreachable, MissingCredentials
from telic.minds.providers import check_endpoint, resolve_provider
from telic.minds.testing import ModelServer


def test_base_urls_are_accepted_with_or_without_v1() -> None:
    env: dict[str, str] = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
    for url in ("http://127.0.0.1:8000", "http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"):
        assert resolve_provider("vllm", base_url=url, env=env).base_url == (
            "http://127.0.0.1:8000/v1"
        )
    assert resolve_provider("openai", base_url="http://h:1/openai/v1", env=env).base_url == (
        "http://h:1/openai/v1"
    )
    for url in ("http://127.0.0.1:9000", "http://127.0.0.1:9000/v1", "http://127.0.0.1:9000/v1/"):
        got = resolve_provider("anthropic", env={**env, "ANTHROPIC_BASE_URL": url})
        assert got.base_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1:11500", "http://127.0.0.1:11500/v1"),
        ("0.0.0.0", "http://127.0.0.1:11434/v1"),
        ("http://gpu-box:11434", "http://gpu-box:11434/v1"),
        ("https://ollama.example.org", "https://ollama.example.org:11434/v1"),
    ],
)
def test_ollama_host_is_read(host: str, url: str) -> None:
    assert resolve_provider("ollama", env={"OLLAMA_HOST": host}).base_url == url
    # its own base URL variable still wins
    both = {"OLLAMA_HOST": host, "OLLAMA_BASE_URL": "http://127.0.0.1:1/v1"}
    assert resolve_provider("ollama", env=both).base_url == "http://127.0.0.1:1/v1"


def test_a_missing_key_names_the_environment_variable() -> None:
    with pytest.raises(MissingCredentials, match=r"set OPENAI_API_KEY in the environment"):
        resolve_provider("openai", env={})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_endpoint_check_tells_a_running_server_from_none() -> None:
    with ModelServer() as server:
        check_endpoint(resolve_provider("ollama", base_url=server.openai_url))
    port = _free_port()
    with pytest.raises(EndpointUnreachable, match=r"is Ollama running\?"):
        check_endpoint(resolve_provider("ollama", env={"OLLAMA_HOST": f"127.0.0.1:{port}"}))


def test_telic_run_without_ollama_says_so_in_one_line(tmp_path: Path) -> None:
    port = _free_port()
    spec = tmp_path / "spec.toml"
    spec.write_text('goal = "g"\n[[agents]]\nname = "a"\nrole = "planner"\n')
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}"}
    env.pop("OLLAMA_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "telic", "run", str(spec), "--model", "ollama:qwen3"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1 (is Ollama running?" in lines[0]
    assert not (tmp_path / ".telic" / "ledger.db").exists()  # no run was booted
