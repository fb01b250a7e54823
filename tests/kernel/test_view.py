"""What a mind reads: one copy of the state per tick, made only when read, never the kernel's."""

from __future__ import annotations

from typing import Any

import pytest

from telic.errors import ViewExpired
from telic.kernel import AgentSpec
from telic.kernel.view import TickState
from telic.minds.base import FunctionMind, View
from telic.proposal import Proposal
from telic.reducer import Fold

from .kit import Played, config, finish, play, remember


def test_a_tick_state_copies_once_when_first_read_and_never_after_it_closed() -> None:
    fold = Fold()
    lazy = TickState(fold, 1)
    assert lazy.status == "new"
    assert lazy.json is lazy.json  # one copy, shared
    assert lazy.json["agents"] is lazy.json["agents"]
    assert lazy.json["agents"] is not fold.peek()["agents"]
    lazy.close()
    assert lazy.status == "new"  # read before closing: still readable

    unread = TickState(fold, 2)
    unread.close()
    with pytest.raises(ViewExpired, match="tick 2 was first read after the minds had answered"):
        _ = unread.status


def test_minds_of_one_tick_share_a_read_only_copy_and_a_mind_that_changes_it_fails() -> None:
    seen: list[View] = []

    def vandal(view: View) -> Proposal:
        seen.append(view)
        if view.tick == 1:
            memory: Any = view.state.memory
            memory["planted"] = {"k": "by a mind"}  # refused: the view is read-only
        return finish()

    def reader(view: View) -> Proposal:
        seen.append(view)
        assert "planted" not in view.state.memory
        return remember("r", view.tick) if view.tick < 2 else finish()

    played = play(
        config(
            AgentSpec("a", "worker", FunctionMind(vandal)),
            AgentSpec("b", "worker", FunctionMind(reader)),
        )
    )
    assert played.result is not None and played.result.status == "completed"
    failed = played.one("agent.failed", "a").data
    assert failed["message"].startswith("ReadOnly: this dict is a read-only view")
    assert not played.of("agent.failed", "b")
    assert "planted" not in played.state()["memory"]
    first_tick = [v for v in seen if v.tick == 1]
    assert first_tick[0].state.memory is first_tick[1].state.memory


def test_a_view_read_in_a_later_tick_crashes_only_that_mind() -> None:
    kept: list[View] = []

    def hoarder(view: View) -> Proposal:
        if not kept:
            kept.append(view)  # keeps the view and never reads it in its own tick
            return remember("k", 1)
        _ = kept[0].state.tick  # a stale view: refused, not silently later state
        return finish()

    def steady(view: View) -> Proposal:
        return remember("b", view.tick)

    played = play(
        config(
            AgentSpec("a", "worker", FunctionMind(hoarder)),
            AgentSpec("b", "worker", FunctionMind(steady)),
        ),
        max_ticks=2,
    )
    failed = Played(played.ledger, played.run_id).of("agent.failed")
    assert [t.agent for t in failed] == ["a"], "the stale read crashes its own agent only"
    assert "ViewExpired" in failed[0].data["message"]
    assert "tick 1" in failed[0].data["message"]
    assert played.state()["memory"]["b"] == {"b": 2}  # the other mind went on
