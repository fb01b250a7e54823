"""The reference run through the real ``telic`` entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import Telic, last_run

REFERENCE = [
    r'^BOOT: goal="Plan 3-day Basel to Ticino trip under CHF 600"$',
    r"^SPAWN: 6 agents \(researcher, planner, budgeter, skeptic, verifier, coordinator\)$",
    r"^TICK 01: proposals -> commits -> progress \+0\.\d\d$",
    r"^TICK 02: conflict detected \(two hotels\) -> resolved by budgeter policy$",
    r"^TICK 03: uncertainty high on train prices -> exploration spawned$",
    r"^TICK 04: tool failure \(API timeout\) -> agent restarted by supervisor$",
    r"^TICK 05: hallucination detected -> process killed -> restored from tick 03$",
    r"^TICK 06: progress \+0\.\d\d -> return condition met$",
    r"^DONE: artifact generated \+ full replay trace \((\d+) transitions\)$",
]


def test_demo_prints_the_reference_transcript_from_the_ledger(
    telic: Telic, db: Path, tmp_path: Path
) -> None:
    out = telic("demo", "--instant", "--db", str(db), "--out", str(tmp_path / "out")).stdout
    lines = out.splitlines()
    for pattern, line in zip(REFERENCE, lines, strict=False):
        assert re.match(pattern, line), f"{line!r} does not match {pattern!r}\n{out}"
    done = re.match(REFERENCE[-1], lines[len(REFERENCE) - 1])
    assert done is not None
    run = last_run(telic, db)
    assert run["status"] == "completed"
    assert int(done.group(1)) == run["transitions"]  # the count is the ledger's
    # `show` renders the same lines from the ledger alone.
    shown = telic("show", run["id"], "--db", str(db)).stdout.splitlines()
    assert shown == lines[: len(REFERENCE)]
    # The artifacts respect the budget.
    result = json.loads((tmp_path / "out" / run["id"] / "result.json").read_text())
    assert result["within_budget"] is True
    assert result["plan"]["budget"]["total_chf"] <= 600
    itinerary = (tmp_path / "out" / run["id"] / "itinerary.md").read_text()
    assert itinerary.startswith("# Plan 3-day Basel to Ticino trip under CHF 600")


def test_instant_demo_is_byte_identical_for_a_seed(telic: Telic, tmp_path: Path) -> None:
    heads = []
    for name in ("a.db", "b.db"):
        telic("demo", "--instant", "--seed", "11", "--db", str(tmp_path / name))
        heads.append(last_run(telic, tmp_path / name)["head_hash"])
    assert heads[0] == heads[1]
    telic("demo", "--instant", "--seed", "12", "--db", str(tmp_path / "c.db"))
    assert last_run(telic, tmp_path / "c.db")["head_hash"] != heads[0]


def test_real_time_demo_gives_the_same_transitions_apart_from_timestamps(
    telic: Telic, tmp_path: Path
) -> None:
    kinds = []
    for name, extra in (("v.db", ["--instant"]), ("r.db", [])):
        db = tmp_path / name
        telic("demo", *extra, "--db", str(db))
        rid = last_run(telic, db)["id"]
        trace = [
            json.loads(line)
            for line in telic("trace", rid, "--db", str(db), "--json").stdout.splitlines()
        ]
        kinds.append(
            [
                (
                    t["seq"],
                    t["tick"],
                    t["kind"],
                    t["agent"],
                    json.dumps(t["payload"], sort_keys=True),
                )
                for t in trace
                if t["kind"] != "tick.completed"
            ]
        )
    assert kinds[0] == kinds[1]
