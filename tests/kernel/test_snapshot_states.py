"""The kernel hands the ledger the states of the snapshots it is due (by count), so that the
ledger does not fold every record a second time: the snapshots are the same bytes, at the same
seqs, as the ledger's own fold would give (every ledger of these tests is verified afterwards,
snapshots included: see ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from telic.canonical import decode, encode_validated
from telic.kinds import MemoryUpdated, TickStarted
from telic.ledger import open_ledger
from telic.ledger.base import BaseLedger
from telic.reducer import Fold, fold
from telic.transition import SCHEMA_VERSION, Draft, Transition, draft

from .kit import OPENED, agent, config, finish, new_ledger, play, remember


@pytest.mark.parametrize(
    "url", ["memory://?snapshot_every=3", "sqlite:///{dir}/s.db?snapshot_every=3"]
)
def test_a_run_s_snapshots_are_the_states_of_its_fold_at_their_seqs(
    url: str, tmp_path: object
) -> None:
    ledger = new_ledger(url.format(dir=tmp_path))
    steps = [remember("k", i) for i in range(12)] + [finish()]
    played = play(config(agent("a", *steps)), ledger=ledger)
    head = ledger.run(played.run_id).head
    taken = [s for s in range(1, head + 1) if ledger.last_snapshot(played.run_id, s) == s]
    assert taken == list(range(3, head + 1, 3))
    records = list(ledger.read(played.run_id))
    for seq in taken:
        replayed = orjson.dumps(fold(records[:seq]))  # the state in its own order
        assert _snapshot_bytes(ledger, seq, played.run_id) == replayed
    assert played.run_id not in ledger._heads  # pyright: ignore[reportPrivateUsage]
    assert ledger.verify(played.run_id).ok


def _drafts(n: int, start_tick: int = 1) -> list[Draft]:
    out: list[Draft] = []
    for i in range(n):
        tick = start_tick + i
        out.append(draft(TickStarted(tick=tick), ts=tick, tick=tick))
        out.append(
            draft(MemoryUpdated(agent="a", key="k", value=tick), ts=tick, tick=tick, agent="a")
        )
    return out


def _states_of(drafts: list[Draft], before: Fold, every: int) -> dict[int, tuple[bytes, str]]:
    """What the kernel's batch gives: the fold's state after each seq due by count."""
    working = Fold(before.state())
    states: dict[int, tuple[bytes, str]] = {}
    for d in drafts:
        seq = working.seq + 1
        working.apply(
            Transition(
                "r",
                seq,
                d.tick,
                d.agent,
                d.kind,
                d.causes,
                d.ts,
                SCHEMA_VERSION,
                decode(d.payload),
                b"",
                b"",
            )
        )
        if seq % every == 0:
            states[seq] = (working.encoded(), working.hash())
    return states


def _snapshot_bytes(ledger: BaseLedger, seq: int, run_id: str = "r") -> bytes:
    snap = ledger._get_snapshot(run_id, seq, seq)  # pyright: ignore[reportPrivateUsage]
    assert snap is not None
    return snap.state


def _reopened(path: Path, first: list[Draft]) -> BaseLedger:
    """A ledger on ``path`` holding run ``r`` with ``first``, opened afresh: it has no head
    fold of the run yet (as after a resume)."""
    url = f"sqlite://{path}?snapshot_every=4"
    with open_ledger(url) as ledger:
        ledger.append("r", first, create=True)
    return open_ledger(url)


def test_the_ledger_stores_the_state_it_is_given_and_verify_checks_it(tmp_path: Path) -> None:
    first, more = _drafts(1), _drafts(3, start_tick=2)
    ledger = _reopened(tmp_path / "good.db", first)
    OPENED.append(ledger)
    states = _states_of(more, Fold(ledger.state_at("r")), 4)
    assert list(states) == [4, 8]
    ledger.append("r", more, expected=3, states=states)
    assert _snapshot_bytes(ledger, 4) == states[4][0]
    assert _snapshot_bytes(ledger, 8) == states[8][0]
    assert "r" not in ledger._heads  # pyright: ignore[reportPrivateUsage]
    assert ledger.verify("r").ok

    # a state that is not the fold's is stored as given, and verify names it
    bad = _reopened(tmp_path / "bad.db", first)  # not checked after the test: broken
    try:
        wrong = dict(states)
        wrong[4] = (encode_validated({"not": "the state"}), states[4][1])
        bad.append("r", more, expected=3, states=wrong)
        report = bad.verify("r")
        assert not report.ok and report.first_bad == 4
    finally:
        bad.close()


def test_a_snapshot_due_at_a_seq_not_given_is_folded_from_the_store(tmp_path: Path) -> None:
    first, more = _drafts(1), _drafts(3, start_tick=2)
    ledger = _reopened(tmp_path / "s.db", first)
    OPENED.append(ledger)
    states = _states_of(more, Fold(ledger.state_at("r")), 4)
    ledger.append("r", more, expected=3, states={8: states[8]})  # 4 left out
    assert _snapshot_bytes(ledger, 4) == states[4][0]
    assert _snapshot_bytes(ledger, 8) == states[8][0]
    assert ledger.verify("r").ok
