"""``telic mcp``: the official MCP client session over stdio against the real command."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from telic.access import ACCESS_RUN
from telic.errors import McpServerUnavailable, SpecError
from telic.ledger import open_ledger
from telic.mcp import McpServer, McpServerSpec
from telic.spec import build_run

ROOT = Path(__file__).resolve().parents[2]


def _demo(tmp_path: Path) -> tuple[str, str]:
    db = str(tmp_path / "ref.db")
    proc = subprocess.run(
        [sys.executable, "-m", "telic", "demo", "--instant", "--db", db, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return db, open_ledger(db).runs()[0].id


def _params(db: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "telic", "mcp", "--db", db], cwd=str(ROOT)
    )


def _text(result: Any) -> str:
    """The text of a tool result's first content block."""
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text


def _json(result: Any) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        value = result.structured_content
        return value.get("result", value) if set(value) == {"result"} else value
    return json.loads(result.content[0].text)


def test_telic_mcp_answers_a_real_client(tmp_path: Path) -> None:
    db, run_id = _demo(tmp_path)
    asyncio.run(_session(db, run_id))
    forks = [r for r in open_ledger(db).runs() if r.parent == run_id]
    assert len(forks) == 1
    ledger = open_ledger(db)
    forked = next(t for t in ledger.read(forks[0].id) if t.kind == "run.forked")
    resumed = next(t for t in ledger.read(forks[0].id) if t.kind == "run.resumed")
    who = f"{getpass.getuser()}@"
    assert forked.data["by"].startswith(who) and resumed.data["by"].startswith(who)
    assert ledger.state_at(forks[0].id)["status"] == "completed"


