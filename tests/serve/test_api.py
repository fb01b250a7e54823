"""The API through a real HTTP client (httpx on the ASGI app, lifespan included): reading,
access control, bad input, and what mutating requests leave in the ledger."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serve.conftest import HERE, bearer, in_process, tokens
from tests.serve.parking import LAUNCH_SPEC, NAP_SPEC
from typer.testing import CliRunner

from telic.cli import app as cli_app
from telic.clock import VirtualClock
from telic.kernel import AgentSpec, Kernel, RunConfig, Team
from telic.ledger import open_ledger
from telic.minds import ScriptedMind
from telic.proposal import Proposal


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    db = tmp_path / "ledger.db"
    result = CliRunner().invoke(
        cli_app, ["demo", "--instant", "--db", str(db), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    return db


def _run_id(db: Path) -> str:
    with open_ledger(db) as ledger:
        return next(r.id for r in ledger.runs() if r.head > 0 and not r.id.startswith("telic-"))


async def _until(client: httpx.AsyncClient, path: str, headers: dict[str, str], pred: Any) -> Any:
    body: Any = None
    for _ in range(600):
        body = (await client.get(path, headers=headers)).json()
        if pred(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never satisfied the condition: {body}")


def test_reading_a_run_pages_filters_and_matches_the_ledger(demo_db: Path) -> None:
    t = tokens(demo_db, reader="read")
    rid = _run_id(demo_db)
    with open_ledger(demo_db) as ledger:
        head = ledger.run(rid).head
        tools = [x.seq for x in ledger.read(rid) if x.kind.startswith("tool.")]
        state_40 = ledger.state_at(rid, 40)

    async def body(c: httpx.AsyncClient) -> None:
        h = bearer(t["reader"])
        runs = (await c.get("/runs", headers=h)).json()
        assert [r["id"] for r in runs["items"]] == [rid] and runs["total"] == 1
        assert (await c.get("/runs?status=running", headers=h)).json()["items"] == []
        detail = (await c.get(f"/runs/{rid}", headers=h)).json()
        assert (detail["status"], detail["head"], detail["hosted"]) == ("completed", head, False)
        assert [a["name"] for a in detail["agents"]][:2] == ["researcher", "planner"]
        assert detail["budget"]["ticks"] == 12 and detail["spent"]["ticks"] == 6
        # pages of 50 cover every seq once, in order
        seqs: list[int] = []
        start: int | None = 1
        while start is not None:
            page = (await c.get(f"/runs/{rid}/transitions?from={start}&limit=50", headers=h)).json()
            seqs += [x["seq"] for x in page["items"]]
            start = page["next_from"]
        assert seqs == list(range(1, head + 1))
        page = (await c.get(f"/runs/{rid}/transitions?kind=tool.*&limit=1000", headers=h)).json()
        assert [x["seq"] for x in page["items"]] == tools
        page = (await c.get(f"/runs/{rid}/transitions?agent=skeptic&limit=3", headers=h)).json()
        assert {x["agent"] for x in page["items"]} == {"skeptic"} and len(page["items"]) == 3
        state = (await c.get(f"/runs/{rid}/state?at=40", headers=h)).json()
        assert state["seq"] == 40 and state["state"] == json.loads(json.dumps(state_40))
        diff = (await c.get(f"/runs/{rid}/diff?a=40&b=41", headers=h)).json()
        assert diff and all({"path", "before", "after"} <= d.keys() for d in diff)
        lines = (await c.get(f"/runs/{rid}/transcript", headers=h)).json()["lines"]
        assert lines[0].startswith("BOOT:") and lines[-1].startswith("DONE:")
        verified = (await c.get(f"/runs/{rid}/verify", headers=h)).json()
        assert verified["ok"] and verified["checked"] == head
        kinds = {k["kind"]: k for k in (await c.get("/kinds", headers=h)).json()}
        assert (
            "approval.granted" in kinds
            and "reason" in kinds["approval.granted"]["schema"]["properties"]
        )
        schema = (await c.get("/api/openapi.json")).json()
        assert schema["components"]["schemas"]["ApprovalGranted"]["x-kind"] == "approval.granted"

    in_process(demo_db, body)


def test_bad_input_gets_a_clear_4xx_never_a_500(demo_db: Path) -> None:
    t = tokens(demo_db, ops="operate")
    rid = _run_id(demo_db)

    async def body(c: httpx.AsyncClient) -> None:
        h = bearer(t["ops"])
        cases: list[tuple[httpx.Response, int, str]] = [
            (await c.get("/runs/nope", headers=h), 404, "not_found"),
            (await c.get(f"/runs/{rid}/state?at=100000", headers=h), 400, "bad_request"),
            (await c.get(f"/runs/{rid}/transitions/0", headers=h), 400, "bad_request"),
            (await c.get(f"/runs/{rid}/transitions?from=x", headers=h), 400, "bad_request"),
            (await c.get(f"/runs/{rid}/events?from=99999", headers=h), 400, "bad_request"),
            (
                await c.post(
                    f"/runs/{rid}/fork",
                    content=b'{"at": 3',
                    headers={**h, "content-type": "application/json"},
                ),
                400,
                "bad_request",
            ),
            (await c.post(f"/runs/{rid}/fork", json={"at": -1}, headers=h), 400, "bad_request"),
            (await c.post(f"/runs/{rid}/fork", json={"at": 10**6}, headers=h), 400, "bad_request"),
            (
                await c.post(f"/runs/{rid}/fork", json={"at": 1, "x": 2}, headers=h),
                400,
                "bad_request",
            ),
            (
                await c.post("/runs", content=b"x" * (2 * 1024 * 1024), headers=h),
                413,
                "too_large",
            ),
            (await c.post("/runs", json={"toml": "goal = 1"}, headers=h), 400, "bad_request"),
            (await c.post(f"/runs/{rid}/stop", json={}, headers=h), 409, "conflict"),
            (await c.post(f"/runs/{rid}/resume", json={}, headers=h), 409, "conflict"),
            (await c.get("/runs"), 401, "unauthenticated"),
            (await c.get("/runs", headers=bearer("telic_wrong")), 401, "unauthenticated"),
            (await c.get("/runs", headers={"Authorization": "Basic x"}), 401, "unauthenticated"),
        ]
        for response, status, code in cases:
            assert response.status_code == status, (response.request.url, response.text)
            body = response.json()
            assert body["error"] == code and body["detail"], body
            assert "Traceback" not in response.text

    in_process(demo_db, body)


def test_scopes_are_enforced_and_mutations_are_recorded_with_who_made_them(
    demo_db: Path,
) -> None:
    t = tokens(demo_db, reader="read", ops="operate", admin="admin")
    rid = _run_id(demo_db)

    async def body(c: httpx.AsyncClient) -> None:
        forbidden = await c.post(f"/runs/{rid}/fork", json={"at": 3}, headers=bearer(t["reader"]))
        assert forbidden.status_code == 403 and "operate" in forbidden.json()["detail"]
        fork = await c.post(f"/runs/{rid}/fork", json={"at": 3}, headers=bearer(t["ops"]))
        assert fork.status_code == 201 and fork.json()["parent"] == {"run": rid, "seq": 3}
        denied = await c.post(
            f"/runs/{rid}/approvals/5", json={"decision": "approve"}, headers=bearer(t["ops"])
        )
        assert denied.status_code == 403
        missing = await c.post(
            f"/runs/{rid}/approvals/5", json={"decision": "approve"}, headers=bearer(t["admin"])
        )
        assert missing.status_code == 409 and "no approval waiting" in missing.json()["detail"]
        # a token revoked elsewhere (the CLI) stops working at once
        with open_ledger(demo_db) as ledger:
            from telic.access import TokenStore

            TokenStore(ledger).revoke("reader", by="test")
        gone = await c.get("/runs", headers=bearer(t["reader"]))
        assert gone.status_code == 401 and "revoked" in gone.json()["detail"]

    in_process(demo_db, body)
    with open_ledger(demo_db) as ledger:
        calls = [x.data for x in ledger.read("telic-access") if x.kind == "api.called"]
    assert [(c["identity"], c["status"]) for c in calls] == [
        ("reader", 403),
        ("ops", 201),
        ("ops", 403),
        ("admin", 409),
    ]
    assert all(c["run"] == rid and c["method"] == "POST" for c in calls)


def test_anonymous_read_on_loopback_reads_but_never_writes(demo_db: Path) -> None:
    rid = _run_id(demo_db)

    async def body(c: httpx.AsyncClient) -> None:
        assert (await c.get(f"/runs/{rid}")).status_code == 200
        assert (await c.post(f"/runs/{rid}/fork", json={"at": 1})).status_code == 401

    in_process(demo_db, body, anonymous_read=True)


def test_a_spec_run_parks_on_approval_and_a_denial_rejects_it_with_the_reason(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    t = tokens(db, ops="operate", boss="approve")

    async def body(c: httpx.AsyncClient) -> None:
        started = await c.post(
            "/runs", json={"toml": LAUNCH_SPEC, "directory": str(HERE)}, headers=bearer(t["ops"])
        )
        assert started.status_code == 201, started.text
        rid = started.json()["id"]
        parked = await _until(
            c, f"/runs/{rid}", bearer(t["ops"]), lambda d: d["status"] == "paused"
        )
        (waiting,) = parked["approvals"]
        assert (waiting["tool"], waiting["args"]) == ("launch", {"x": 7})
        listed = (await c.get("/approvals", headers=bearer(t["ops"]))).json()
        assert [a["proposal"] for a in listed] == [waiting["proposal"]]
        decided = await c.post(
            f"/runs/{rid}/approvals/{waiting['proposal']}",
            json={"decision": "deny", "reason": "not today"},
            headers=bearer(t["boss"]),
        )
        assert decided.status_code == 200 and decided.json()["kind"] == "approval.denied"
        done = await _until(
            c, f"/runs/{rid}", bearer(t["ops"]), lambda d: d["status"] == "completed"
        )
        assert done["approvals"] == []
        page = (
            await c.get(
                f"/runs/{rid}/transitions?kind=approval.*,proposal.rejected",
                headers=bearer(t["ops"]),
            )
        ).json()["items"]
        kinds = [(x["kind"], x["payload"].get("by"), x["payload"].get("reason")) for x in page]
        assert kinds == [
            ("approval.requested", None, None),
            ("approval.denied", "boss", "not today"),
            ("proposal.rejected", None, "not today"),
        ]
        again = await c.post(
            f"/runs/{rid}/approvals/{waiting['proposal']}",
            json={"decision": "approve"},
            headers=bearer(t["boss"]),
        )
        assert again.status_code == 409

    in_process(db, body)
    with open_ledger(db) as ledger:
        assert not any(x.kind == "tool.started" for r in ledger.runs() for x in ledger.read(r.id))


def test_stopping_a_served_run_records_who_stopped_it(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    t = tokens(db, ops="operate")

    async def body(c: httpx.AsyncClient) -> None:
        h = bearer(t["ops"])
        started = await c.post("/runs", json={"toml": NAP_SPEC, "directory": str(HERE)}, headers=h)
        rid = started.json()["id"]
        assert started.json()["hosted"] is True
        await _until(c, f"/runs/{rid}", h, lambda d: d["tick"] >= 2)
        stopped = await c.post(f"/runs/{rid}/stop", json={"reason": "enough"}, headers=h)
        assert stopped.status_code == 200, stopped.text
        assert (stopped.json()["status"], stopped.json()["reason"]) == (
            "stopped",
            "enough (by ops)",
        )
        assert stopped.json()["hosted"] is False
        again = await c.post(f"/runs/{rid}/stop", json={}, headers=h)
        assert again.status_code == 409 and "ended" in again.json()["detail"]

    in_process(db, body)


def test_a_fork_resumed_through_the_api_with_another_model_is_a_recorded_counterfactual(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    t = tokens(db, ops="operate")

    async def body(c: httpx.AsyncClient) -> None:
        h = bearer(t["ops"])
        started = await c.post("/runs", json={"toml": NAP_SPEC, "directory": str(HERE)}, headers=h)
        rid = started.json()["id"]
        await _until(c, f"/runs/{rid}", h, lambda d: d["status"] == "completed")
        fork = (await c.post(f"/runs/{rid}/fork", json={"at": 20}, headers=h)).json()["id"]
        resumed = await c.post(
            f"/runs/{fork}/resume",
            json={"model": "openai:gpt-4.1-mini", "policy": {"stall_ticks": 50}},
            headers=h,
        )
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["hosted"] is True
        await _until(c, f"/runs/{fork}", h, lambda d: d["status"] == "completed")
        marks = (await c.get(f"/runs/{fork}/transitions?kind=run.resumed", headers=h)).json()[
            "items"
        ]
        assert marks[-1]["payload"]["counterfactual"] == {
            "policy": {"stall_ticks": 50},
            "model": "openai:gpt-4.1-mini",
        }
        assert marks[-1]["payload"]["reason"] == "resumed through the API (by ops)"
        ended = await c.post(f"/runs/{rid}/resume", json={}, headers=h)
        assert ended.status_code == 409 and "has ended" in ended.json()["detail"]

    in_process(db, body)


def test_stopping_a_run_parked_on_an_approval_stops_it_at_once_and_moots_the_request(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ledger.db"
    t = tokens(db, ops="operate", boss="approve")

    async def body(c: httpx.AsyncClient) -> None:
        h = bearer(t["ops"])
        started = await c.post(
            "/runs", json={"toml": LAUNCH_SPEC, "directory": str(HERE)}, headers=h
        )
        rid = started.json()["id"]
        parked = await _until(c, f"/runs/{rid}", h, lambda d: d["status"] == "paused")
        proposal = parked["approvals"][0]["proposal"]
        stopped = await c.post(f"/runs/{rid}/stop", json={"reason": "abort"}, headers=h)
        assert stopped.status_code == 200, stopped.text
        assert (stopped.json()["status"], stopped.json()["approvals"]) == ("stopped", [])
        late = await c.post(
            f"/runs/{rid}/approvals/{proposal}",
            json={"decision": "approve"},
            headers=bearer(t["boss"]),
        )
        assert late.status_code == 409 and "has ended (stopped)" in late.json()["detail"]
        assert (await c.get("/approvals", headers=h)).json() == []

    in_process(db, body)


def _tree_run(db: Path) -> str:
    """A run whose team ``crew`` (a, b) gives up once and is restarted by the root."""
    done = Proposal(action="finish", args={"result": None})
    work = Proposal(action="remember", args={"key": "k", "value": 1})
    crash = [RuntimeError("one"), RuntimeError("two"), done]
    config = RunConfig(
        goal="a team that gives up once",
        agents=[
            AgentSpec("a", "worker", ScriptedMind(crash, name="a")),
            AgentSpec("b", "worker", ScriptedMind([work, done], repeat_last=True, name="b")),
            AgentSpec("c", "lead", ScriptedMind([work, done], repeat_last=True, name="c")),
        ],
        teams=[Team("crew", roles=("worker",), strategy="one_for_all", intensity=1)],
        intensity=2,
    )
    clock = VirtualClock()
    with open_ledger(db, create=True) as ledger:
        result = clock.run(Kernel(ledger, clock=clock).run(config, run_id="tree"))
    assert result.status == "completed"
    return result.run_id


def test_a_run_detail_shows_its_supervision_tree(tmp_path: Path, demo_db: Path) -> None:
    db = tmp_path / "tree.db"
    rid = _tree_run(db)
    t = tokens(db, reader="read")
    flat = tokens(demo_db, reader="read")

    async def body(c: httpx.AsyncClient) -> None:
        detail = (await c.get(f"/runs/{rid}", headers=bearer(t["reader"]))).json()
        assert {a["name"]: a["supervisor"] for a in detail["agents"]} == {
            "a": "crew",
            "b": "crew",
            "c": "root",
        }
        assert detail["supervisors"] == [
            {
                "name": "root",
                "parent": None,
                "strategy": "one_for_one",
                "intensity": 2,
                "period_s": 5.0,
                "restart": None,
                "restarts": 0,
                "escalations": 0,
                "children": ["crew", "c"],
            },
            {
                "name": "crew",
                "parent": "root",
                "strategy": "one_for_all",
                "intensity": 1,
                "period_s": 5.0,
                "restart": "permanent",
                "restarts": 1,
                "escalations": 1,
                "children": ["a", "b"],
            },
        ]

    in_process(db, body)

    async def flat_body(c: httpx.AsyncClient) -> None:
        rid = _run_id(demo_db)
        detail = (await c.get(f"/runs/{rid}", headers=bearer(flat["reader"]))).json()
        [root] = detail["supervisors"]
        assert (root["name"], root["strategy"], root["escalations"]) == ("root", None, None)
        assert root["children"][:6] == [
            "researcher",
            "planner",
            "budgeter",
            "skeptic",
            "verifier",
            "coordinator",
        ]
        assert root["children"][6:] == [a["name"] for a in detail["agents"] if a["temporary"]]

    in_process(demo_db, flat_body)
