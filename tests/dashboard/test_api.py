"""The dashboard's side of the server without a browser: its files ship in the package and
reach nothing outside it, ``/`` serves them, and ``GET /me`` and ``GET /compare`` answer (and
refuse bad input) through the app."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.dashboard.kit import telic, token

from telic.compare import compare
from telic.ledger import open_ledger
from telic.serve import Settings, create_app
from telic.serve.routes.dashboard import STATIC
from telic.statediff import state_diff


def _in_process(
    db: Path, body: Callable[[httpx.AsyncClient], Awaitable[None]], *, anonymous_read: bool
) -> None:
    async def main() -> None:
        cfg = Settings(anonymous_read=anonymous_read, spec_dir=db.parent / "specs")
        app = create_app(str(db), settings=cfg)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://telic.test"
            ) as client,
        ):
            await body(client)

    asyncio.run(main())


@pytest.fixture(scope="module")
def ledger_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str]:
    d = tmp_path_factory.mktemp("dashboard-api")
    db = d / "ledger.db"
    telic(d, "demo", "--instant", "--db", str(db))
    with open_ledger(str(db)) as ledger:
        run = ledger.runs()[0].id
    fork = telic(d, "fork", run, "--at", "60", "--db", str(db)).strip()
    return db, run, fork, token(d, db, "olivia", "operate", "approve")


def test_the_files_ship_in_the_package_and_load_nothing_from_outside() -> None:
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    names = {p.relative_to(STATIC).as_posix() for p in files}
    assert {"index.html", "app.css", "js/main.js", "js/api.js", "js/timeline.js"} <= names
    assert len(re.findall(r"^import ", (STATIC / "js/main.js").read_text(), re.M)) == 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path
        for spec in re.findall(r'^import [^;]+? from "([^"]+)";$', text, re.M):
            assert spec.startswith("./"), (path, spec)
            assert (path.parent / spec).resolve().is_file(), (path, spec)


def test_the_dashboard_me_and_compare_through_the_app(
    ledger_db: tuple[Path, str, str, str],
) -> None:
    db, run, fork, olivia = ledger_db
    with open_ledger(str(db)) as ledger:
        expected = compare(ledger, run, fork, limit=5).model_dump(mode="json")

    async def body(client: httpx.AsyncClient) -> None:
        index = await client.get("/")
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
        assert 'src="js/main.js"' in index.text
        script = await client.get("/js/run.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert (await client.get("/me")).json() == {"name": "anonymous", "scopes": ["read"]}
        me = await client.get("/me", headers={"Authorization": f"Bearer {olivia}"})
        assert me.json() == {"name": "olivia", "scopes": ["read", "operate", "approve"]}
        got: dict[str, Any] = (await client.get(f"/compare?a={run}&b={fork}&limit=5")).json()
        assert got == expected
        assert got["diverged_at"] == 61 and got["relation"] == "fork"
        unknown = await client.get(f"/compare?a={run}&b=r-nope")
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
        for bad in (f"/compare?a={run}", f"/compare?a={run}&b={fork}&limit=0"):
            r = await client.get(bad)
            assert 400 <= r.status_code < 500 and "detail" in r.json(), bad
        # The API's own routes are not shadowed by the files at `/`.
        assert (await client.get("/runs")).json()["total"] == 2

    _in_process(db, body, anonymous_read=True)


def test_without_a_token_the_page_loads_and_the_reads_are_refused(
    ledger_db: tuple[Path, str, str, str],
) -> None:
    db, run, fork, olivia = ledger_db

    async def body(client: httpx.AsyncClient) -> None:
        assert (await client.get("/")).status_code == 200
        for path in ("/me", f"/compare?a={run}&b={fork}"):
            r = await client.get(path)
            assert r.status_code == 401 and r.json()["error"] == "unauthenticated", path
        ok = await client.get("/me", headers={"Authorization": f"Bearer {olivia}"})
        assert ok.status_code == 200

    _in_process(db, body, anonymous_read=False)


def test_one_diff_for_the_api_the_cli_and_compare(ledger_db: tuple[Path, str, str, str]) -> None:
    db, run, fork, _ = ledger_db
    with open_ledger(str(db)) as ledger:
        a, b = ledger.state_at(run, 20), ledger.state_at(run, 60)
        expected = [c.model_dump(mode="json") for c in state_diff(a, b)]
        final = [
            c.model_dump(mode="json")
            for c in state_diff(ledger.state_at(run), ledger.state_at(fork))
        ]
    assert expected  # the two points differ
    cli = json.loads(telic(db.parent, "diff", run, "20", "60", "--json", "--db", str(db)))
    assert cli == expected

    async def body(client: httpx.AsyncClient) -> None:
        api = (await client.get(f"/runs/{run}/diff?a=20&b=60")).json()
        assert api == expected
        compared = (await client.get(f"/compare?a={run}&b={fork}")).json()
        assert compared["final_diff"] == final

    _in_process(db, body, anonymous_read=True)


def test_a_reference_run_resumes_through_the_api_and_others_get_a_clear_409(
    ledger_db: tuple[Path, str, str, str],
) -> None:
    db, run, _, olivia = ledger_db
    with open_ledger(str(db)) as ledger:
        ledger.create_run("r-raw")  # nothing recorded to rebuild it from
    h = {"Authorization": f"Bearer {olivia}"}

    async def body(client: httpx.AsyncClient) -> None:
        forked = await client.post(f"/runs/{run}/fork", json={"at": 40}, headers=h)
        assert forked.status_code == 201, forked.text
        fork = forked.json()["id"]
        with_model = await client.post(
            f"/runs/{fork}/resume", json={"model": "openai:gpt-4.1-mini"}, headers=h
        )
        assert with_model.status_code == 409
        assert "scripted" in with_model.json()["detail"]
        resumed = await client.post(f"/runs/{fork}/resume", json={}, headers=h)
        assert resumed.status_code == 200, resumed.text
        deadline = asyncio.get_running_loop().time() + 120
        while (d := (await client.get(f"/runs/{fork}", headers=h)).json())["status"] != "completed":
            assert asyncio.get_running_loop().time() < deadline, d["status"]
            await asyncio.sleep(0.2)
        again = await client.post(f"/runs/{fork}/resume", json={}, headers=h)
        assert again.status_code == 409 and again.json()["error"] == "conflict"
        raw = await client.post("/runs/r-raw/resume", json={}, headers=h)
        assert raw.status_code == 409 and "never booted" in raw.json()["detail"]

    _in_process(db, body, anonymous_read=False)
    with open_ledger(str(db)) as ledger:
        forks = [r.id for r in ledger.runs() if r.parent == run and r.fork_seq == 40]
        kinds = [t.kind for t in ledger.read(forks[0], 41)]
        assert ledger.state_at(forks[0])["status"] == "completed"
    assert kinds[:2] == ["run.forked", "run.resumed"] and "run.completed" in kinds
