"""Supervision trees in runs: teams of agents under supervisors of their own, escalating to
the root; the tree on record in ``run.booted``, rebuilt by resume and fork.

Every run must verify and replay (``conftest.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from telic.clock import VirtualClock
from telic.errors import ConfigError, TreeInvalid
from telic.kernel import Kernel, RunConfig, RunResult, Team
from telic.minds.base import Step
from telic.proposal import Proposal
from telic.transcript import render

from .kit import Played, agent, config, finish, new_ledger, on_virtual_time, play, remember


class Boom(Exception):
    pass


def _work(n: int) -> Proposal:
    return remember("k", n)


def _crashes_twice_then_finishes() -> list[Step]:
    return [Boom("one"), Boom("two"), finish()]


def _supervision(played: Played) -> list[tuple[Any, ...]]:
    """The supervision records, in order: (kind, agent or supervisor, detail)."""
    out: list[tuple[Any, ...]] = []
    for t in played.transitions():
        d = t.data
        if t.kind == "agent.failed":
            out.append((t.kind, d["agent"]))
        elif t.kind == "agent.terminated":
            out.append((t.kind, d["agent"], d["reason"]))
        elif t.kind == "agent.restarted":
            out.append((t.kind, d["agent"], d["supervisor"]))
        elif t.kind == "supervisor.escalated":
            out.append((t.kind, d["supervisor"]))
        elif t.kind == "supervisor.restarted":
            out.append((t.kind, d["supervisor"], d["parent"]))
    return out


def _team_config(*, root: dict[str, Any] | None = None, **team: Any) -> RunConfig:
    """a and b (role worker) in team ``crew`` (one restart in 5 s); c under the root."""
    return config(
        agent("a", *_crashes_twice_then_finishes()),
        agent("b", _work(1), _work(2), finish(), repeat_last=True),
        agent("c", _work(1), _work(2), finish(), role="lead", repeat_last=True),
        teams=[dataclasses.replace(Team("crew", roles=("worker",), intensity=1), **team)],
        **(root or {"intensity": 1}),
    )


def test_a_team_gives_up_and_the_root_restarts_it_with_its_agents() -> None:
    played = play(_team_config())
    assert played.result is not None and played.result.status == "completed"
    assert [e for e in _supervision(played) if e[0] != "agent.terminated" or e[2] != "shutdown"][
        :6
    ] == [
        ("agent.failed", "a"),
        ("agent.restarted", "a", "crew"),  # the team's one restart
        ("agent.failed", "a"),
        ("supervisor.escalated", "crew"),  # the second: the team gives up ...
        ("supervisor.restarted", "crew", "root"),  # ... and the root restarts it
        ("agent.restarted", "a", "crew"),
    ]
    sup = _supervision(played)
    # The team stopped b when it gave up; the root's restart brought it back, c untouched.
    assert ("agent.terminated", "b", "shutdown") in sup
    assert sup.index(("agent.terminated", "b", "shutdown")) < sup.index(
        ("agent.restarted", "b", "crew")
    )
    assert not [e for e in sup if e[1] == "c" and e[0] != "agent.terminated"]
    state = played.state()
    assert state["agents"]["a"]["supervisor"] == state["agents"]["b"]["supervisor"] == "crew"
    assert state["agents"]["c"]["supervisor"] == "root"
    assert state["agents"]["b"]["restarts"] == 1
    team = state["supervision"]["teams"]["crew"]
    assert (team["restarts"], team["escalations"], team["agents"]) == (1, 1, ["a", "b"])
    assert "crew" not in state["agents"]  # a supervisor is no agent
    lines = render(played.ledger.read("run"))
    assert lines[3] == (
        "TICK 02: agent failure (AgentCrash) -> restarted by supervisor; "
        "team crew gave up -> restarted by root"
    )


def test_the_root_restarts_a_team_by_its_own_strategy() -> None:
    played = play(_team_config(root={"intensity": 1, "strategy": "one_for_all"}))
    assert played.result is not None and played.result.status == "completed"
    # one_for_all at the root: c, the team's sibling, was stopped and restarted with it (the
    # tick's supervision records are grouped by agent, a team's where its first agent stands).
    tick = played.one("supervisor.restarted").tick
    assert [e for e in _supervision(played) if e[0] != "agent.failed"][2:8] == [
        ("supervisor.restarted", "crew", "root"),
        ("agent.restarted", "a", "crew"),
        ("agent.terminated", "b", "shutdown"),
        ("agent.restarted", "b", "crew"),
        ("agent.terminated", "c", "shutdown"),
        ("agent.restarted", "c", "root"),
    ]
    assert {t.tick for t in played.of("agent.restarted", "c")} == {tick}


def test_the_run_fails_when_the_root_gives_up_on_a_team() -> None:
    played = play(_team_config(root={"intensity": 0}))
    assert played.result is not None and played.result.status == "failed"
    sup = _supervision(played)
    assert ("supervisor.escalated", "crew") in sup
    assert sup.index(("supervisor.escalated", "crew")) < sup.index(("supervisor.escalated", "root"))
    assert ("supervisor.restarted", "crew", "root") not in sup
    assert played.state()["reason"].startswith("supervisor gave up: ")
    assert played.state()["supervision"]["root"]["escalations"] == 1


def test_a_temporary_team_that_gives_up_is_gone_with_its_agents() -> None:
    played = play(_team_config(restart="temporary"))
    sup = _supervision(played)
    assert ("supervisor.escalated", "crew") in sup
    assert not [e for e in sup if e[0] == "supervisor.restarted"]
    state = played.state()
    agents = state["agents"]
    assert agents["a"]["status"] == "failed" and agents["b"]["status"] == "terminated"
    # The run went on with c alone (b's proposal of that tick was refused), until c finished.
    assert agents["c"]["status"] == "terminated"
    assert not played.of("proposal.made", "b")[1:] or all(
        t.tick <= played.one("supervisor.escalated").tick for t in played.of("proposal.made", "b")
    )
    assert (state["status"], state["reason"]) == ("failed", "no live agents are left")


def test_a_temporary_team_a_sibling_s_crash_stops_is_not_restarted() -> None:
    cfg = config(
        agent("a", _work(1), _work(2), finish(), repeat_last=True),
        agent("c", Boom("c"), _work(1), _work(2), finish(), role="lead"),
        teams=[Team("crew", roles=("worker",), restart="temporary")],
        strategy="one_for_all",
    )
    played = play(cfg)
    sup = _supervision(played)
    assert ("agent.terminated", "a", "shutdown") in sup
    assert ("agent.restarted", "c", "root") in sup
    assert not [e for e in sup if e[0] == "supervisor.restarted"]
    crash = played.one("agent.failed", "c").tick
    assert all(t.tick <= crash for t in played.of("proposal.made", "a"))  # not asked again
    assert played.state()["agents"]["c"]["status"] == "terminated"


def test_escalation_through_two_teams_to_the_root() -> None:
    """inner (a) under outer (b, and inner) under the root (c): inner gives up twice; outer
    restarts it once, then gives up itself; the root restarts outer, with inner inside."""
    cfg = config(
        agent("a", Boom("1"), Boom("2"), Boom("3"), Boom("4"), finish(), role="x"),
        agent("b", _work(1), finish(), repeat_last=True, role="y"),
        agent("c", _work(1), finish(), repeat_last=True, role="z"),
        teams=[
            Team("outer", roles=("y",), teams=("inner",), intensity=1),
            Team("inner", roles=("x",), intensity=1),
        ],
        intensity=1,
    )
    played = play(cfg)
    assert played.result is not None and played.result.status == "completed"
    sup = [
        e for e in _supervision(played) if e[0] in ("supervisor.escalated", "supervisor.restarted")
    ]
    assert sup == [
        ("supervisor.escalated", "inner"),
        ("supervisor.restarted", "inner", "outer"),
        ("supervisor.escalated", "inner"),
        ("supervisor.escalated", "outer"),
        ("supervisor.restarted", "outer", "root"),
    ]
    booted = played.one("run.booted").data["supervision"]
    assert [(t["name"], t["supervisor"], t["agents"]) for t in booted["teams"]] == [
        ("outer", "root", ["b"]),
        ("inner", "outer", ["a"]),
    ]


def test_a_flat_run_records_no_tree() -> None:
    played = play(config(agent("a", finish()), agent("b", finish())))
    assert "supervision" not in played.one("run.booted").data
    assert "supervision" not in played.state()
    assert {t.data["supervisor"] for t in played.of("agent.spawned")} == {"root"}


# -- resume and fork -----------------------------------------------------------------------


def _resume(
    ledger: Any, run_id: str, cfg: RunConfig, *, fork_at: int | None = None
) -> tuple[str, RunResult, dict[str, str]]:
    async def scenario(clock: VirtualClock) -> tuple[str, RunResult, dict[str, str]]:
        kernel = Kernel(ledger, clock=clock)
        rid = run_id if fork_at is None else kernel.fork(run_id, fork_at)
        run = await kernel.resume(rid, cfg)
        homes = {n: run.home(n) for n in ("a", "b", "c")}
        return rid, await run.until_done(), homes

    return on_virtual_time(scenario)


@pytest.mark.parametrize("how", ["resume", "fork"])
@pytest.mark.parametrize("teams_again", [True, False])
def test_a_resumed_or_forked_run_rebuilds_the_recorded_tree(how: str, teams_again: bool) -> None:
    ledger = new_ledger()
    played = play(_team_config(), ledger=ledger, max_ticks=1)  # a crashed once: one restart
    recorded = played.one("run.booted").data["supervision"]
    cfg = _team_config()
    if not teams_again:  # the configuration may leave the teams out: the recorded ones count
        cfg.teams = ()
    at = played.transitions()[-1].seq if how == "fork" else None
    rid, result, homes = _resume(ledger, "run", cfg, fork_at=at)
    assert homes == {"a": "crew", "b": "crew", "c": "root"}
    assert result.status == "completed"
    resumed = Played(ledger, rid)
    assert resumed.one("run.booted").data["supervision"] == recorded
    sup = _supervision(resumed)
    # a's second crash after the resume exceeds the team's intensity, as it would have.
    assert ("supervisor.escalated", "crew") in sup
    assert ("supervisor.restarted", "crew", "root") in sup


def test_resuming_with_other_teams_is_refused() -> None:
    ledger = new_ledger()
    play(_team_config(), ledger=ledger, max_ticks=1)
    other = _team_config(intensity=4)
    with pytest.raises(ConfigError, match="booted with another supervision tree"):
        _resume(ledger, "run", other)
    flat = play(config(agent("a", _work(1), finish())), ledger=ledger, max_ticks=1, run_id="flat")
    teams = config(agent("a", _work(1), finish()), teams=[Team("t", agents=("a",))])
    with pytest.raises(ConfigError, match="booted without teams"):
        _resume(ledger, flat.run_id, teams)


# -- bad trees -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("teams", "expect"),
    [
        ([Team("t", roles=("nobody",))], "team 't' lists role 'nobody', which no agent has"),
        ([Team("t", agents=("zed",))], "team 't' lists agent 'zed', which the run does not have"),
        (
            [Team("t", roles=("worker",)), Team("u", agents=("a",))],
            "agent 'a' is in two teams, 't' and 'u'",
        ),
        (
            [Team("t", teams=("u",), agents=("a",)), Team("u", teams=("t",), agents=("b",))],
            "teams form a cycle: t -> u -> t",
        ),
        ([Team("t", teams=("t",), agents=("a",))], "teams form a cycle: t -> t"),
        ([Team("t", teams=("nope",), agents=("a",))], "team 't' lists team 'nope', which is not"),
        (
            [
                Team("t", agents=("a",)),
                Team("u", agents=("b",)),
                Team("v", teams=("u",)),
                Team("w", teams=("u",)),
            ],
            "team 'u' is in two teams, 'v' and 'w'",
        ),
        ([Team("t", roles=("worker",), strategy="all_for_one")], "strategy must be one of"),  # type: ignore[arg-type]
        ([Team("t", roles=("worker",), strategy="simple_one_for_one")], "strategy must be one of"),  # type: ignore[arg-type]
        ([Team("t", roles=("worker",), intensity=-1)], "intensity must be an integer >= 0"),
        ([Team("t", roles=("worker",), period_s=0)], "period_s must be > 0"),
        ([Team("root", roles=("worker",))], "a team cannot be named 'root'"),
        ([Team("a", roles=("worker",))], "team 'a' has the name of an agent"),
        ([Team("t", roles=("worker",)), Team("t", agents=("c",))], "two teams are named 't'"),
        ([Team("t")], "team 't' has no members"),
        ([Team("t", teams=("u",)), Team("u", teams=())], "has no members"),
    ],
)
def test_a_bad_tree_is_one_clear_error_before_anything_is_recorded(
    teams: list[Team], expect: str
) -> None:
    cfg = config(
        agent("a", finish()),
        agent("b", finish()),
        agent("c", finish(), role="lead"),
        teams=teams,
    )
    with pytest.raises(TreeInvalid) as caught:
        cfg.validate()
    assert expect in str(caught.value)
    assert str(caught.value).startswith("supervision tree: ")
    ledger = new_ledger()
    with pytest.raises(TreeInvalid):
        play(cfg, ledger=ledger)
    assert ledger.runs() == []
