from __future__ import annotations

import math

import pytest

from telic.canonical import encode
from telic.errors import NotCanonical, UnknownKind
from telic.kinds import CATALOGUE, TickStarted, payload_model
from telic.transition import draft, record_body


def test_canonical_encoding_sorts_keys_and_refuses_non_finite() -> None:
    assert encode({"b": 1, "a": [1.5, None]}) == b'{"a":[1.5,null],"b":1}'
    with pytest.raises(NotCanonical):
        encode({"x": [math.nan]})
    with pytest.raises(NotCanonical):
        encode({"x": math.inf})
    with pytest.raises(NotCanonical):
        encode({1: "non-string key"})


def test_catalogue_is_explicit_and_unknown_kinds_are_refused() -> None:
    assert "run.booted" in CATALOGUE
    assert all(cls.kind == kind for kind, cls in CATALOGUE.items())
    with pytest.raises(UnknownKind):
        payload_model("run.exploded")


def test_record_body_is_canonical() -> None:
    d = draft(TickStarted(tick=3), ts=5, tick=3)
    body = record_body(1, d.tick, d.agent, d.kind, d.causes, d.ts, 1, d.payload)
    assert body == (
        b'{"agent":null,"causes":[],"kind":"tick.started","payload":{"tick":3},'
        b'"seq":1,"tick":3,"ts":5,"v":1}'
    )
