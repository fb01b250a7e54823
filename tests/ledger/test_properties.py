"""Properties of the ledger's fast paths: they must agree byte for byte with the definitions."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from telic.canonical import encode
from telic.kinds import TickCompleted
from telic.ledger import MemoryLedger
from telic.reducer import (
    RECENT_WINDOW,
    Fold,
    _unseen,  # pyright: ignore[reportPrivateUsage]
    state_hash,
)
from telic.transition import Transition, draft, record_body

from .suite import fill

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_int = st.integers(0, 2**62)


def _reference_body(
    seq: int,
    tick: int,
    agent: str | None,
    kind: str,
    causes: tuple[int, ...],
    ts: int,
    payload: bytes,
) -> bytes:
    """The definition: the canonical JSON of the record's fields, payload embedded as is."""
    fragment: Any = orjson.Fragment(payload)  # pyright: ignore[reportAttributeAccessIssue,reportUnknownMemberType]
    record = {
        "agent": agent,
        "causes": causes,
        "kind": kind,
        "payload": fragment,
        "seq": seq,
        "tick": tick,
        "ts": ts,
        "v": 1,
    }
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


@given(
    seq=_int,
    tick=_int,
    agent=st.none() | st.text(),
    kind=st.text(min_size=1),
    causes=st.lists(_int, max_size=5).map(tuple),
    ts=_int,
    payload=st.dictionaries(st.text(), _json, max_size=5),
)
def test_fast_record_body_is_the_canonical_body(
    seq: int,
    tick: int,
    agent: str | None,
    kind: str,
    causes: tuple[int, ...],
    ts: int,
    payload: dict[str, object],
) -> None:
    raw = encode(payload)
    assert record_body(seq, tick, agent, kind, causes, ts, 1, raw) == _reference_body(
        seq, tick, agent, kind, causes, ts, raw
    )


def test_what_a_snapshot_stores_is_the_state_in_its_own_order() -> None:
    """``Fold.encoded`` (a snapshot's bytes) decodes to the state, its mappings in the order
    they were filled, with the canonical form of the state (nothing lost or changed)."""
    with MemoryLedger() as ledger:
        written = fill(ledger, "r", 40)
    fold = Fold()
    for t in written:
        fold.apply(t)
        stored = fold.encoded()
        back = orjson.loads(stored)
        assert encode(back) == encode(fold.peek())
        assert orjson.dumps(back) == stored == orjson.dumps(fold.peek())
        assert list(back["agents"]) == list(fold.peek()["agents"])


_key = st.sampled_from(["a", "b", "c", "hotel", ""])
_agent = st.sampled_from(["x", "y"])
_step = st.one_of(
    st.tuples(st.just("memory.updated"), _agent, _key, _json),
    st.tuples(st.just("belief.updated"), _agent, _key, _json),
    st.tuples(st.just("plan.updated"), _agent, _key, _json),
    st.tuples(st.just("state.restored"), _agent, _key, _json),
    st.tuples(st.just("hash"), _agent, _key, _json),
)


def _transition(seq: int, kind: str, agent: str, key: str, value: object) -> Transition:
    data: dict[str, object]
    if kind == "state.restored":
        data = {
            "target": 0,
            "tick": 0,
            "reason": "test",
            "memory": {agent: {key: value}},
            "beliefs": {},
            "plan": {key: {"value": value, "agent": agent, "seq": 0}},
            "progress": 0.0,
        }
    else:
        data = {"agent": agent, "key": key, "value": value, "evidence": []}
    return Transition("r", seq, 1, agent, kind, (), seq, 1, data, b"", b"")


@given(steps=st.lists(_step, max_size=40))
def test_incremental_state_hash_is_the_state_hash(
    steps: list[tuple[str, str, str, object]],
) -> None:
    """A fold's cached entry digests never drift from the definition, whatever it applies."""
    fold = Fold()
    for seq, (kind, agent, key, value) in enumerate(steps, 1):
        if kind == "hash":
            assert fold.hash() == state_hash(fold.peek()) == state_hash(fold.state())
            continue
        fold.apply(_transition(seq, kind, agent, key, value))
    assert fold.hash() == state_hash(fold.peek())


