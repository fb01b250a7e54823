"""Every run a kernel test creates must verify and replay, whatever the test asserted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .kit import OPENED


@pytest.fixture(autouse=True)
def _every_run_verifies_and_replays() -> Iterator[None]:
    OPENED.clear()
    yield
    try:
        for ledger in OPENED:
            for info in ledger.runs():
                report = ledger.verify(info.id)
                assert report.ok, f"{info.id}: {report.reason} at seq {report.first_bad}"
                replay = ledger.replay(info.id)
                assert replay.folded == info.head
                if "tick.completed" in replay.state["counts"]:
                    assert replay.checked_hashes >= replay.state["counts"]["tick.completed"]
    finally:
        for ledger in OPENED:
            ledger.close()
        OPENED.clear()
