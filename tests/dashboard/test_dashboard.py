"""The dashboard in a real Chromium against a real ``telic serve``: the runs tree, a run
growing live, the timeline and its records, time travel checked against ``ledger.state_at``,
the diff of two points, fork here and resume, compare, approving a parked call (and a read
token that cannot), the verify badge on a tampered ledger, 10,000 transitions, a narrow
window."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.dashboard.conftest import Site, screenshot, use_token
from tests.dashboard.kit import PAY_SPEC, STEPS_SPEC, TEAM_SPEC, Server, telic

from telic.ledger import open_ledger
from telic.reducer import state_hash

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _wait_status(site: Site, run_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = site.server.request("GET", f"/runs/{run_id}", token=site.reader)
        if run["status"] in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} stayed {run['status']}, never {statuses}")
        time.sleep(0.1)


def _start(site: Site, spec: str) -> str:
    run = site.server.request(
        "POST", "/runs", {"toml": spec, "directory": str(site.dir)}, token=site.operator
    )
    return str(run["id"])


def test_the_runs_list_shows_forks_under_their_parent(site: Site, page: Page) -> None:
    page.goto(site.url())
    parent = page.locator(f'tr.run-row[data-run="{site.demo}"]')
    fork = page.locator(f'tr.run-row[data-run="{site.fork}"]')
    expect(fork).to_have_attribute("data-parent", site.demo)
    expect(fork).to_have_class(re.compile(r"\bdepth-1\b"))
    expect(fork).to_contain_text("@60")
    expect(parent).to_contain_text("completed")
    expect(parent).to_contain_text("Plan 3-day Basel to Ticino trip")
    expect(parent.locator(".badge")).to_have_text(re.compile("intact"))
    ids = page.locator("tr.run-row").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert ids.index(site.fork) == ids.index(site.demo) + 1
    with open_ledger(str(site.db)) as ledger:
        head = ledger.run(site.demo).head
    expect(parent.locator("td.num")).to_have_text(f"{head:,}")


def test_a_live_run_grows_while_the_page_watches(site: Site, page: Page) -> None:
    run_id = _start(site, STEPS_SPEC)
    page.goto(site.url(f"#/run/{run_id}"))
    transcript = page.get_by_test_id("transcript")
    expect(page.locator(".connection")).to_have_text("live")
    lines_js = (
        "() => document.querySelector('[data-testid=transcript]').textContent.split('\\n').length"
    )
    head_js = "() => Number(document.querySelector('.travel-slider').max)"
    done_js = "() => document.querySelector('[data-testid=status]').textContent === 'completed'"
    seen_lines: list[int] = []
    seen_heads: list[int] = []
    for _ in range(500):
        lines, head = page.evaluate(lines_js), page.evaluate(head_js)
        seen_lines.append(lines)
        seen_heads.append(head)
        if len(set(seen_heads)) >= 3 and len(set(seen_lines)) >= 3:
            break
        if page.evaluate(done_js):
            break
        page.wait_for_function(
            f"({lines_js})() > {lines} || ({head_js})() > {head} || ({done_js})()"
        )
    # Both grew while the page was open, never shrinking.
    assert len(set(seen_heads)) >= 3 and seen_heads == sorted(seen_heads)
    assert len(set(seen_lines)) >= 3 and seen_lines == sorted(seen_lines)
    _wait_status(site, run_id, "completed")
    expect(page.get_by_test_id("status")).to_have_text("completed")
    shown = telic(site.dir, "show", run_id, "--db", str(site.db)).rstrip("\n")
    expect(transcript).to_have_text(shown)
    with open_ledger(str(site.db)) as ledger:
        head = ledger.run(run_id).head
    # Ten of twelve tool calls: the gauge shows the 80% warning.
    gauge = page.locator('.gauge[data-dimension="tool_calls"]')
    expect(gauge).to_have_class(re.compile(r"\bwarn\b"))
    expect(gauge).to_contain_text("10 / 12")
    expect(gauge).to_contain_text("over 80% of the budget")
    expect(page.locator('.gauge[data-dimension="ticks"]')).to_have_class(re.compile(r"\bok\b"))
    # Followed live: the timeline ends at the head, the state is the head's.
    expect(page.locator(".state")).to_have_attribute("data-seq", str(head))
    expect(page.locator(f"#tl-{head}")).to_be_visible()


def test_the_timeline_and_time_travel_show_the_fold_at_each_seq(
    site: Site, page: Page, tmp_path: Path
) -> None:
    with open_ledger(str(site.db)) as ledger:
        head = ledger.run(site.demo).head
        hashes = {n: state_hash(ledger.state_at(site.demo, n)) for n in range(1, head + 1)}
        records = {n: ledger.get(site.demo, n) for n in (20, 21, 22)}
    page.goto(site.url(f"#/run/{site.demo}@20"))
    state = page.locator(".state")
    expect(state).to_have_attribute("data-seq", "20")
    expect(state).to_have_attribute("data-state-hash", hashes[20])
    # Click a timeline entry: its full record, and the state folded up to it.
    row = page.locator("#tl-22")
    expect(row).to_have_attribute("data-kind", records[22].kind)
    row.click()
    record = page.locator(".record")
    page.get_by_role("tab", name="Record").click()
    expect(record).to_have_attribute("data-seq", "22")
    expect(record.locator(".hash")).to_have_text(records[22].hash.hex())
    expect(record.locator(".prev-hash")).to_have_text(records[21].hash.hex())
    expect(record.locator(".payload")).to_contain_text(json.dumps(records[22].data["agent"]))
    expect(state).to_have_attribute("data-state-hash", hashes[22])
    expect(page).to_have_url(re.compile(re.escape(f"#/run/{site.demo}@22") + "$"))
    # The keyboard moves through the timeline.
    page.locator(".timeline").focus()
    page.keyboard.press("ArrowUp")
    expect(state).to_have_attribute("data-state-hash", hashes[21])
    page.keyboard.press("End")
    expect(state).to_have_attribute("data-seq", str(head))
    page.keyboard.press("Home")
    expect(state).to_have_attribute("data-seq", "1")
    page.keyboard.press("PageDown")
    expect(state).not_to_have_attribute("data-seq", "1")
    # The slider: every position shows the fold at that seq.
    slider = page.locator(".travel-slider")
    slider.focus()
    page.keyboard.press("End")
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    expect(state).to_have_attribute("data-seq", str(head - 5))
    expect(state).to_have_attribute("data-state-hash", hashes[head - 5])
    page.evaluate(
        "n => { const s = document.querySelector('.travel-slider'); s.value = n;"
        " s.dispatchEvent(new Event('input', {bubbles: true})); }",
        100,
    )
    expect(state).to_have_attribute("data-state-hash", hashes[100])
    expect(page.locator("#tl-100")).to_have_class(re.compile(r"\bselected\b"))
    page.get_by_role("tab", name="State").click()
    screenshot(page, tmp_path, "dashboard-time-travel")
    # A deep link to a run at a seq opens there.
    page.goto(site.url(f"#/run/{site.demo}@77"))
    page.reload()
    expect(state).to_have_attribute("data-state-hash", hashes[77])
    expect(page.locator("#tl-77")).to_be_visible()


def test_the_diff_of_two_points(site: Site, page: Page) -> None:
    expected = json.loads(
        telic(site.dir, "diff", site.demo, "20", "40", "--db", str(site.db), "--json")
    )
    page.goto(site.url(f"#/run/{site.demo}@20"))
    expect(page.locator(".state")).to_have_attribute("data-seq", "20")
    page.keyboard.press("m")
    page.goto(site.url(f"#/run/{site.demo}@40"))
    expect(page.locator(".state")).to_have_attribute("data-seq", "40")
    page.get_by_role("tab", name="Diff").click()
    page.get_by_role("button", name="Show diff").click()
    expect(page.locator(".diff-summary")).to_have_text(
        f"{len(expected)} paths differ between seq 20 and seq 40"
    )
    paths = page.locator("tr.diff-row").evaluate_all("rows => rows.map(r => r.dataset.path)")
    assert paths == [c["path"] for c in expected]


def test_fork_here_then_resume_from_the_page(site: Site, page: Page) -> None:
    parent = _start(site, STEPS_SPEC)
    _wait_status(site, parent, "completed")
    use_token(page, site.operator)
    page.goto(site.url(f"#/run/{parent}@12"))
    expect(page.locator(".state")).to_have_attribute("data-seq", "12")
    page.get_by_role("button", name="Fork here").click()
    page.wait_for_url(re.compile(r"#/run/(?!" + re.escape(parent) + r")[^@]+$"))
    fork = page.url.rsplit("/", 1)[-1]
    expect(page.locator(".parent")).to_contain_text(f"{parent}@12")
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_visible()
    resume.click()
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=30_000)
    with open_ledger(str(site.db)) as ledger:
        kinds = [t.kind for t in ledger.read(fork, 13)]
        assert ledger.run(fork).parent == parent and ledger.run(fork).fork_seq == 12
    assert kinds[:2] == ["run.forked", "run.resumed"] and kinds[-1] == "run.completed"


def test_the_supervision_tree_shows_the_runs_teams(site: Site, page: Page) -> None:
    run_id = _start(site, TEAM_SPEC)
    page.goto(site.url(f"#/run/{run_id}"))
    root = page.locator('li.supervisor[data-supervisor="root"]')
    team = root.locator('li.supervisor[data-supervisor="walkers"]')
    expect(team).to_contain_text("team supervisor")
    expect(team).to_contain_text("one_for_all, 4 in 10 s")
    expect(root.locator(":scope > .agent-line")).to_contain_text("one_for_one, 2 in 5 s")
    # The team holds its walkers, in start order; the lead is the root's own child, after it.
    walkers = team.locator("li.agent").evaluate_all("rows => rows.map(r => r.dataset.agent)")
    assert walkers == ["w1", "w2"]
    kids = root.locator(":scope > ul > li").evaluate_all(
        "rows => rows.map(r => r.dataset.supervisor || r.dataset.agent)"
    )
    assert kids == ["walkers", "lead"]
    _wait_status(site, run_id, "completed")
    detail = site.server.request("GET", f"/runs/{run_id}", token=site.reader)
    assert [s["name"] for s in detail["supervisors"]] == ["root", "walkers"]
    # A flat run (the demo) shows its agents under the root alone.
    page.goto(site.url(f"#/run/{site.demo}"))
    expect(page.locator('li.supervisor[data-supervisor="root"] li.agent').first).to_be_visible()
    assert page.locator("li.supervisor").count() == 1


def test_resume_a_fork_of_the_reference_run_and_a_clear_refusal(site: Site, page: Page) -> None:
    use_token(page, site.operator)
    page.goto(site.url(f"#/run/{site.demo}@50"))
    expect(page.locator(".state")).to_have_attribute("data-seq", "50")
    page.get_by_role("button", name="Fork here").click()
    page.wait_for_url(re.compile(r"#/run/(?!" + re.escape(site.demo) + r")[^@]+$"))
    fork = page.url.rsplit("/", 1)[-1]
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=60_000)
    with open_ledger(str(site.db)) as ledger:
        kinds = [t.kind for t in ledger.read(fork, 51)]
    assert kinds[:2] == ["run.forked", "run.resumed"] and "run.completed" in kinds
    # a run the server has nothing to rebuild from: the page says why, in words
    page.goto(site.url(f"#/run/{site.big}"))
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("alert")).to_contain_text("cannot be resumed")
    expect(page.get_by_role("alert")).to_contain_text("Kernel.resume")


def test_compare_a_fork_with_its_parent(site: Site, page: Page) -> None:
    page.goto(site.url(f"#/run/{site.fork}"))
    page.locator(".compare-parent").click()
    where = page.get_by_test_id("divergence")
    expect(where).to_have_attribute("data-diverged-at", "61")
    expect(where).to_contain_text("share seq 1..60 and diverge at seq 61")
    b = page.locator(f'.compare-side[data-run="{site.fork}"] .decision').first
    expect(b).to_have_attribute("data-seq", "61")
    expect(b).to_contain_text("run.forked")
    cli = json.loads(
        telic(site.dir, "compare", site.demo, site.fork, "--db", str(site.db), "--json")
    )
    expect(page.locator(".compare-page h2").last).to_have_text(
        f"Final states: {len(cli['final_diff'])} paths differ"
    )


def test_approving_a_parked_call_and_a_read_token_that_cannot(
    site: Site, browser: Browser, page: Page, tmp_path: Path
) -> None:
    run_id = _start(site, PAY_SPEC)
    waiting = _wait_status(site, run_id, "paused")
    proposal = waiting["approvals"][0]["proposal"]
    # A read token sees the call, why it was asked for, and no way to decide it.
    reader = browser.new_context(viewport={"width": 1280, "height": 800})
    rpage = reader.new_page()
    use_token(rpage, site.reader)
    rpage.goto(site.url(f"#/run/{run_id}"))
    card = rpage.locator(f'.approval[data-proposal="{proposal}"]')
    expect(card).to_contain_text("pay")
    expect(card).to_contain_text("the hotel needs a deposit")
    expect(card.locator(".no-approve")).to_be_visible()
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    reader.close()
    # An approve token decides it from the queue; the run goes on and finishes.
    use_token(page, site.operator)
    page.goto(site.url())
    card = page.locator(f'.approval[data-run="{run_id}"][data-proposal="{proposal}"]')
    expect(card).to_contain_text("the hotel needs a deposit")
    screenshot(page, tmp_path, "dashboard-approvals")
    card.locator(".approval-reason").fill("deposit is refundable")
    card.get_by_role("button", name="Approve").click()
    _wait_status(site, run_id, "completed")
    expect(card).to_have_count(0)
    with open_ledger(str(site.db)) as ledger:
        granted = [t for t in ledger.read(run_id) if t.kind == "approval.granted"]
    assert len(granted) == 1 and granted[0].data["by"] == "olivia"
    page.goto(site.url(f"#/run/{run_id}"))
    expect(page.get_by_test_id("status")).to_have_text("completed")


def test_the_verify_badge_turns_red_on_a_tampered_ledger(browser: Browser, tmp_path: Path) -> None:
    db = tmp_path / "tampered.db"
    telic(tmp_path, "demo", "--instant", "--db", str(db))
    with open_ledger(str(db)) as ledger:
        run_id = ledger.runs()[0].id
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE transitions SET tick = tick + 1 WHERE seq = 30 AND rid = "
            "(SELECT rid FROM runs WHERE id = ?)",
            (run_id,),
        )
    server = Server(tmp_path, db)
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{server.url}/#/run/{run_id}")
        badge = page.get_by_test_id("verify")
        expect(badge).to_have_text("✖ broken at seq 30")
        expect(badge).to_have_class(re.compile(r"\bbad\b"))
        page.goto(f"{server.url}/")
        expect(page.locator(f'tr[data-run="{run_id}"] .badge')).to_have_text("✖ seq 30")
        context.close()
    finally:
        server.close()


def test_ten_thousand_transitions_page_and_scroll(site: Site, page: Page, tmp_path: Path) -> None:
    page.goto(site.url(f"#/run/{site.big}"))
    expect(page.locator(".state")).to_have_attribute("data-seq", "10000")
    expect(page.locator("#tl-10000")).to_be_visible()
    rows = page.locator(".tl-row").count()
    assert 0 < rows < 200  # virtualised: a screenful and some overscan, not 10,000
    page.locator(".timeline").focus()
    page.keyboard.press("Home")
    expect(page.locator("#tl-1")).to_be_visible()
    expect(page.locator("#tl-1")).to_have_attribute("data-kind", "run.booted")
    page.goto(site.url(f"#/run/{site.big}@5000"))
    expect(page.locator("#tl-5000")).to_be_visible()
    expect(page.locator("#tl-5000")).to_have_attribute("data-kind", re.compile(r"\w+\.\w+"))
    expect(page.locator(".state")).to_have_attribute("data-seq", "5000")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator(".tl-row").count() < 200


def test_run_page_at_1280x800_and_in_a_narrow_window(
    site: Site, browser: Browser, page: Page, tmp_path: Path
) -> None:
    page.goto(site.url(f"#/run/{site.demo}"))
    expect(page.get_by_test_id("verify")).to_have_text(re.compile("chain intact"))
    expect(page.locator(".gauge")).to_have_count(5)
    expect(page.locator('.gauge[data-dimension="ticks"]')).to_be_visible()
    expect(page.locator(".agent").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for pane in (".timeline-pane", ".detail-pane", ".side-pane"):
        box = page.locator(pane).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1280
    screenshot(page, tmp_path, "dashboard-run")
    narrow = browser.new_context(viewport={"width": 420, "height": 800})
    npage = narrow.new_page()
    npage.goto(site.url(f"#/run/{site.demo}@50"))
    expect(npage.locator(".state")).to_have_attribute("data-seq", "50")
    expect(npage.locator("#tl-50")).to_be_visible()
    assert npage.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    npage.goto(site.url())
    expect(npage.locator(f'tr.run-row[data-run="{site.demo}"]')).to_be_visible()
    assert npage.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    narrow.close()
