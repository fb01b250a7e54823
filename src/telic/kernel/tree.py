"""A run's supervision tree: teams of agents under supervisors of their own.

Without teams every agent of a run is a child of one root supervisor. A :class:`Team` gives
some agents (by role or by name) and other teams a supervisor with its own strategy, restart
intensity and restart type; the team is a child of the root, or of the team that lists it.
When a team's intensity is exceeded it gives up: its agents are stopped and its parent
restarts it (agents and sub-teams, as they were booted) by the parent's own strategy and
intensity, up to the root, whose giving up fails the run.

:func:`plan` resolves the teams against the agents into a :class:`Tree`, or raises
:class:`~telic.errors.TreeInvalid` naming the first problem. Start order: a supervisor's
children (agents and teams) start in the order of the run's agent list, a team standing
where its first agent stands. ``run.booted`` records the resolved tree
(:class:`~telic.kinds.SupervisionTree`), which a resumed or forked run rebuilds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

from annotated_types import Ge, Gt, MinLen

from telic.errors import TreeInvalid
from telic.kinds import StrategyName, SupervisionTree, TeamRecord
from telic.state import RunState

__all__ = ["ROOT", "Team", "Tree", "plan"]

ROOT = "root"
"""The name of a run's root supervisor."""

_STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
_RESTARTS = ("permanent", "transient", "temporary")


@dataclass(frozen=True, slots=True)
class Team:
    """A supervisor of some of a run's agents, with its own strategy and restart intensity.

    A run spec's ``[[teams]]`` tables are validated against these fields (see
    :mod:`telic.spec`)."""

    name: Annotated[str, MinLen(1)]
    """The supervisor's name: unique among the run's agents and teams, not ``root``."""
    roles: tuple[str, ...] = ()
    """Every agent with one of these roles is in the team."""
    agents: tuple[str, ...] = ()
    """Agents in the team by name (besides those its roles bring)."""
    teams: tuple[str, ...] = ()
    """Teams under this one (a team is under the root unless a team lists it)."""
    strategy: StrategyName = "one_for_one"
    """Which of its children restart when one must: one_for_one, one_for_all, rest_for_one."""
    intensity: Annotated[int, Ge(0)] = 1
    """More than this many restarts within ``period_s`` and the team gives up to its parent."""
    period_s: Annotated[float, Gt(0)] = 5.0
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    """Whether its parent restarts the team after it gave up: permanent and transient (giving
    up is abnormal) yes, temporary no (its agents are gone for good)."""


