"""Read-only views of the state: every way to change one is refused, reading works as on JSON."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telic.errors import ReadOnly
from telic.frozen import FrozenDict, FrozenList, freeze, thaw

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)


def _state() -> dict[str, Any]:
    return {"agents": {"a": {"observations": [{"seq": 1, "content": {"x": [1, 2]}}]}}, "n": 1}


CHANGES: list[tuple[str, Callable[[Any], object]]] = [
    ("set", lambda s: s.__setitem__("n", 2)),
    ("del", lambda s: s.__delitem__("n")),
    ("nested set", lambda s: s["agents"]["a"].__setitem__("role", "x")),
    ("update", lambda s: s["agents"].update(b={})),
    ("setdefault", lambda s: s.setdefault("z", 1)),
    ("pop", lambda s: s.pop("n")),
    ("popitem", lambda s: s.popitem()),
    ("clear", lambda s: s["agents"].clear()),
    ("|=", lambda s: s.__ior__({"z": 1})),
    ("append", lambda s: s["agents"]["a"]["observations"].append(1)),
    ("extend", lambda s: s["agents"]["a"]["observations"].extend([1])),
    ("insert", lambda s: s["agents"]["a"]["observations"].insert(0, 1)),
    ("list pop", lambda s: s["agents"]["a"]["observations"].pop()),
    ("remove", lambda s: s["agents"]["a"]["observations"].remove(1)),
    ("sort", lambda s: s["agents"]["a"]["observations"].sort()),
    ("reverse", lambda s: s["agents"]["a"]["observations"].reverse()),
    ("list set", lambda s: s["agents"]["a"]["observations"].__setitem__(0, 1)),
    ("list del", lambda s: s["agents"]["a"]["observations"].__delitem__(0)),
    ("+=", lambda s: s["agents"]["a"]["observations"].__iadd__([1])),
    ("*=", lambda s: s["agents"]["a"]["observations"].__imul__(2)),
    ("deep", lambda s: s["agents"]["a"]["observations"][0]["content"]["x"].append(3)),
    ("via values", lambda s: next(iter(s["agents"].values())).clear()),
    ("via items", lambda s: next(iter(s.items()))[1].clear()),
    ("via iteration", lambda s: next(iter(s["agents"]["a"]["observations"])).clear()),
    ("via get", lambda s: s.get("agents").clear()),
    ("via dict()", lambda s: dict(s)["agents"].clear()),
    ("via unpacking", lambda s: {**s}["agents"].clear()),
    ("via |", lambda s: (s | {})["agents"].clear()),
    ("via list()", lambda s: list(s["agents"]["a"]["observations"])[-1].clear()),
    ("via slice", lambda s: s["agents"]["a"]["observations"][:][0].clear()),
    ("via +", lambda s: (s["agents"]["a"]["observations"] + [])[0].clear()),
    ("via reversed", lambda s: next(reversed(s["agents"]["a"]["observations"])).clear()),
]


@pytest.mark.parametrize(("name", "change"), CHANGES, ids=[n for n, _ in CHANGES])
def test_every_change_is_refused_and_the_source_is_unchanged(
    name: str, change: Callable[[Any], object]
) -> None:
    source = _state()
    before = copy.deepcopy(source)
    with pytest.raises(ReadOnly, match="read-only view of the run's state"):
        change(freeze(source))
    assert source == before, name


def test_read_only_is_a_type_error_too() -> None:
    with pytest.raises(TypeError):
        freeze({"a": 1})["a"] = 2


def test_a_view_reads_and_serialises_like_the_json_it_wraps() -> None:
    source = _state()
    view = freeze(source)
    assert isinstance(view, dict) and isinstance(view["agents"]["a"]["observations"], list)
    assert view == source
    assert orjson.dumps(view) == orjson.dumps(source)
    assert json.dumps(view, sort_keys=True) == json.dumps(source, sort_keys=True)
    assert view["agents"] is view["agents"]  # a nested view is made once
    assert view.get("missing", 7) == 7 and view.get("n") == 1
    assert list(view) == list(source) and len(view) == len(source) and "n" in view
    observations = view["agents"]["a"]["observations"]
    assert observations[-1]["seq"] == 1 and len(observations[0:1]) == 1


def test_thaw_and_copy_give_a_private_changeable_copy() -> None:
    source = _state()
    view = freeze(source)
    for mine in (view.thaw(), view.copy(), copy.copy(view), copy.deepcopy(view), thaw(view)):
        assert type(mine) is dict and mine == source
        mine["agents"]["a"]["observations"].append("mine")
    assert source == _state()
    assert type(pickle.loads(pickle.dumps(view))) is FrozenDict
    listed = freeze([1, {"a": 1}])
    assert isinstance(listed, FrozenList) and type(listed.thaw()) is list
    assert freeze(view) is view and freeze(3) == 3


@given(json_values)
def test_freezing_any_json_value_keeps_its_content(value: Any) -> None:
    view = freeze(value)
    assert view == value
    assert orjson.dumps(view) == orjson.dumps(value)
    assert thaw(view) == value
