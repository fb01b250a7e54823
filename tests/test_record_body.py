"""Golden vectors of the one record encoder, :func:`telic.transition.record_body`.

These bytes and hashes are the ledger format: a change here changes every chain hash, and
must come with a new format version (docs/ledger.md, "Hashing").
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from telic.canonical import ZERO_HASH, encode
from telic.errors import RecordInvalid
from telic.transition import chain_hash, record_body

GOLDEN: list[tuple[dict[str, Any], bytes, str]] = [
    (
        {
            "seq": 1,
            "tick": 0,
            "agent": None,
            "kind": "run.booted",
            "causes": (),
            "ts": 1_700_000_000_000_000,
            "payload": {"x": -0.0, "y": 0.0},  # -0.0 stays -0.0: it is not 0.0
        },
        b'{"agent":null,"causes":[],"kind":"run.booted","payload":{"x":-0.0,"y":0.0},'
        b'"seq":1,"tick":0,"ts":1700000000000000,"v":1}',
        "1b98950fdcc27601d517f7cf5f7461bde392a727c1dd452667a590f7811d5014",
    ),
    (
        {
            "seq": 2,
            "tick": 3,
            "agent": "agent é",
            "kind": "memory.updated",
            "causes": (1,),
            "ts": 1_700_000_000_000_001,
            # keys sort by code point (UTF-8 byte order), not by UTF-16 unit as RFC 8785
            "payload": {"😀": 1, "\ue000": 2, "a": 3, "B": 4},
        },
        '{"agent":"agent é","causes":[1],"kind":"memory.updated",'
        '"payload":{"B":4,"a":3,"\ue000":2,"😀":1},"seq":2,"tick":3,"ts":1700000000000001,"v":1}'.encode(),
        "89f12ebde97c8ba8126cdbeec0a8dc17ddd787bf8e42305f87c593c080e86d0a",
    ),
    (
        {
            "seq": 2**63 - 1,
            "tick": -(2**63),
            "agent": "a",
            "kind": "plan.updated",
            "causes": (1, 2**63 - 1),
            "ts": 2**63 - 1,
            # payload integers may use 64 bits unsigned; floats print shortest, orjson's way
            "payload": {"big": 2**63 - 1, "neg": -(2**63), "u64": 2**64 - 1, "f": 1e21, "g": 1e-7},
        },
        b'{"agent":"a","causes":[1,9223372036854775807],"kind":"plan.updated",'
        b'"payload":{"big":9223372036854775807,"f":1e+21,"g":1e-7,"neg":-9223372036854775808,'
        b'"u64":18446744073709551615},"seq":9223372036854775807,"tick":-9223372036854775808,'
        b'"ts":9223372036854775807,"v":1}',
        "8b05017abda7c7614943adc7d925a2d56a33e13040c2b417c1d3a9039f9984a2",
    ),
]


def _body(v: dict[str, Any]) -> bytes:
    return record_body(
        v["seq"], v["tick"], v["agent"], v["kind"], v["causes"], v["ts"], 1, encode(v["payload"])
    )


def test_golden_bodies_and_chain() -> None:
    prev = ZERO_HASH
    for fields, body, hash_hex in GOLDEN:
        assert _body(fields) == body
        prev = chain_hash(prev, body)
        assert prev.hex() == hash_hex


@pytest.mark.parametrize("index", [0, 1])
def test_the_body_is_sorted_compact_utf8_json(index: int) -> None:
    """Independently of orjson: the standard library's sorted, compact, UTF-8 JSON (for
    values whose floats both print alike)."""
    fields, body, _ = GOLDEN[index]
    record = {**fields, "causes": list(fields["causes"]), "v": 1}
    expected = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert body == expected.encode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 1.0),
        ("tick", 1.5),  # %d would print 1
        ("tick", True),
        ("tick", "1"),
        ("ts", 2**63),
        ("ts", None),
        ("v", 1.0),
        ("causes", (1.5,)),
        ("causes", (True,)),
        ("causes", [1]),
        ("causes", (2**64,)),
        ("agent", 7),
        ("agent", "\ud800"),
        ("kind", None),
        ("kind", "\udfff"),
        ("payload", "{}"),
    ],
)
def test_what_cannot_be_hashed_exactly_is_refused(field: str, value: object) -> None:
    args: dict[str, Any] = {
        "seq": 1,
        "tick": 0,
        "agent": "a",
        "kind": "tick.started",
        "causes": (),
        "ts": 0,
        "v": 1,
        "payload": b"{}",
    }
    args[field] = value
    with pytest.raises(RecordInvalid) as raised:
        record_body(**args)
    assert raised.value.field == field