@dataclass(frozen=True, slots=True)
class Tree:
    """A resolved supervision tree: who supervises each agent and team, in start order."""

    strategy: StrategyName = "one_for_one"
    """The root's."""
    intensity: int = 3
    period_s: float = 5.0
    teams: tuple[TeamRecord, ...] = ()
    """Parents before children."""
    _home: Mapping[str, str] = field(default_factory=dict[str, str], repr=False)
    _children: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict[str, tuple[str, ...]], repr=False
    )

    @classmethod
    def from_record(cls, record: SupervisionTree, agents: Sequence[str]) -> Tree:
        """The tree ``run.booted`` recorded (checked again as :func:`plan` checks teams);
        ``agents``: the run's agents in boot order."""
        teams = [
            Team(
                name=t.name,
                agents=t.agents,
                teams=tuple(u.name for u in record.teams if u.supervisor == t.name),
                strategy=t.strategy,
                intensity=t.intensity,
                period_s=t.period_s,
                restart=t.restart,
            )
            for t in record.teams
        ]
        listed = {u.name for u in record.teams}
        for t in record.teams:
            if t.supervisor != ROOT and t.supervisor not in listed:
                raise TreeInvalid(
                    f"team {t.name!r} is recorded under {t.supervisor!r}, which is no team"
                )
        return plan(
            [(a, "") for a in agents],
            teams,
            strategy=record.strategy,
            intensity=record.intensity,
            period_s=record.period_s,
        )

    @classmethod
    def from_state(cls, state: RunState) -> Tree:
        """The tree of a run's folded state (flat, with the root's settings unknown and left
        at their defaults, for a run without teams)."""
        roster = [a.name for a in state.roster]
        tree = state.supervision
        if tree is None:
            return plan([(a, "") for a in roster], ())
        root = tree.root
        record = SupervisionTree(
            strategy=root.strategy,
            intensity=root.intensity,
            period_s=root.period_s,
            teams=tuple(
                TeamRecord(
                    name=name,
                    supervisor=t.supervisor,
                    strategy=t.strategy,
                    intensity=t.intensity,
                    period_s=t.period_s,
                    restart=t.restart,
                    agents=tuple(t.agents),
                )
                for name, t in tree.teams.items()
            ),
        )
        return cls.from_record(record, roster)

    def record(self) -> SupervisionTree | None:
        """What ``run.booted`` records; None for a flat tree (no teams)."""
        if not self.teams:
            return None
        return SupervisionTree(
            strategy=self.strategy,
            intensity=self.intensity,
            period_s=self.period_s,
            teams=self.teams,
        )

    def team(self, name: str) -> TeamRecord | None:
        return next((t for t in self.teams if t.name == name), None)

    def is_team(self, name: str) -> bool:
        return any(t.name == name for t in self.teams)

    def home(self, agent: str) -> str:
        """The supervisor of ``agent`` (``root`` for an agent in no team)."""
        return self._home.get(agent, ROOT)

    def children(self, supervisor: str) -> tuple[str, ...]:
        """The agents and teams ``supervisor`` starts, in start order."""
        return self._children.get(supervisor, ())

    def rank(self, name: str, order: Mapping[str, int]) -> int:
        """Where an agent or team stands in ``order`` (agent name to position): a team where
        its first agent does; the root and anything unknown after every agent."""
        if name == ROOT:
            return len(order)
        return _rank(name, order, self._children)

    def agents_under(self, supervisor: str) -> list[str]:
        """The agents in ``supervisor``'s subtree, in start order."""
        return _agents_under(self, supervisor)


def plan(
    agents: Sequence[tuple[str, str]],
    teams: Sequence[Team],
    *,
    strategy: StrategyName = "one_for_one",
    intensity: int = 3,
    period_s: float = 5.0,
) -> Tree:
    """Resolve ``teams`` over ``agents`` (``(name, role)`` in the run's order) into a tree."""
    names = [n for n, _ in agents]
    roles = sorted({r for _, r in agents})
    team_names: list[str] = []
    for t in teams:
        _check_team(t, names, team_names)
        team_names.append(t.name)
    agent_team: dict[str, str] = {}
    team_parent: dict[str, str] = {}
    direct: dict[str, list[str]] = {t.name: [] for t in teams}
    for t in teams:
        members: list[str] = []
        for role in t.roles:
            if role not in roles:
                raise TreeInvalid(
                    f"team {t.name!r} lists role {role!r}, which no agent has "
                    f"(roles: {', '.join(roles)})"
                )
            members += [n for n, r in agents if r == role]
        for a in t.agents:
            if a not in names:
                raise TreeInvalid(
                    f"team {t.name!r} lists agent {a!r}, which the run does not have "
                    f"(agents: {_few(names)})"
                )
            members.append(a)
        for a in members:
            other = agent_team.setdefault(a, t.name)
            if other != t.name:
                raise TreeInvalid(
                    f"agent {a!r} is in two teams, {other!r} and {t.name!r}: an agent has one "
                    "supervisor; keep it in one"
                )
            if a not in direct[t.name]:
                direct[t.name].append(a)
        for sub in t.teams:
            if sub not in team_names:
                raise TreeInvalid(
                    f"team {t.name!r} lists team {sub!r}, which is not declared "
                    f"(teams: {', '.join(team_names)})"
                )
            other = team_parent.setdefault(sub, t.name)
            if other != t.name:
                raise TreeInvalid(
                    f"team {sub!r} is in two teams, {other!r} and {t.name!r}: a team has one "
                    "supervisor"
                )
    _refuse_cycles(team_names, team_parent)
    order = {n: i for i, n in enumerate(names)}
    records = [
        TeamRecord(
            name=t.name,
            supervisor=team_parent.get(t.name, ROOT),
            strategy=t.strategy,
            intensity=t.intensity,
            period_s=t.period_s,
            restart=t.restart,
            agents=tuple(sorted(direct[t.name], key=order.__getitem__)),
        )
        for t in teams
    ]
    tree = _build(strategy, intensity, period_s, records, names)
    for t in records:
        if not _agents_under(tree, t.name):
            raise TreeInvalid(
                f"team {t.name!r} has no agents (nor a team with agents): give it roles, "
                "agents or teams"
            )
    return tree


