"""``telic compare`` and :func:`telic.compare.compare`: a fork against its parent, a run against
itself, two runs of the same goal, and bad input, through the real CLI and the module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.cli.conftest import Telic, last_run

from telic.compare import DECISION_KINDS, compare, state_diff
from telic.ledger import open_ledger


@pytest.fixture
def parent_and_fork(telic: Telic, db: Path) -> tuple[str, str]:
    telic("demo", "--instant", "--db", str(db))
    parent = str(last_run(telic, db)["id"])
    fork = telic("fork", parent, "--at", "60", "--db", str(db)).stdout.strip()
    telic("resume", fork, "--db", str(db), "--instant", "--seed", "7")
    return parent, fork


def test_fork_against_parent_json(telic: Telic, db: Path, parent_and_fork: tuple[str, str]) -> None:
    parent, fork = parent_and_fork
    c: dict[str, Any] = json.loads(telic("compare", parent, fork, "--db", str(db), "--json").stdout)
    assert c["relation"] == "fork"
    assert c["diverged_at"] == 61 and c["shared"] == 60
    # The fork's first own transition is its run.forked record; the parent's is the decision
    # it made at seq 61 in the original.
    b = c["b"]["decisions"]
    assert b[0]["seq"] == 61 and b[0]["kind"] == "run.forked"
    assert all(d["seq"] >= 61 and d["kind"] in DECISION_KINDS for d in b + c["a"]["decisions"])
    assert c["a"]["status"] == c["b"]["status"] == "completed"
    paths = {ch["path"]: ch for ch in c["final_diff"]}
    assert paths["forked_from"]["before"] is None
    assert paths["forked_from"]["after"] == {"run": parent, "at": 60}
    with open_ledger(str(db)) as ledger:
        assert c["a"]["head"] == ledger.run(parent).head
        assert c["b"]["head"] == ledger.run(fork).head
        # The listed decisions are exactly the parent's decision kinds from seq 61 on.
        expected = [t.seq for t in ledger.read(parent, 61) if t.kind in DECISION_KINDS]
    assert [d["seq"] for d in c["a"]["decisions"]] == expected[:100]


def test_human_output_and_limit(telic: Telic, db: Path, parent_and_fork: tuple[str, str]) -> None:
    parent, fork = parent_and_fork
    text = telic("compare", parent, fork, "--db", str(db), "--limit", "3").stdout
    assert f"{parent} vs {fork} (fork): share seq 1..60, diverge at seq 61" in text
    assert "more (--limit)" in text and "paths differ" in text
    assert "forked from" in text


def test_same_goal_and_identical(telic: Telic, db: Path) -> None:
    telic("demo", "--instant", "--db", str(db))
    telic("demo", "--instant", "--db", str(db), "--seed", "99")
    with open_ledger(str(db)) as ledger:
        first, second = (r.id for r in ledger.runs())
        c = compare(ledger, first, second)
        assert c.relation == "same-goal"
        assert c.diverged_at is not None and c.diverged_at >= 1
        itself = compare(ledger, first, first)
        assert itself.diverged_at is None and itself.final_diff == ()
        assert itself.shared == ledger.run(first).head
        assert itself.a.decisions == () and itself.b.decisions == ()


def test_unknown_run_is_one_line(telic: Telic, db: Path) -> None:
    telic("demo", "--instant", "--db", str(db))
    run = str(last_run(telic, db)["id"])
    proc = telic("compare", run, "r-nope", "--db", str(db), check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "r-nope" in proc.stderr
    bad = telic("compare", run, run, "--db", str(db), "--limit", "0", check=False)
    assert bad.returncode == 2


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.dictionaries(st.text("abc", min_size=1, max_size=2), inner, max_size=3),
    max_leaves=12,
)


@given(_json, _json)
def test_state_diff_names_every_difference(a: Any, b: Any) -> None:
    changes = list(state_diff(a, b))
    assert (changes == []) == (a == b)
    assert len({c.path for c in changes}) == len(changes)
    assert list(state_diff(a, a)) == []
