"""Properties of the ledger's fast paths: they must agree byte for byte with the definitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from telic.canonical import encode
from telic.ledger import MemoryLedger
from telic.ledger.base import _body, _state_bytes  # pyright: ignore[reportPrivateUsage]
from telic.reducer import Fold
from telic.transition import record_body

from .suite import fill

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_int = st.integers(0, 2**62)


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
    assert _body(seq, tick, agent, kind, causes, ts, 1, raw) == record_body(
        seq, tick, agent, kind, causes, ts, 1, raw
    )


def test_state_bytes_is_the_canonical_encoding() -> None:
    with MemoryLedger() as ledger:
        written = fill(ledger, "r", 40)
    fold = Fold()
    for t in written:
        fold.apply(t)
        assert _state_bytes(fold) == encode(fold.peek()) == fold.encoded()