def _check_team(t: Team, agents: Sequence[str], declared: Sequence[str]) -> None:
    name = t.name
    if not name or name == ROOT:
        raise TreeInvalid(f"a team cannot be named {name!r}; choose another name")
    if name in declared:
        raise TreeInvalid(f"two teams are named {name!r}; team names must be unique")
    if name in agents:
        raise TreeInvalid(
            f"team {name!r} has the name of an agent; a supervisor and an agent cannot share one"
        )
    if t.strategy not in _STRATEGIES:
        raise TreeInvalid(
            f"team {name!r}: strategy must be one of {', '.join(_STRATEGIES)}, not {t.strategy!r}"
        )
    if t.restart not in _RESTARTS:
        raise TreeInvalid(
            f"team {name!r}: restart must be one of {', '.join(_RESTARTS)}, not {t.restart!r}"
        )
    if isinstance(t.intensity, bool) or not isinstance(t.intensity, int) or t.intensity < 0:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise TreeInvalid(f"team {name!r}: intensity must be an integer >= 0, not {t.intensity!r}")
    if not (t.period_s > 0 and math.isfinite(t.period_s)):
        raise TreeInvalid(f"team {name!r}: period_s must be > 0 seconds, not {t.period_s!r}")
    if not (t.roles or t.agents or t.teams):
        raise TreeInvalid(f"team {name!r} has no members: give it roles, agents or teams")


def _refuse_cycles(teams: Sequence[str], parent: Mapping[str, str]) -> None:
    for start in teams:
        path = [start]
        node = start
        while node in parent:
            node = parent[node]
            if node in path:
                loop = [*path[path.index(node) :], node]
                raise TreeInvalid(
                    f"teams form a cycle: {' -> '.join(loop)}; a team cannot be under itself"
                )
            path.append(node)


def _build(
    strategy: StrategyName,
    intensity: int,
    period_s: float,
    teams: Sequence[TeamRecord],
    agents: Sequence[str],
) -> Tree:
    order = {n: i for i, n in enumerate(agents)}
    home = {a: t.name for t in teams for a in t.agents}
    members: dict[str, list[str]] = {ROOT: [a for a in agents if a not in home]}
    for t in teams:
        members.setdefault(t.name, []).extend(t.agents)
        members.setdefault(t.supervisor, []).append(t.name)
    children = {
        sup: tuple(sorted(kids, key=lambda k: _rank(k, order, members)))
        for sup, kids in members.items()
    }
    # Parents before children, in start order from the root.
    ordered: list[TeamRecord] = []
    by_name = {t.name: t for t in teams}
    stack = [ROOT]
    while stack:
        sup = stack.pop(0)
        for kid in children.get(sup, ()):
            if kid in by_name:
                ordered.append(by_name[kid])
                stack.append(kid)
    return Tree(strategy, intensity, period_s, tuple(ordered), home, children)


def _rank(name: str, order: Mapping[str, int], members: Mapping[str, Sequence[str]]) -> int:
    if name in order:  # an agent (no team has an agent's name)
        return order[name]
    return min((_rank(c, order, members) for c in members.get(name, ())), default=len(order))


def _agents_under(tree: Tree, supervisor: str) -> list[str]:
    out: list[str] = []
    for c in tree.children(supervisor):
        out += _agents_under(tree, c) if tree.is_team(c) else [c]
    return out


def _few(names: Sequence[str]) -> str:
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
