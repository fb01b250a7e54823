"""The simulated world a swarm acts in: minds, tools, the approver and event subscribers,
each built from a :class:`~telic.sim.scenario.Scenario` and misbehaving where its fault plan
says, plus the log of what really happened (which tool effects ran, what the approver said).

The invariants compare that log with the ledger: the ledger says what the kernel decided, the
world says what was done.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from telic.errors import (
    InjectedAbort,
    InjectedFault,
    SimulatedCrash,
    UnprintableFault,
)
from telic.events.event import Event
from telic.kernel import AgentSpec, Budget, RunConfig, Team
from telic.kinds import Claim, ModelCalled
from telic.minds.base import Mind, View
from telic.policy import (
    Budgeter,
    FirstByOrder,
    Policy,
    PriorityByRole,
    Resolver,
    RuleVerifier,
)
from telic.proposal import Proposal
from telic.sim.scenario import (
    AgentPlan,
    MindEffect,
    MindFault,
    Scenario,
    SubscriberEffect,
    SubscriberFault,
    ToolEffect,
    ToolFault,
    ToolPlan,
)
from telic.sim.storage import Machine
from telic.tools import RetryPolicy, Tool

__all__ = ["Approval", "Execution", "World"]

HUGE_PROPOSAL = 20 * 1024 * 1024
HUGE_RESULT = 50 * 1024 * 1024
DEEP = 300
PLAN_KEYS = ("hotel", "train")
MEMORY_KEYS = ("a", "b", "c")


@dataclass(frozen=True, slots=True)
class Execution:
    """A tool effect that took place (a tool body started)."""

    lifetime: int
    tool: str
    key: str
    """The call's ``key`` argument: ``<agent>/<tick>``, unique per proposal."""


@dataclass(frozen=True, slots=True)
class Approval:
    """One request to the scripted approver and what it answered."""

    agent: str
    tool: str
    key: str
    answer: str


class World:
    """One seed's world; it outlives the simulated processes (like the real world would)."""

    def __init__(self, scenario: Scenario, machine: Machine) -> None:
        self.scenario = scenario
        self.machine = machine
        self.seed = scenario.seed
        self.executions: list[Execution] = []
        self.approvals: list[Approval] = []
        self.tool_calls: dict[str, int] = {}
        self._mind_faults: dict[tuple[str, int], MindEffect] = {}
        self._tool_faults: dict[tuple[str, int], ToolEffect] = {}
        self.subscriber_faults: list[SubscriberEffect] = []
        for f in scenario.faults:
            if isinstance(f, MindFault):
                self._mind_faults.setdefault((f.agent, f.tick), f.effect)
            elif isinstance(f, ToolFault):
                self._tool_faults.setdefault((f.tool, f.call), f.effect)
            elif isinstance(f, SubscriberFault):
                self.subscriber_faults.append(f.effect)
        self.plans: dict[str, ToolPlan] = {t.name: t for t in scenario.swarm.tools}

    # -- the run's configuration (a fresh one per process lifetime) ---------------------

    def config(self) -> RunConfig:
        s = self.scenario.swarm
        p = s.policy
        resolvers: dict[str, Resolver] = {}
        if p.plan_resolver is not None:
            resolvers["plan:*"] = _resolver(p.plan_resolver)
        policy = Policy(
            loop_repeats=p.loop_repeats,
            stall_ticks=p.stall_ticks,
            resolver=_resolver(p.resolver),
            resolvers=resolvers,
            exploration_threshold=p.exploration_threshold,
            approval_timeout_s=p.approval_timeout_s,
            mind_timeout_s=p.mind_timeout_s,
            fail_agent_on_tool_error=p.fail_agent_on_tool_error,
            verifier=RuleVerifier() if p.grounding else None,
        )
        b = s.budget
        return RunConfig(
            goal=s.goal,
            agents=[
                AgentSpec(
                    name=a.name,
                    role=a.role,
                    mind=SimMind(self, a),
                    tools=a.tools,
                    restart=a.restart,
                    priority=a.priority,
                )
                for a in s.agents
            ],
            tools=[self._tool(t) for t in s.tools],
            budget=Budget(ticks=b.ticks, tool_calls=b.tool_calls, tokens=b.tokens, cost=b.cost),
            policy=policy,
            explorer=self._explorer if s.explorers else None,
            approver=self.approve,
            strategy=s.strategy,
            intensity=s.intensity,
            period_s=s.period_s,
            teams=[
                Team(
                    name=t.name,
                    agents=t.agents,
                    teams=t.teams,
                    strategy=t.strategy,
                    intensity=t.intensity,
                    period_s=t.period_s,
                    restart=t.restart,
                )
                for t in s.teams
            ],
            seed=self.seed,
        )

    def _explorer(self, question: str, parent: AgentSpec) -> Mind:
        return ExplorerMind(self.seed, question)

    # -- tools ----------------------------------------------------------------------------

    def _tool(self, plan: ToolPlan) -> Tool:
        world = self

        async def body(key: str, n: int = 0) -> Any:
            return await world.call(plan, key, n)

        # Built directly rather than with @tool: every simulated tool takes the same
        # arguments, so one argument model serves them all (no pydantic model per seed).
        return Tool(
            name=plan.name,
            fn=body,
            args_model=ToolArgs,
            description=f"simulated tool {plan.name}",
            timeout_s=plan.timeout_s,
            idempotent=plan.idempotent,
            high_impact=plan.high_impact,
            retry=RetryPolicy(attempts=plan.attempts, backoff_s=0.1),
        )

    async def call(self, plan: ToolPlan, key: str, n: int) -> Any:
        if self.machine.down:
            raise SimulatedCrash("a dead process cannot run a tool")
        count = self.tool_calls[plan.name] = self.tool_calls.get(plan.name, 0) + 1
        self.executions.append(Execution(self.machine.lifetimes, plan.name, key))
        effect = self._tool_faults.get((plan.name, count))
        if effect is not None:
            self.machine.injected.append(f"tool {plan.name} call {count}: {effect}")
            return await _misbehave_tool(effect, plan)
        await asyncio.sleep(plan.latency_s)
        return {"tool": plan.name, "key": key, "n": n}

    # -- the approver ---------------------------------------------------------------------

    async def approve(self, agent: str, tool_name: str, args: Mapping[str, Any]) -> bool | None:
        answers = self.scenario.swarm.approvals
        answer = answers[len(self.approvals) % len(answers)]
        self.approvals.append(Approval(agent, tool_name, str(args.get("key", "")), answer))
        match answer:
            case "yes":
                return True
            case "no":
                return False
            case "none":
                return None
            case "hang":
                await asyncio.Event().wait()
                return True  # never reached: the kernel's approval timeout denies
            case "raise":
                raise InjectedFault("the approver failed")

    # -- event subscribers ----------------------------------------------------------------

    def subscriber(self, effect: SubscriberEffect) -> Any:
        """A handler for ``EventKernel.on`` that misbehaves as ``effect`` says."""
        injected = self.machine.injected

        def note(event: Event) -> None:
            if not any(i.startswith(f"subscriber: {effect}") for i in injected):
                injected.append(f"subscriber: {effect} from {event.type} #{event.seq}")

        def raising(event: Event) -> None:
            note(event)
            raise InjectedFault(f"subscriber failed on {event.type}")

        def unprintable(event: Event) -> None:
            note(event)
            raise UnprintableFault()

        async def hanging(event: Event) -> None:
            note(event)
            await asyncio.Event().wait()

        def mutating(event: Event) -> None:
            note(event)
            _mutate(event.transition.data)

        return {"raise": raising, "bad_str": unprintable, "hang": hanging, "mutate": mutating}[
            effect
        ]

    def mind_fault(self, agent: str, tick: int) -> MindEffect | None:
        effect = self._mind_faults.get((agent, tick))
        if effect is not None:
            self.machine.injected.append(f"mind {agent} tick {tick}: {effect}")
        return effect


