"""The typed run state: every attribute reads the reducer's JSON form, and nothing else.

The property: for generated transition sequences, reading every attribute of
:class:`telic.state.RunState` (recursively) rebuilds the reducer's dict exactly, byte for byte
in its canonical encoding, and each value has the type its attribute declares. So a key the
reducer writes that the typed state does not know (or the other way round) fails here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telic.canonical import encode
from telic.errors import ReadOnly
from telic.frozen import FrozenDict, thaw
from telic.kinds import (
    AgentFailed,
    AgentRecord,
    AgentRestarted,
    AgentSpawned,
    AgentTerminated,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    ArtifactRecorded,
    BeliefUpdated,
    BudgetExhausted,
    BudgetWarning,
    ExplorationSpawned,
    HallucinationDetected,
    MemoryUpdated,
    MessageSent,
    ModelCalled,
    ObservationRecorded,
    Payload,
    PlanUpdated,
    ProposalMade,
    ProposalRejected,
    RunBooted,
    RunCompleted,
    RunForked,
    RunPaused,
    RunResumed,
    StateRestored,
    SupervisionTree,
    SupervisorEscalated,
    SupervisorRestarted,
    TeamRecord,
    TickCompleted,
    TickStarted,
    ToolCompleted,
    ToolFailed,
    ToolStarted,
    ToolTimeout,
    ToolUnknownOutcome,
)
from telic.kinds import Claim as KindClaim
from telic.reducer import Fold, initial_state
from telic.state import Field, MaybeSub, Record, RunState, Sub, Tables, attributes
from telic.transition import Transition

# -- reading every attribute ------------------------------------------------------------------


def _conforms(value: Any, tp: Any) -> bool:
    """Whether the JSON ``value`` has the declared type ``tp`` (JSON numbers: an int is a
    float)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin is Mapping:
        _, of = typing.get_args(tp)
        return isinstance(value, dict) and all(_conforms(v, of) for v in value.values())  # pyright: ignore[reportUnknownVariableType,reportUnknownMemberType]
    if origin is Sequence:
        (of,) = typing.get_args(tp)
        return isinstance(value, list) and all(_conforms(v, of) for v in value)  # pyright: ignore[reportUnknownVariableType]
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def rebuild(record: Record) -> dict[str, Any]:
    """The JSON form as the typed attributes read it (and their types checked on the way)."""
    out: dict[str, Any] = {}
    for name, attr in attributes(type(record)).items():
        value = getattr(record, name)
        if isinstance(attr, Field):
            declared: Any = attr.__orig_class__.__args__[0]  # pyright: ignore[reportAttributeAccessIssue,reportUnknownMemberType,reportUnknownVariableType]
            assert _conforms(value, declared), f"{type(record).__name__}.{name} = {value!r}"
            out[name] = thaw(value)
        elif isinstance(attr, Sub):
            out[name] = rebuild(value)
        elif isinstance(attr, MaybeSub):
            if value is not None:
                out[name] = rebuild(value)
            elif name in record.json:  # null, not absent
                out[name] = None
        elif isinstance(attr, Tables):
            if name in record.json or not attr.optional:  # an optional one may be absent
                out[name] = {k: rebuild(v) for k, v in value.items()}
        else:
            out[name] = [rebuild(v) for v in value]
    return out


# -- generated transition sequences ------------------------------------------------------------

AGENTS = ("a", "b", "explorer-1")
_agent = st.sampled_from(AGENTS)
_key = st.sampled_from(("k", "hotel", "budget"))
_text = st.sampled_from(("", "x", "why"))
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(("s", "t")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_key, inner, max_size=3),
    max_leaves=6,
)
_n = st.integers(1, 30)
_call_id = st.sampled_from(("c1", "c2", "c3"))
_tool = st.sampled_from(("echo", "fetch"))


def _booted(teams: bool) -> RunBooted:
    roster = tuple(AgentRecord(name=n, role="worker", tools=("echo",)) for n in AGENTS[:2])
    tree = (
        SupervisionTree(
            strategy="one_for_all",
            intensity=2,
            teams=(TeamRecord(name="crew", agents=("a",), intensity=1),),
        )
        if teams
        else None
    )
    return RunBooted(
        goal="g",
        agents=roster,
        budget={"cost": 5.0, "tokens": 1000.0},
        currency="CHF",
        supervision=tree,
    )


