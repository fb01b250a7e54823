"""Conflicts: proposals of one tick that claim the same resource, resolved by a named policy.

The winner's effect is committed; every loser is rejected with the ``conflict`` check.
"""

from __future__ import annotations

from typing import Any

import pytest

from telic.errors import ConfigError
from telic.kernel import Budget
from telic.policy import Budgeter, FirstByOrder, Policy, PriorityByRole, Resolver
from telic.proposal import Proposal

from .kit import Played, agent, config, finish, plan, play


def _hotel(name: str, chf: float) -> dict[str, Any]:
    return {"name": name, "total_chf": chf}


def _conflict(played: Played) -> tuple[dict[str, Any], dict[str, Any]]:
    return played.one("conflict.detected").data, played.one("conflict.resolved").data


def _hotels(resolver: Resolver, budget: Budget, *offers: tuple[str, str, float]) -> Played:
    agents = [
        agent(name, plan("hotel", _hotel(hotel, chf)), finish(), role=name)
        for name, hotel, chf in offers
    ]
    return play(config(*agents, budget=budget, policy=Policy(resolver=resolver)))


def _winner_and_losers(played: Played) -> tuple[str, list[str]]:
    detected, resolved = _conflict(played)
    by_seq = dict(zip(detected["proposals"], detected["agents"], strict=True))
    return by_seq[resolved["winner"]], [by_seq[s] for s in resolved["losers"]]


def _assert_only_the_winner_committed(played: Played, winner: str, losers: list[str]) -> None:
    detected, resolved = _conflict(played)
    assert detected["resource"] == resolved["resource"] == "plan:hotel"
    assert [t.agent for t in played.of("plan.updated")] == [winner]
    for loser in losers:
        check, reason = played.rejections(loser)[0]
        assert check == "conflict"
        assert f"lost plan:hotel to {winner} ({resolved['policy']} policy" in reason
    for seq in resolved["losers"]:
        assert played.effects_of(seq) == []
    assert played.of("proposal.rejected")[0].causes[-1] == played.one("conflict.detected").seq


def test_the_budgeter_picks_the_cheapest_offer_that_fits_what_is_left() -> None:
    played = _hotels(
        Budgeter(cost_fields=("total_chf",)),
        Budget(cost=100),
        ("grand", "Grand", 140.0),
        ("mid", "Mid", 80.0),
        ("hostel", "Hostel", 60.0),
    )
    winner, losers = _winner_and_losers(played)
    assert (winner, losers) == ("hostel", ["grand", "mid"])
    resolved = _conflict(played)[1]
    assert resolved["policy"] == "budgeter"
    assert resolved["why"] == "cheapest that fits: hostel at 60 (vs grand 140, mid 80), 100 left"
    _assert_only_the_winner_committed(played, winner, losers)
    assert played.state()["plan"]["hotel"]["value"] == _hotel("Hostel", 60.0)


def test_the_budgeter_reads_the_cost_from_the_fields_it_is_configured_with() -> None:
    offers = (("a", "A", 90.0), ("b", "B", 70.0))
    # By default a value's total, price or cost: the demo's total_chf is not among them.
    assert Budgeter().cost_fields == ("total", "price", "cost")
    played = _hotels(Budgeter(), Budget(cost=100), *offers)
    assert _winner_and_losers(played) == ("a", ["b"])
    assert _conflict(played)[1]["why"] == "no candidate states a cost; first by order"
    # The first configured field holding a number counts; a missing one is skipped.
    played = _hotels(Budgeter(cost_fields=("fee", "total_chf")), Budget(cost=100), *offers)
    assert _winner_and_losers(played) == ("b", ["a"])
    assert _conflict(played)[1]["why"] == "cheapest that fits: b at 70 (vs a 90), 100 left"


@pytest.mark.parametrize("fields", ["total_chf", ("total_chf", ""), (1,)])
def test_a_budgeter_with_bad_cost_fields_is_refused(fields: Any) -> None:
    with pytest.raises(ConfigError, match="cost_fields must be a tuple of field names"):
        Budgeter(cost_fields=fields)


def test_the_budgeter_uses_what_the_run_says_is_left_and_the_stated_cost() -> None:
    offers = [
        agent("a", Proposal(action="plan", args={"key": "hotel", "value": "A"}, cost=70), finish()),
        agent("b", Proposal(action="plan", args={"key": "hotel", "value": "B"}, cost=50), finish()),
    ]
    # Only 40 is left for the trip: nothing fits, so the cheapest is named as such.
    resolver = Budgeter(left=lambda _state: 40.0)
    played = play(config(*offers, policy=Policy(resolvers={"plan:*": resolver})))
    assert _winner_and_losers(played) == ("b", ["a"])
    assert _conflict(played)[1]["why"] == "none fits 40; cheapest is b at 50"


def test_priority_by_role_lets_the_higher_ranked_role_win_even_when_it_comes_later() -> None:
    played = _hotels(
        PriorityByRole({"coordinator": 5, "planner": 1}),
        Budget(),
        ("planner", "Mid", 80.0),
        ("coordinator", "Grand", 140.0),
    )
    winner, losers = _winner_and_losers(played)
    assert (winner, losers) == ("coordinator", ["planner"])
    assert _conflict(played)[1]["why"] == "coordinator ranks highest (5)"
    assert _conflict(played)[1]["policy"] == "priority"
    _assert_only_the_winner_committed(played, winner, losers)


@pytest.mark.parametrize("order", [("x", "y"), ("y", "x")])
def test_first_by_order_follows_the_agent_order_never_arrival(order: tuple[str, str]) -> None:
    offers = {"x": ("X", 10.0), "y": ("Y", 5.0)}
    played = _hotels(FirstByOrder(), Budget(), *((n, *offers[n]) for n in order))
    winner, losers = _winner_and_losers(played)
    assert (winner, losers) == (order[0], [order[1]])
    assert _conflict(played)[1]["policy"] == "first"
    _assert_only_the_winner_committed(played, winner, losers)


def test_proposals_on_different_resources_do_not_conflict() -> None:
    played = play(
        config(agent("a", plan("hotel", 1), finish()), agent("b", plan("train", 2), finish()))
    )
    assert "conflict.detected" not in played.kinds()
    assert sorted(played.state()["plan"]) == ["hotel", "train"]
