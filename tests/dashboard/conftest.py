from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.dashboard.kit import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Server,
    synthetic_run,
    telic,
    token,
    write_swarm,
)

from telic.ledger import open_ledger

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

SCREENSHOTS = os.environ.get("TELIC_SCREENSHOTS")
"""A directory the tests also write their screenshots to (``docs/img`` to refresh the docs)."""


@dataclass
class Site:
    dir: Path
    db: Path
    server: Server
    demo: str
    fork: str
    big: str
    operator: str
    reader: str

    def url(self, fragment: str = "") -> str:
        return f"{self.server.url}/{fragment}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one module. Not for the session: Playwright's sync API runs its event loop
    in a greenlet of the main thread, and while it lives ``asyncio.run`` elsewhere would find
    that loop running."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A ledger with the reference run, a fork of it at seq 60, and a 10,000-transition run;
    tokens; a spec directory of function minds; and ``telic serve`` on it."""
    d = tmp_path_factory.mktemp("dashboard")
    db = d / "ledger.db"
    telic(d, "demo", "--instant", "--db", str(db))
    with open_ledger(str(db)) as ledger:
        demo = ledger.runs()[0].id
        synthetic_run(ledger, "r-big", 10_000)
    fork = telic(d, "fork", demo, "--at", "60", "--db", str(db)).strip()
    operator = token(d, db, "olivia", "operate", "approve")
    reader = token(d, db, "rita", "read")
    write_swarm(d)
    server = Server(d, db)
    try:
        yield Site(d, db, server, demo, fork, "r-big", operator, reader)
    finally:
        server.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    yield p
    context.close()


def use_token(page: Page, value: str) -> None:
    """Make the page send ``value`` as its token, as the Token dialog does."""
    page.add_init_script(f"localStorage.setItem('telic.token', {value!r})")


def screenshot(page: Page, tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.png"
    page.screenshot(path=str(path))
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))
    return path
