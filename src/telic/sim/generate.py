"""Seed to scenario: a random swarm and a random fault plan over every seam.

Everything is drawn from ``random.Random(seed)``, so a seed names one scenario for good (as
long as this module does not change: the seed is a reproducer for this version of telic).
"""

from __future__ import annotations

import random
from typing import get_args

from telic.sim.scenario import (
    AgentPlan,
    Answer,
    BudgetPlan,
    CrashFault,
    Fault,
    MindEffect,
    MindFault,
    PolicyPlan,
    Scenario,
    StorageFault,
    SubscriberEffect,
    SubscriberFault,
    SwarmPlan,
    TeamPlan,
    ToolEffect,
    ToolFault,
    ToolPlan,
)

__all__ = ["generate", "generate_faults", "generate_swarm", "generate_teams"]

ROLES = ("researcher", "planner", "budgeter", "skeptic", "verifier", "coordinator")
MIND_EFFECTS: tuple[MindEffect, ...] = get_args(MindEffect)
TOOL_EFFECTS: tuple[ToolEffect, ...] = get_args(ToolEffect)
SUBSCRIBER_EFFECTS: tuple[SubscriberEffect, ...] = get_args(SubscriberEffect)
ANSWERS: tuple[Answer, ...] = get_args(Answer)


def generate(seed: int) -> Scenario:
    """The scenario of ``seed``."""
    rng = random.Random(seed)
    swarm = generate_swarm(rng)
    faults = generate_faults(rng, swarm)
    # Drawn last, so that the swarms and faults of seeds found before trees are unchanged.
    swarm = swarm.model_copy(update={"teams": generate_teams(rng, swarm)})
    return Scenario(seed=seed, swarm=swarm, faults=faults)


def generate_swarm(rng: random.Random) -> SwarmPlan:
    tools = tuple(
        ToolPlan(
            name=f"tool{i}",
            idempotent=rng.random() < 0.5,
            high_impact=rng.random() < 0.25,
            timeout_s=rng.choice((1.0, 2.0, 5.0)),
            attempts=rng.choice((1, 1, 2, 3)),
            latency_s=rng.choice((0.0, 0.1, 0.5, 1.5)),
        )
        for i in range(rng.randint(1, 4))
    )
    names = [t.name for t in tools]
    agents = tuple(
        AgentPlan(
            name=f"a{i}",
            role=rng.choice(ROLES),
            tools=tuple(sorted(rng.sample(names, rng.randint(0, len(names))))),
            restart=rng.choice(("permanent", "permanent", "permanent", "transient", "temporary")),
            priority=rng.randint(0, 3),
            finish_after=rng.randint(1, 6),
            think_s=rng.choice((0.0, 0.05, 0.5)),
        )
        for i in range(rng.randint(1, 4))
    )
    ranks = ("first", "priority", "budgeter")
    policy = PolicyPlan(
        resolver=rng.choice(ranks),
        plan_resolver=rng.choice((None, *ranks)),
        exploration_threshold=rng.choice((0.0, 0.2, 0.4)),
        stall_ticks=rng.randint(2, 8),
        loop_repeats=rng.randint(2, 4),
        approval_timeout_s=rng.choice((1.0, 5.0, 30.0)),
        mind_timeout_s=rng.choice((1.0, 5.0, 30.0)),
        fail_agent_on_tool_error=rng.random() < 0.7,
        grounding=rng.random() < 0.8,
    )
    budget = BudgetPlan(
        ticks=rng.randint(2, 10),
        tool_calls=rng.choice((None, None, rng.randint(1, 8))),
        tokens=rng.choice((None, None, rng.randint(200, 4000))),
        cost=rng.choice((None, None, round(rng.uniform(0.01, 0.5), 3))),
    )
    return SwarmPlan(
        goal=f"simulated goal {rng.randint(0, 9999)}",
        agents=agents,
        tools=tools,
        budget=budget,
        policy=policy,
        strategy=rng.choice(("one_for_one", "one_for_one", "one_for_all", "rest_for_one")),
        intensity=rng.randint(1, 5),
        period_s=rng.choice((1.0, 5.0, 30.0)),
        approvals=tuple(rng.choice(ANSWERS) for _ in range(rng.randint(1, 4))),
        explorers=rng.random() < 0.8,
        backend="sqlite" if rng.random() < 0.3 else "memory",
        snapshot_every=rng.choice((1000, 1000, 7, 25)),
    )


def generate_teams(rng: random.Random, swarm: SwarmPlan) -> tuple[TeamPlan, ...]:
    """About half the swarms of two agents or more get a supervision tree: one or two teams of
    agents (the second under the first, sometimes), each with its own strategy, intensity,
    period and restart type."""
    names = [a.name for a in swarm.agents]
    if len(names) < 2 or rng.random() < 0.5:
        return ()
    count = rng.randint(1, 2)
    homes = [rng.randrange(count + 1) for _ in names]  # count: the root
    members = [tuple(n for n, h in zip(names, homes, strict=True) if h == i) for i in range(count)]
    nested = count == 2 and bool(members[1]) and rng.random() < 0.4
    teams: list[TeamPlan] = []
    for i in range(count):
        sub = ("t1",) if nested and i == 0 else ()
        if not members[i] and not sub:
            continue  # a team without agents is refused; leave it out
        teams.append(
            TeamPlan(
                name=f"t{i}",
                agents=members[i],
                teams=sub,
                strategy=rng.choice(("one_for_one", "one_for_all", "rest_for_one")),
                intensity=rng.randint(0, 3),
                period_s=rng.choice((1.0, 5.0, 30.0)),
                restart=rng.choice(("permanent", "permanent", "transient", "temporary")),
            )
        )
    return tuple(teams)


def generate_faults(rng: random.Random, swarm: SwarmPlan) -> tuple[Fault, ...]:
    """Zero to a handful of faults, each at a seam the swarm has."""
    faults: list[Fault] = []
    horizon = swarm.budget.ticks
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        agent = rng.choice(swarm.agents)
        effect = rng.choice(MIND_EFFECTS)
        faults.append(MindFault(agent=agent.name, tick=rng.randint(1, horizon), effect=effect))
    for _ in range(rng.choice((0, 1, 1, 2))):
        t = rng.choice(swarm.tools)
        faults.append(
            ToolFault(tool=t.name, call=rng.randint(1, 4), effect=rng.choice(TOOL_EFFECTS))
        )
    if swarm.backend == "sqlite" and rng.random() < 0.3:
        faults.append(
            StorageFault(op=rng.randint(1, 12), error=rng.choice(("disk_full", "io_error")))
        )
    if rng.random() < 0.3:
        faults.append(CrashFault(op=rng.randint(1, 15), when=rng.choice(("before", "after"))))
    if rng.random() < 0.25:
        faults.append(SubscriberFault(effect=rng.choice(SUBSCRIBER_EFFECTS)))
    return tuple(faults)