_claim = st.builds(KindClaim, key=_key, value=_json, evidence=st.tuples(_n))
_events: st.SearchStrategy[Payload | str] = st.one_of(
    st.just("restore"),
    st.builds(RunResumed, reason=_text, head=_n),
    st.builds(RunForked, parent=st.just("p"), at=_n),
    st.builds(RunPaused, reason=_text),
    st.builds(RunCompleted, reason=_text),
    st.builds(TickStarted, tick=_n),
    st.builds(
        TickCompleted,
        tick=_n,
        progress=st.floats(0, 1),
        delta=st.just(0.0),
        valid=st.booleans(),
        state_hash=st.just("0" * 64),
    ),
    st.builds(
        AgentSpawned,
        agent=_agent,
        role=_text,
        supervisor=st.sampled_from(("root", "crew")),
        temporary=st.booleans(),
        parent=st.none() | _agent,
        question=st.none() | _text,
        tools=st.tuples(_tool),
    ),
    st.builds(AgentRestarted, agent=_agent, supervisor=st.just("root"), attempt=_n, reason=_text),
    st.builds(AgentFailed, agent=_agent, error=_text, message=_text),
    st.builds(AgentTerminated, agent=_agent, reason=st.sampled_from(("normal", "killed"))),
    st.builds(
        SupervisorEscalated,
        supervisor=st.sampled_from(("root", "crew", "gone")),
        restarts=_n,
        period_s=st.just(5.0),
        reason=_text,
    ),
    st.builds(
        SupervisorRestarted,
        supervisor=st.sampled_from(("crew", "gone")),
        parent=st.just("root"),
        attempt=_n,
    ),
    st.builds(
        ProposalMade,
        agent=_agent,
        action=st.sampled_from(("remember", "tool", "finish")),
        args=st.dictionaries(_key, _json, max_size=2),
        confidence=st.just(1.0),
    ),
    st.builds(ProposalRejected, agent=_agent, proposal=_n, check=_text, reason=_text),
    st.builds(
        BudgetWarning, dimension=st.sampled_from(("cost", "tokens")), spent=st.just(1.0), limit=_n
    ),
    st.builds(BudgetExhausted, dimension=st.just("cost"), spent=st.just(6.0), limit=st.just(5.0)),
    st.builds(ApprovalRequested, proposal=st.integers(1, 3), agent=_agent, tool=_tool),
    st.builds(ApprovalGranted, proposal=st.integers(1, 3), by=_text),
    st.builds(ApprovalDenied, proposal=st.integers(1, 3), by=_text, reason=_text),
    st.builds(HallucinationDetected, agent=_agent, proposal=_n, claim=_claim, reason=_text),
    st.builds(
        ExplorationSpawned,
        proposal=_n,
        agent=_agent,
        explorer=st.just("explorer-1"),
        question=_text,
        confidence=st.just(0.1),
        threshold=st.just(0.5),
    ),
    st.builds(
        ToolStarted,
        call_id=_call_id,
        agent=_agent,
        tool=_tool,
        args=st.dictionaries(_key, _json, max_size=2),
        idempotent=st.booleans(),
        attempt=st.integers(1, 3),
    ),
    st.builds(ToolCompleted, call_id=_call_id, agent=_agent, tool=_tool, result=_json),
    st.builds(ToolFailed, call_id=_call_id, agent=_agent, tool=_tool, error=_text, message=_text),
    st.builds(ToolTimeout, call_id=_call_id, agent=_agent, tool=_tool, timeout_s=st.just(1.0)),
    st.builds(ToolUnknownOutcome, call_id=_call_id, agent=_agent, tool=_tool),
    st.builds(ObservationRecorded, agent=_agent, source=_text, content=_json),
    st.builds(MemoryUpdated, agent=_agent, key=_key, value=_json),
    st.builds(BeliefUpdated, agent=_agent, key=_key, value=_json, evidence=st.tuples(_n)),
    st.builds(PlanUpdated, agent=_agent, key=_key, value=_json),
    st.builds(MessageSent, sender=_agent, to=_agent, content=_json),
    st.builds(
        ArtifactRecorded,
        name=st.sampled_from(("a.md", "b.json")),
        media_type=st.just("text/markdown"),
        content=_json,
    ),
    st.builds(
        ModelCalled,
        agent=_agent,
        model=st.just("m"),
        request_digest=st.just("d"),
        response=st.none(),
        input_tokens=st.integers(0, 50),
        output_tokens=st.integers(0, 50),
        cost=st.floats(0, 0.5),
    ),
)


def _transition(seq: int, payload: Payload) -> Transition:
    data = payload.model_dump(mode="json")
    return Transition(
        "r", seq, 1, data.get("agent"), payload.kind, (), 1_000_000 * seq, 1, data, b"", b""
    )


