"""The server's commands through the CLI's real entry point: tokens, approvals, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.serve.conftest import HERE, bearer, in_process, tokens
from tests.serve.parking import LAUNCH_SPEC
from typer.testing import CliRunner

from telic.cli import app
from telic.errors import SpecError
from telic.ledger import open_ledger
from telic.spec import build_run

runner = CliRunner()


def test_tokens_are_created_once_listed_without_secrets_and_revoked(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    made = runner.invoke(app, ["token", "create", "ci", "--scope", "read", "--db", db, "--json"])
    assert made.exit_code == 0, made.output
    token = json.loads(made.stdout)["token"]
    assert token.startswith("telic_")
    listed = runner.invoke(app, ["token", "list", "--db", db, "--json"])
    assert json.loads(listed.stdout) == [{"name": "ci", "scopes": ["read"], "revoked": False}]
    with open_ledger(db) as ledger:
        stored = json.dumps([t.data for t in ledger.read("telic-access")])
    assert token not in stored  # only its hash
    twice = runner.invoke(app, ["token", "create", "ci", "--scope", "read", "--db", db])
    assert twice.exit_code == 1 and "exists" in twice.stderr
    bad = runner.invoke(app, ["token", "create", "x", "--scope", "root", "--db", db])
    assert bad.exit_code == 1 and "unknown scope 'root'" in bad.stderr
    assert bad.stderr.count("\n") == 1
    assert runner.invoke(app, ["token", "revoke", "ci", "--db", db]).exit_code == 0
    listed = runner.invoke(app, ["token", "list", "--db", db, "--json"])
    assert json.loads(listed.stdout)[0]["revoked"] is True


def test_serve_refuses_a_public_address_without_tokens_and_anonymous_reads_off_loopback(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "l.db")
    public = runner.invoke(app, ["serve", "--db", db, "--host", "0.0.0.0"])
    assert public.exit_code == 1 and "without tokens" in public.stderr
    anon = runner.invoke(app, ["serve", "--db", db, "--host", "0.0.0.0", "--anonymous-read"])
    assert anon.exit_code == 1 and "loopback" in anon.stderr


def test_deny_from_the_cli_rejects_a_parked_call_with_the_reason(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    t = tokens(db, ops="operate")
    seen: dict[str, object] = {}

    async def body(c: httpx.AsyncClient) -> None:
        import asyncio

        h = bearer(t["ops"])
        rid = (
            await c.post("/runs", json={"toml": LAUNCH_SPEC, "directory": str(HERE)}, headers=h)
        ).json()["id"]
        for _ in range(600):
            detail = (await c.get(f"/runs/{rid}", headers=h)).json()
            if detail["approvals"]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"run {rid} never parked on an approval")
        proposal = detail["approvals"][0]["proposal"]
        listed = runner.invoke(app, ["approvals", "--db", str(db), "--json"])
        assert json.loads(listed.stdout)[0]["proposal"] == proposal
        denied = runner.invoke(
            app,
            ["deny", rid, str(proposal), "--reason", "too risky", "--by", "carol", "--db", str(db)],
        )
        assert denied.exit_code == 0, denied.output
        again = runner.invoke(app, ["approve", rid, str(proposal), "--db", str(db)])
        assert again.exit_code == 1 and "no approval waiting" in again.stderr
        for _ in range(600):
            detail = (await c.get(f"/runs/{rid}", headers=h)).json()
            if detail["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        seen["run"] = rid

    in_process(db, body)
    with open_ledger(db) as ledger:
        trail = [(x.kind, x.data) for x in ledger.read(str(seen["run"]))]
    proposal = next(d["proposal"] for k, d in trail if k == "approval.requested")
    denied = [d for k, d in trail if k == "approval.denied"]
    assert denied == [{"proposal": proposal, "by": "carol", "reason": "too risky"}]
    rejected = [d for k, d in trail if k == "proposal.rejected"]
    assert [(d["check"], d["reason"]) for d in rejected] == [("approval", "too risky")]
    assert not any(k == "tool.started" for k, _ in trail)


def test_a_spec_that_marks_an_unknown_tool_high_impact_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(LAUNCH_SPEC.replace('high_impact = ["launch"]', 'high_impact = ["nuke"]'))
    with pytest.raises(SpecError, match="high_impact names tool 'nuke'"):
        build_run(spec, base_dir=HERE)
