"""The dashboard's figures (issue 12), in headless Chromium against a real ``telic serve``.

- The run page of a 100,000-transition run becomes interactive (the state panel shows the
  head, the timeline's last row is on screen): from navigation to that, in the browser.
- Moving the time-travel control to a seq updates the state panel: from the slider's input
  event to the state panel showing that seq, measured in the page, at random seqs.
- A live run committing 1,000 transitions/s (another process appending to the same SQLite
  ledger, which the server tails) keeps the page responsive: the longest task the browser
  reports (``PerformanceObserver``, ``longtask``) while the page follows it.

Needs Debian's chromium (``/usr/bin/chromium``) and the ``playwright`` package.
"""

from __future__ import annotations

import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness import Figure, median, percentile

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.dashboard.kit import CHROMIUM, CHROMIUM_ARGS, Server, synthetic_run

from telic.kinds import MemoryUpdated
from telic.ledger import open_ledger
from telic.transition import draft

if TYPE_CHECKING:
    from playwright.sync_api import Page

GROUP = "dashboard"

BIG = 100_000
TRAVELS = 30
LIVE_RATE = 1_000
LIVE_SECONDS = 6
LIVE_GROUP = 50

_STATE_AT = """
async (seq) => {
  const slider = document.querySelector('.travel-slider');
  const t0 = performance.now();
  const shown = new Promise((resolve) => {
    const check = () => {
      const s = document.querySelector('.state');
      if (s && s.dataset.seq === String(seq)) { resolve(performance.now() - t0); return true; }
      return false;
    };
    const obs = new MutationObserver(() => { if (check()) obs.disconnect(); });
    obs.observe(document.body, { subtree: true, childList: true, attributes: true });
  });
  slider.value = String(seq);
  slider.dispatchEvent(new Event('input', { bubbles: true }));
  return await shown;
}
"""

_LONG_TASKS = """
() => {
  window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push(e.duration);
  }).observe({ type: 'longtask', buffered: false });
}
"""


def _append_live(db: Path, run_id: str, stop: threading.Event, counts: list[int]) -> None:
    """Append LIVE_RATE transitions/s to ``run_id`` in groups, from this process."""
    with open_ledger(str(db)) as ledger:
        seq = ledger.run(run_id).head + 1
        period = LIVE_GROUP / LIVE_RATE
        next_at = time.perf_counter()
        while not stop.is_set():
            drafts = [
                draft(
                    MemoryUpdated(agent="a", key=f"k{i % 9}", value=i),
                    ts=i,
                    tick=i // 100,
                    agent="a",
                )
                for i in range(seq, seq + LIVE_GROUP)
            ]
            ledger.append(run_id, drafts, expected=seq)
            seq += LIVE_GROUP
            counts[0] += LIVE_GROUP
            next_at += period
            time.sleep(max(0.0, next_at - time.perf_counter()))


def _settle(page: Page) -> None:
    """Wait until the page has what it reads after it became usable: the verify badge and
    the transcript (both read the whole run)."""
    page.wait_for_selector("[data-testid=verify]:not(.pending)", timeout=60_000)
    page.wait_for_selector("[data-testid=transcript]:not(:empty)", timeout=60_000)


def collect(repeats: int) -> list[Figure]:
    if not CHROMIUM.exists():
        print(
            f"dashboard: {CHROMIUM} is missing (apt-get install -y chromium); skipped",
            file=sys.stderr,
        )
        return []
    from playwright.sync_api import sync_playwright

    figs: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        db = d / "ledger.db"
        with open_ledger(str(db)) as ledger:
            synthetic_run(ledger, "r-big", BIG, batch=5000)
            synthetic_run(ledger, "r-live", 1000)
        server = Server(d, db)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                loads: list[float] = []
                for _ in range(max(1, repeats)):
                    page.goto("about:blank")
                    t0 = time.perf_counter()
                    page.goto(f"{server.url}/#/run/r-big")
                    page.wait_for_selector(f'.state[data-seq="{BIG}"]')
                    page.wait_for_selector(f"#tl-{BIG}", state="visible")
                    loads.append(time.perf_counter() - t0)
                    _settle(page)  # the next load does not queue behind this one's reads
                figs.append(
                    Figure(
                        GROUP,
                        f"run page of {BIG:,} transitions interactive",
                        median(loads),
                        "s",
                        1.5,
                        note="navigation to the head's state and last timeline row shown",
                    )
                )
                rng = random.Random(12)
                travel = [
                    float(page.evaluate(_STATE_AT, rng.randint(1, BIG - 1))) for _ in range(TRAVELS)
                ]
                figs.append(
                    Figure(
                        GROUP,
                        "time travel: slider to state panel, p50",
                        median(travel),
                        "ms",
                        200,
                        note=f"{TRAVELS} random seqs of {BIG:,}",
                    )
                )
                figs.append(
                    Figure(GROUP, "time travel: slider to state panel, max", max(travel), "ms", 200)
                )

                page.goto(f"{server.url}/#/run/r-live")
                page.wait_for_selector('.state[data-seq="1000"]')
                page.evaluate(_LONG_TASKS)
                stop = threading.Event()
                counts = [0]
                writer = threading.Thread(target=_append_live, args=(db, "r-live", stop, counts))
                started = time.perf_counter()
                writer.start()
                try:
                    page.wait_for_timeout(LIVE_SECONDS * 1000)
                finally:
                    stop.set()
                    writer.join()
                elapsed = time.perf_counter() - started
                head = 1000 + counts[0]
                page.wait_for_selector(f'.state[data-seq="{head}"]', timeout=30_000)
                long_tasks: list[float] = page.evaluate("window.__long")
                figs.append(
                    Figure(
                        GROUP, "live run: rate appended", counts[0] / elapsed, "transitions/s", None
                    )
                )
                figs.append(
                    Figure(
                        GROUP,
                        "live run: longest task in the page",
                        max(long_tasks, default=0.0),
                        "ms",
                        200,
                        note=f"{len(long_tasks)} tasks over 50 ms; p90 "
                        f"{percentile(long_tasks, 90) if long_tasks else 0:.0f} ms; followed to seq {head}",
                    )
                )
                browser.close()
        finally:
            server.close()
    return figs