class ToolArgs(BaseModel):
    """The arguments of every simulated tool."""

    model_config = ConfigDict(extra="forbid")
    key: str
    """``<agent>/<tick>``: which proposal the call serves (unique per proposal)."""
    n: int = 0


class SimMind:
    """An agent's mind: a seeded choice of action per tick, unless a fault says otherwise."""

    def __init__(self, world: World, plan: AgentPlan) -> None:
        self.world = world
        self.plan = plan

    async def propose(self, view: View) -> Proposal:
        plan = self.plan
        effect = self.world.mind_fault(plan.name, view.tick)
        if effect is not None:
            return await _misbehave_mind(effect)
        rng = random.Random(f"{self.world.seed}/{plan.name}/{view.tick}")
        await asyncio.sleep(plan.think_s)
        calls = (
            ModelCalled(
                agent=plan.name,
                model="sim",
                request_digest=f"{self.world.seed}/{plan.name}/{view.tick}",
                response=None,
                input_tokens=rng.randint(10, 300),
                output_tokens=rng.randint(5, 100),
                latency_ms=plan.think_s * 1000,
                cost=round(rng.uniform(0.0, 0.02), 4),
            ),
        )
        return _choose(rng, plan, view, self.world, calls)


class ExplorerMind:
    """A temporary explorer: answers its question within a tick or two."""

    def __init__(self, seed: int, question: str) -> None:
        self.seed = seed
        self.question = question

    async def propose(self, view: View) -> Proposal:
        rng = random.Random(f"{self.seed}/{view.agent}/{view.tick}")
        await asyncio.sleep(0.05)
        if rng.random() < 0.7:
            return Proposal(action="finish", args={"result": {"answer": self.question[:40]}})
        return Proposal(action="remember", args={"key": "note", "value": rng.randint(0, 9)})


def _holds_n(content: Any) -> bool:
    """Whether an observation's content is an object with an ``n``."""
    return isinstance(content, dict) and "n" in content


