"""The catalogue: every type declared once, documented, and enforced."""

from __future__ import annotations

from pathlib import Path

import pytest

from telic.clock import VirtualClock
from telic.errors import BadPattern, UnknownEventType
from telic.events import CATALOGUE, EventKernel, event_type, matching_types
from telic.events.catalogue import DERIVED, render_markdown
from telic.events.patterns import compile_pattern
from telic.kinds import CATALOGUE as KINDS
from telic.kinds import RunCompleted, ToolFailed
from telic.transition import Transition, draft

from .kit import memory_ledger, take, virtual

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_docs_events_md_is_generated_from_the_catalogue() -> None:
    assert DOC.read_text() == render_markdown(), (
        "docs/events.md is stale: run `python -m telic.events > docs/events.md`"
    )


def test_every_transition_kind_is_an_event_type_and_every_type_is_documented() -> None:
    for kind, model in KINDS.items():
        assert CATALOGUE[kind].payload is model
    for name, et in CATALOGUE.items():
        assert et.doc, f"{name} has no description"
        assert f"| `{name}` |" in render_markdown()
    assert {et.name for et in DERIVED} == set(CATALOGUE) - set(KINDS)
    assert CATALOGUE["transition.committed"].sources == frozenset(KINDS)


def test_design_section_6_types_are_declared() -> None:
    for name in [
        "run.booted",
        "agent.spawned",
        "agent.restarted",
        "agent.terminated",
        "tick.started",
        "proposal.rejected",
        "transition.committed",
        "tool.failed",
        "tool.timeout",
        "budget.warning",
        "budget.exhausted",
        "loop.detected",
        "conflict.detected",
        "conflict.resolved",
        "hallucination.detected",
        "state.restored",
        "run.forked",
        "run.completed",
        "subscription.expired",
        "subscriber.lagged",
    ]:
        assert event_type(name).name == name
    with pytest.raises(UnknownEventType):
        event_type("task.started")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("run.completed", {"run.completed"}),
        (
            "tool.*",
            {
                "tool.started",
                "tool.completed",
                "tool.failed",
                "tool.timeout",
                "tool.unknown",
                "tool.finished",
            },
        ),
        ("*.failed", {"run.failed", "agent.failed", "tool.failed", "model.failed"}),
        ("tool.failed,tool.timeout", {"tool.failed", "tool.timeout"}),
        (
            "sub*",
            {
                "subscription.created",
                "subscription.expired",
                "subscription.ended",
                "subscriber.lagged",
            },
        ),
    ],
)
def test_globs(pattern: str, expected: set[str]) -> None:
    assert matching_types(pattern) == expected


def test_one_event_per_transition_per_subscription() -> None:
    every = compile_pattern("*")
    assert every == {k: k for k in KINDS}  # its own kind wins over the derived ones
    committed = compile_pattern("transition.committed")
    assert set(committed.values()) == {"transition.committed"}
    assert set(committed) == set(KINDS)
    ended = compile_pattern("run.ended,run.failed")
    assert ended == {
        "run.completed": "run.ended",
        "run.stopped": "run.ended",
        "run.failed": "run.failed",
    }


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "Tool.*",
        "tool..failed",
        ".tool",
        "tool.",
        "tool failed",
        "tool.[a-z]",
        "tool.?",
        "a,,b",
        "x" * 600,
        "nothing.*",
        "*.exploded",
    ],
)
def test_malformed_or_empty_patterns_are_bad(pattern: str) -> None:
    with pytest.raises(BadPattern):
        matching_types(pattern)


def test_exact_undeclared_names_are_unknown_event_types() -> None:
    events = EventKernel(memory_ledger("r"))
    with pytest.raises(UnknownEventType):
        events.subscribe("task.started")
    with pytest.raises(UnknownEventType):
        events.subscribe("tool.failed,tool.exploded")
    with pytest.raises(BadPattern):
        events.subscribe(None)  # type: ignore[arg-type]
    assert events.subscription_count == 0


def test_publishing_an_undeclared_kind_is_refused_before_anything_is_delivered() -> None:
    ledger = memory_ledger("r")
    events = EventKernel(ledger)
    sub = events.subscribe("*", run="r")
    good = Transition("r", 1, 0, None, "tick.started", (), 0, 1, {"tick": 0}, b"", b"")
    bad = good._replace(seq=2, kind="task.started")
    derived = good._replace(seq=2, kind="transition.committed")
    with pytest.raises(UnknownEventType):
        events.publish([good, bad])
    with pytest.raises(UnknownEventType):
        events.publish([good, derived])  # derived types are delivered, never published
    assert sub.queued == 0


def test_derived_events_carry_the_same_transition() -> None:
    async def body(clock: VirtualClock) -> None:
        ledger = memory_ledger("r")
        events = EventKernel(ledger, clock=clock)
        ended = events.subscribe("run.ended", run="r")
        every = events.subscribe("*", run="r")
        committed = events.subscribe("transition.committed", run="r")
        finished = events.subscribe("tool.finished,run.*", run="r")
        ts = ledger.append(
            "r",
            [
                draft(ToolFailed(call_id="c", agent="a", tool="t", error="E", message="m"), ts=1),
                draft(RunCompleted(reason="done"), ts=2),
            ],
        )
        events.publish(ts)
        (e,) = await take(ended, 1)
        assert (e.type, e.transition) == ("run.ended", ts[1])
        assert isinstance(e.payload, RunCompleted)
        assert [(x.type, x.seq) for x in await take(every, 2)] == [
            ("tool.failed", 1),
            ("run.completed", 2),
        ]
        assert [x.type for x in await take(committed, 2)] == ["transition.committed"] * 2
        assert [x.type for x in await take(finished, 2)] == ["tool.finished", "run.completed"]
        assert ended.queued == every.queued == committed.queued == finished.queued == 0
        await events.aclose()

    virtual(body)


def test_the_example_in_docs_events_md_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text()
    (example,) = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    exec(compile(example, str(DOC), "exec"), {"__name__": "docs_example"})
    assert capsys.readouterr().out == "1 tick.started tick=1\n"