async def _session(db: str, run_id: str) -> None:
    async with Client(_params(db)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {
            "list_runs",
            "transcript",
            "trace",
            "state",
            "diff",
            "verify",
            "fork",
            "resume",
        } <= names

        runs = _json(await client.call_tool("list_runs", {}))
        assert [r["id"] for r in runs] == [run_id]
        assert runs[0]["status"] == "completed"

        text = _text(await client.call_tool("transcript", {"run": run_id}))
        assert text.startswith("BOOT:") and "hallucination detected" in text

        page = _json(await client.call_tool("trace", {"run": run_id, "from_seq": 1, "limit": 10}))
        assert [t["seq"] for t in page["transitions"]] == list(range(1, 11))
        assert page["next"] == 11
        last = _json(await client.call_tool("trace", {"run": run_id, "from_seq": page["head"]}))
        assert last["next"] is None

        s = _json(await client.call_tool("state", {"run": run_id, "at": 30}))
        assert s["seq"] == 30 and s["tick"] == 1
        changes = _json(await client.call_tool("diff", {"run": run_id, "seq_a": 30, "seq_b": 54}))
        assert any(c["path"].startswith("plan.hotel") for c in changes)

        v = _json(await client.call_tool("verify", {"run": run_id}))
        assert v["ok"] and v["checked"] == page["head"]

        bad = await client.call_tool("trace", {"run": run_id, "from_seq": 10_000})
        assert bad.is_error
        missing = await client.call_tool("state", {"run": "r-nope"})
        assert missing.is_error and "r-nope" in _text(missing)

        forked = _json(await client.call_tool("fork", {"run": run_id, "at": 77}))
        assert forked["parent"] == {"run": run_id, "seq": 77}
        done = _json(await client.call_tool("resume", {"run": forked["id"]}))
        assert done["status"] == "completed"

        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "telic://runs" in resources
        read = await client.read_resource(f"telic://runs/{run_id}/transcript")
        assert read.contents[0].text.startswith("BOOT:")  # type: ignore[union-attr]


def test_telic_mcp_without_a_ledger_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "telic", "mcp", "--db", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no ledger" in proc.stderr


# -- over streamable HTTP, mounted in `telic serve` -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(db: str, name: str, scope: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "telic", "token", "create", name, "--scope", scope, "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@contextlib.contextmanager
def _telic_serve(db: str, cwd: Path) -> Generator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = cwd / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "telic", "serve", "--db", db, "--port", str(port)],
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "telic serve did not answer /health"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@contextlib.asynccontextmanager
async def _http_client(url: str, token: str) -> AsyncGenerator[Client]:
    """The SDK's client over streamable HTTP, its requests carrying ``token``."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


def test_telic_serve_answers_mcp_over_streamable_http_with_scoped_tokens(tmp_path: Path) -> None:
    """The SDK's streamable HTTP client against a real ``telic serve`` on loopback: a read
    token reads and may not fork; an operate token forks and resumes, recorded as itself;
    no token is a 401 with a JSON error."""
    db, run_id = _demo(tmp_path)
    reader = _token(db, "reader", "read")
    operator = _token(db, "ops", "operate")
    with _telic_serve(db, tmp_path) as url:
        refused = httpx.post(
            f"{url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthenticated"
        assert "telic token create" in refused.json()["detail"]
        forked_id = asyncio.run(_over_http(url, reader, operator, run_id))
    ledger = open_ledger(db)
    forked = next(t for t in ledger.read(forked_id) if t.kind == "run.forked")
    resumed = next(t for t in ledger.read(forked_id) if t.kind == "run.resumed")
    assert forked.data["by"] == resumed.data["by"] == "ops via mcp"
    assert ledger.state_at(forked_id)["status"] == "completed"
    audit = [
        (t.data["identity"], t.data["path"], t.data["status"], t.data["run"])
        for t in ledger.read(ACCESS_RUN)
        if t.kind == "api.called"
    ]
    assert audit == [
        ("reader", "/mcp/tools/fork", 403, run_id),
        ("ops", "/mcp/tools/fork", 200, run_id),
        ("ops", "/mcp/tools/resume", 200, forked_id),
    ]


async def _over_http(url: str, reader: str, operator: str, run_id: str) -> str:
    async with _http_client(url, reader) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"list_runs", "transcript", "trace", "state", "fork", "resume"} <= names
        runs = _json(await client.call_tool("list_runs", {}))
        assert run_id in [r["id"] for r in runs]
        text = _text(await client.call_tool("transcript", {"run": run_id}))
        assert text.startswith("BOOT:")
        read = await client.read_resource("telic://runs")
        assert run_id in read.contents[0].text  # type: ignore[union-attr]
        denied = await client.call_tool("fork", {"run": run_id, "at": 77})
        assert denied.is_error
        assert "'operate'" in _text(denied)
    async with _http_client(url, operator) as client:
        forked = _json(await client.call_tool("fork", {"run": run_id, "at": 77}))
        assert forked["by"] == "ops via mcp"
        done = _json(await client.call_tool("resume", {"run": forked["id"]}))
        assert done["status"] == "completed"
        return str(forked["id"])


def test_an_mcp_server_behind_a_token_is_reached_with_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """telic as an MCP *client* of a server that wants a token (here telic serve's own
    ``/mcp``): ``headers`` on the server spec, and in a spec ``${NAME}`` from the
    environment; without them the server is unavailable, with a typed error."""
    db, run_id = _demo(tmp_path)
    reader = _token(db, "reader", "read")
    with _telic_serve(db, tmp_path) as url:
        asyncio.run(_with_headers(f"{url}/mcp", reader, run_id))
        shutil.copy(ROOT / "examples" / "mcp_minds.py", tmp_path / "mcp_minds.py")
        spec = tmp_path / "client.toml"
        spec.write_text(
            'goal = "read runs"\n'
            "[[agents]]\n"
            'name = "reader"\n'
            'role = "researcher"\n'
            'mind = "mcp_minds:reader"\n'
            "[[mcp_servers]]\n"
            'name = "telic"\n'
            f'url = "{url}/mcp"\n'
            'tools = ["list_runs"]\n'
            'headers = { Authorization = "Bearer ${TELIC_TEST_TOKEN}" }\n'
        )
        with pytest.raises(SpecError, match=r"\$\{TELIC_TEST_TOKEN\}.*not set"):
            build_run(spec)
        monkeypatch.setenv("TELIC_TEST_TOKEN", reader)
        built = build_run(spec)
        try:
            assert "list_runs" in {t.name for t in built.config.tools}
        finally:
            asyncio.run(built.aclose())


async def _with_headers(url: str, token: str, run_id: str) -> None:
    spec = McpServerSpec("telic", url=url, headers={"Authorization": f"Bearer {token}"})
    async with McpServer(spec) as server:
        runs = await server.call("list_runs", {})
        assert run_id in json.dumps(runs)
    async with McpServer(McpServerSpec("telic", url=url, connect_timeout_s=10)) as bare:
        with pytest.raises(McpServerUnavailable, match="telic"):
            await bare.list_tools()