def _fold(teams: bool, events: list[Payload | str], *, check_live: bool = False) -> list[Fold]:
    """The fold after each transition of a run booted with(out) teams, then ``events``
    (``check_live``: and its live typed state, read after each, is its JSON form)."""
    fold, saved, seen = Fold(), initial_state(), list[Fold]()
    fold.apply(_transition(1, _booted(teams)))
    seen.append(Fold(fold.peek()))
    for seq, event in enumerate(events, 2):
        if event == "restore":  # back to the state last restored to (as the kernel does)
            past, saved = saved, fold.state()
            event = StateRestored(
                target=1,
                tick=0,
                reason="test",
                memory=past["memory"],
                beliefs=past["beliefs"],
                plan=past["plan"],
                progress=past["progress"],
            )
        assert not isinstance(event, str)
        fold.apply(_transition(seq, event))
        if check_live:
            assert rebuild(fold.live) == fold.peek()
        seen.append(Fold(fold.peek()))
    return seen


@settings(max_examples=150)
@given(teams=st.booleans(), events=st.lists(_events, max_size=30))
def test_every_typed_attribute_reads_the_reducers_json_form_and_nothing_else(
    teams: bool, events: list[Payload | str]
) -> None:
    for fold in _fold(teams, events):
        json = fold.peek()
        typed = RunState(json)
        rebuilt = rebuild(typed)
        assert rebuilt == json
        assert encode(rebuilt) == encode(json)
        assert fold.encoded() == orjson.dumps(json)  # what a snapshot stores: in its order
        assert typed.json is json  # a face over the reducer's dict, not a copy of it
        assert rebuild(fold.live) == json


@settings(max_examples=100)
@given(teams=st.booleans(), events=st.lists(_events, max_size=30))
def test_the_live_typed_state_follows_the_fold_as_it_changes(
    teams: bool, events: list[Payload | str]
) -> None:
    """``Fold.live`` is read while the fold changes under it: the records it keeps for reads
    must never show a JSON object the fold has replaced."""
    _fold(teams, events, check_live=True)


def test_a_record_read_before_an_entry_is_replaced_reads_the_new_entry() -> None:
    fold = Fold()
    fold.apply(_transition(1, _booted(False)))
    fold.apply(_transition(2, PlanUpdated(agent="a", key="k", value=1)))
    plan = fold.live.plan
    assert plan["k"].value == 1
    fold.apply(_transition(3, PlanUpdated(agent="a", key="k", value=2)))
    assert plan["k"].value == 2 and fold.live.plan["k"].value == 2
    restored = StateRestored(
        target=1, tick=0, reason="test", memory={}, beliefs={}, plan={}, progress=0.0
    )
    fold.apply(_transition(4, restored))
    assert "k" not in fold.live.plan and fold.live.plan.get("k") is None


def test_the_initial_state_is_typed_too() -> None:
    assert rebuild(RunState(initial_state())) == initial_state()
    assert Fold().live.supervision is None and Fold().live.forked_from is None


# -- read-only ---------------------------------------------------------------------------------


def _sample() -> RunState:
    events: list[Payload | str] = [
        AgentSpawned(agent="a", role="worker"),
        ToolCompleted(call_id="c", agent="a", tool="echo", result={"x": [1]}),
        PlanUpdated(agent="a", key="hotel", value={"total_chf": 200}),
    ]
    return _fold(True, events)[-1].live


def test_a_record_refuses_every_change() -> None:
    state = _sample()
    agent = state.agents["a"]
    with pytest.raises(ReadOnly, match="this RunState is a read-only view"):
        state.tick = 9  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(ReadOnly):
        agent.status = "killed"  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(ReadOnly):
        state.spent = state.spent  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(AttributeError):
        state.extra = 1  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(ReadOnly):
        del state.goal
    with pytest.raises(TypeError):
        state.agents["b"] = agent  # pyright: ignore[reportIndexIssue]
    assert state.agents["a"].status == "running"


def test_over_a_frozen_view_the_values_refuse_changes_too() -> None:
    live = _sample()
    view = RunState(FrozenDict(live.json))
    content: Any = view.agents["a"].observations[-1].content
    with pytest.raises(ReadOnly):
        content["x"].append(2)
    plan: Any = view.plan["hotel"].value
    with pytest.raises(ReadOnly):
        plan["total_chf"] = 1
    assert live.plan["hotel"].value == {"total_chf": 200}
    assert live.agents["a"].observations[-1].content == {"x": [1]}


def test_records_compare_by_their_json_form() -> None:
    state = _sample()
    assert RunState(state.json) == state
    assert RunState(FrozenDict(state.json)) == state
    assert state.agents["a"] == state.agents["a"]
    assert state != RunState(initial_state())
    assert state.spent.of("cost") == 0.0 and state.spent.of("unknown") == 0
    assert state.budget_left() == {"cost": 5.0, "tokens": 1000.0}
