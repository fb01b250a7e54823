"""``telic mcp``: the official MCP client session over stdio against the real command."""

from __future__ import annotations

import asyncio
import getpass
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from telic.ledger import open_ledger

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

        text = (await client.call_tool("transcript", {"run": run_id})).content[0].text
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
        assert missing.is_error and "r-nope" in missing.content[0].text

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