def _choose(
    rng: random.Random,
    plan: AgentPlan,
    view: View,
    world: World,
    calls: tuple[ModelCalled, ...],
) -> Proposal:
    tick = view.tick
    confidence = rng.uniform(0.0, 0.5) if rng.random() < 0.1 else 0.9
    claims: tuple[Claim, ...] = ()
    roll = rng.random()
    if roll < 0.15:
        seen = [o for o in view.observations if _holds_n(o.content)]
        if seen:
            o = rng.choice(seen)
            claims = (Claim(key="n", value=o.content["n"], evidence=(o.seq,)),)
    elif roll < 0.22:
        claims = (Claim(key="n", value=12345, evidence=(rng.randint(1, 3),)),)
    common: dict[str, Any] = {"confidence": confidence, "claims": claims, "model_calls": calls}
    if tick >= plan.finish_after and rng.random() < 0.6:
        return Proposal(action="finish", args={"result": {"by": plan.name, "tick": tick}}, **common)
    roll = rng.random()
    names = sorted(world.plans)
    if roll < 0.45 and names:
        allowed = list(plan.tools)
        name = rng.choice(allowed) if allowed and rng.random() > 0.1 else rng.choice(names)
        args: dict[str, Any] = {"key": f"{plan.name}/{tick}", "n": rng.randint(0, 9)}
        if rng.random() < 0.05:
            args = {"nope": 1}
        return Proposal(action="tool", args={"tool": name, "args": args}, **common)
    if roll < 0.6:
        key = rng.choice(MEMORY_KEYS)
        return Proposal(
            action="remember", args={"key": key, "value": {"v": rng.randint(0, 3)}}, **common
        )
    if roll < 0.78:
        price = rng.randint(50, 400)
        return Proposal(
            action="plan",
            args={"key": rng.choice(PLAN_KEYS), "value": {"cost": price, "by": plan.name}},
            cost=price / 1000,
            **common,
        )
    if roll < 0.9:
        others = sorted(view.state.agents)
        return Proposal(
            action="message",
            args={"to": rng.choice(others), "content": {"from": plan.name, "tick": tick}},
            **common,
        )
    return Proposal(
        action="spawn",
        args={"question": f"what about {rng.randint(0, 99)}?", "role": "explorer"},
        **common,
    )


def _resolver(name: str) -> Resolver:
    if name == "budgeter":
        return Budgeter()
    if name == "priority":
        return PriorityByRole(ranks={"budgeter": 3, "planner": 2, "coordinator": 1})
    return FirstByOrder()


async def _misbehave_mind(effect: MindEffect) -> Proposal:
    match effect:
        case "junk":
            junk: Any = {"action": "finish"}
            return junk  # not a Proposal: the mind broke its contract
        case "raise":
            raise InjectedFault("the mind failed")
        case "base_exception":
            raise InjectedAbort("the mind aborted")
        case "cancelled":
            raise asyncio.CancelledError()
        case "bad_str":
            raise UnprintableFault()
        case "hang":
            await asyncio.Event().wait()
            raise AssertionError("unreachable")
        case "oversized":
            return Proposal(action="remember", args={"key": "big", "value": "x" * HUGE_PROPOSAL})
        case "bigint":
            return Proposal(action="remember", args={"key": "big", "value": 2**64})
        case "surrogate":
            return Proposal(action="remember", args={"key": "s", "value": "\ud800"})
        case "deep":
            deep: Any = 0
            for _ in range(DEEP):
                deep = [deep]
            return Proposal(action="remember", args={"key": "deep", "value": deep})
        case "unvalidated":
            return Proposal.model_construct(
                action="dance", args={"key": 5}, confidence=7.0, reason=None, claims=(), cost=None
            )


async def _misbehave_tool(effect: ToolEffect, plan: ToolPlan) -> Any:
    match effect:
        case "fail":
            raise InjectedFault(f"{plan.name} failed")
        case "base_exception":
            raise InjectedAbort(f"{plan.name} aborted")
        case "cancelled":
            raise asyncio.CancelledError()
        case "bad_str":
            raise UnprintableFault()
        case "hang":
            await asyncio.Event().wait()
            raise AssertionError("unreachable")
        case "swallow_cancel":
            loop = asyncio.get_running_loop()
            until = loop.time() + 3 * plan.timeout_s
            while (left := until - loop.time()) > 0:
                try:
                    await asyncio.sleep(left)
                except asyncio.CancelledError:  # the fault: cancellation is ignored
                    continue
            return {"tool": plan.name, "late": True}
        case "huge_result":
            return {"blob": "x" * HUGE_RESULT}
        case "huge_error":
            raise InjectedFault("x" * HUGE_RESULT)
        case "bigint":
            return {"n": 2**70}
        case "surrogate":
            return {"s": "\udc80"}


def _mutate(data: Any) -> None:
    """Change, in place, every container a payload holds (what a careless subscriber does)."""
    if isinstance(data, dict):
        for value in list(data.values()):  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
            if isinstance(value, dict):
                value["mutated_by_subscriber"] = True
            elif isinstance(value, list):
                value.append("mutated by subscriber")  # pyright: ignore[reportUnknownMemberType]