@given(value=_json, other=_json)
def test_state_hash_covers_every_entry(value: object, other: object) -> None:
    a, b = Fold(), Fold()
    a.hash()  # a tracks digests incrementally; b computes them once at the end
    a.apply(_transition(1, "memory.updated", "x", "k", value))
    b.apply(_transition(1, "memory.updated", "x", "k", other))
    assert (a.hash() == b.hash()) == (encode(value) == encode(other))


_folded = st.one_of(
    _step.filter(lambda s: s[0] != "hash"),
    st.tuples(st.just("proposal.made"), st.sampled_from(["x", "y", "z"]), _key, _json),
    st.tuples(st.just("tick.started"), _agent, _key, _json),
)


def _any_transition(seq: int, kind: str, agent: str, key: str, value: object) -> Transition:
    if kind == "proposal.made":
        data: dict[str, object] = {"agent": agent, "action": key or "act", "args": {"v": value}}
        return Transition("r", seq, 1, agent, kind, (), seq, 1, data, b"", b"")
    if kind == "tick.started":
        return Transition("r", seq, seq, None, kind, (), seq, 1, {"tick": seq}, b"", b"")
    return _transition(seq, kind, agent, key, value)


@given(
    steps=st.lists(_folded, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    hashed=st.booleans(),
)
def test_apply_all_is_apply_one_by_one(
    steps: list[tuple[str, str, str, object]], cuts: list[int], hashed: bool
) -> None:
    """``apply_all`` (which skips the fingerprints a chunk pushes out of the window) leaves
    the same state, byte for byte, and the same hash as :meth:`Fold.apply` on each."""
    ts = [_any_transition(seq, *step) for seq, step in enumerate(steps, 1)]
    one, many = Fold(), Fold()
    if hashed:
        one.hash()
        many.hash()
    for t in ts:
        one.apply(t)
    bounds = sorted({0, len(ts), *(c for c in cuts if c <= len(ts))})
    for lo, hi in itertools.pairwise(bounds):
        many.apply_all(iter(ts[lo:hi]))
    assert many.encoded() == one.encoded()
    assert many.hash() == one.hash() == state_hash(one.peek())


def test_apply_all_skips_the_fingerprints_that_leave_the_window() -> None:
    ts = [
        _any_transition(seq, "proposal.made", "x" if seq % 3 else "y", f"a{seq}", seq)
        for seq in range(1, 41)
    ]
    one, many = Fold(), Fold()
    for t in ts:
        one.apply(t)
    many.apply_all(ts)
    recent = many.peek()["agents"]["x"]["recent"]
    assert len(recent) == RECENT_WINDOW and "" not in recent
    assert many.encoded() == one.encoded()
    assert len(_unseen(ts)) == (27 - RECENT_WINDOW) + (13 - RECENT_WINDOW)


def test_head_fold_is_an_independent_copy_with_its_digests() -> None:
    with MemoryLedger(snapshot_every=8) as ledger:
        written = fill(ledger, "r", 20)
        done = TickCompleted(
            tick=5, progress=0.5, delta=0.5, valid=True, state_hash=state_hash(ledger.state_at("r"))
        )
        written += ledger.append("r", [draft(done, ts=2_000_000, tick=5)])
        assert ledger.verify("r", start=17).ok  # folds from the snapshot at 16, keeps the head
        fold = ledger.head_fold("r")
        kept = fold._d  # pyright: ignore[reportPrivateUsage]
        assert kept is not None  # the digests verify took (at a tick.completed) came along
        assert kept is not ledger.head_fold("r")._d  # pyright: ignore[reportPrivateUsage]
        assert fold.peek() == ledger.state_at("r")
        assert fold.hash() == state_hash(ledger.state_at("r"))
        nxt = _transition(22, "memory.updated", "x", "new", {"v": 1})
        fold.apply(nxt)  # the copy moves on; the ledger's head does not
        assert ledger.state_at("r")["seq"] == 21
        assert fold.hash() == state_hash(fold.peek())
        assert fold.peek()["memory"]["x"]["new"] == {"v": 1}
        assert "new" not in ledger.state_at("r")["memory"].get("x", {})
        assert written[-1].seq == 21
