"""Minds, checks and run functions read the state by attribute, and what they read is what
the ledger says the state was at that point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telic.frozen import thaw
from telic.kernel import AgentSpec
from telic.minds.base import FunctionMind, View
from telic.policy import CheckContext, Policy, Verdict
from telic.proposal import Proposal
from telic.state import RunState

from .kit import Calls, config, echo_tool, finish, plan, play, remember


@dataclass
class _Seen:
    """What a mind, a check and the progress function read, by attribute, with the seq of
    the state they read it in."""

    minds: list[tuple[int, dict[str, Any]]] = field(
        default_factory=list[tuple[int, dict[str, Any]]]
    )
    checks: list[tuple[int, str, tuple[str, ...], int]] = field(
        default_factory=list[tuple[int, str, tuple[str, ...], int]]
    )
    progress: list[tuple[int, dict[str, Any]]] = field(
        default_factory=list[tuple[int, dict[str, Any]]]
    )


def _reading(state: RunState, agent: str) -> dict[str, Any]:
    me = state.agents[agent]
    return {
        "tick": state.tick,
        "status": state.status,
        "ticks": state.spent.ticks,
        "tool_calls": state.spent.tool_calls,
        "me": (me.status, me.role, tuple(me.tools), me.restarts),
        "observations": [(o.seq, o.source, thaw(o.content)) for o in me.observations],
        "memory": thaw(state.memory.get(agent, {})),
        "plan": {k: (v.value, v.agent, v.seq) for k, v in state.plan.items()},
    }


def _expected(json: dict[str, Any], agent: str) -> dict[str, Any]:
    me = json["agents"][agent]
    return {
        "tick": json["tick"],
        "status": json["status"],
        "ticks": json["spent"]["ticks"],
        "tool_calls": json["spent"]["tool_calls"],
        "me": (me["status"], me["role"], tuple(me["tools"]), me["restarts"]),
        "observations": [(o["seq"], o["source"], o["content"]) for o in me["observations"]],
        "memory": json["memory"].get(agent, {}),
        "plan": {k: (v["value"], v["agent"], v["seq"]) for k, v in json["plan"].items()},
    }


@dataclass(frozen=True)
class _Recording:
    seen: _Seen
    name: str = "recording"

    def check(self, proposal: Proposal, ctx: CheckContext) -> Verdict:
        me = ctx.state.agents[ctx.agent]
        self.seen.checks.append((ctx.state.seq, ctx.agent, tuple(me.recent), me.rejections))
        return Verdict(self.name, True)


def test_a_mind_a_check_and_the_progress_function_read_what_the_ledger_says() -> None:
    seen = _Seen()
    steps = iter(
        [
            Proposal(action="tool", args={"tool": "echo", "args": {"x": 1}}),
            remember("k", 1),
            plan("hotel", {"total_chf": 120}),
            finish(),
        ]
    )

    def mind(view: View) -> Proposal:
        seen.minds.append((view.state.seq, _reading(view.state, "a")))
        return next(steps)

    def progress(state: RunState) -> float:
        seen.progress.append((state.seq, _reading(state, "a")))
        return 0.5 if "hotel" in state.plan else 0.0

    played = play(
        config(
            AgentSpec("a", "worker", FunctionMind(mind), tools=("echo",)),
            tools=[echo_tool(Calls())],
            policy=Policy(extra=(_Recording(seen),)),
            progress=progress,
        )
    )
    assert played.result is not None and played.result.status == "completed"
    assert len(seen.minds) == 4 and len(seen.checks) == 4 and len(seen.progress) == 4
    for seq, reading in seen.minds + seen.progress:
        assert reading == _expected(played.ledger.state_at("run", seq), "a")
    for seq, agent, recent, rejections in seen.checks:
        at = played.ledger.state_at("run", seq)["agents"][agent]
        assert (recent, rejections) == (tuple(at["recent"]), at["rejections"])
    # what each read covers what the run did: the echo result, the memory, the plan
    last = seen.progress[-1][1]
    assert [s for _, s, _ in last["observations"]] == ["tool:echo"]
    assert last["memory"] == {"k": 1} and last["plan"]["hotel"][0] == {"total_chf": 120}
    assert played.result.state.plan["hotel"].value == {"total_chf": 120}
    assert played.result.state.json == played.state()
