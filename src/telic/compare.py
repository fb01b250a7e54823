"""Compare two runs: where they part, what each decided from there, how their ends differ.

Two runs are compared position by position. Seq ``n`` is *shared* when both runs hold the same
transition there: the same chain hash (a fork and its parent up to the fork point), or, for two
runs booted separately, the same kind, tick, agent and payload (the timestamp and the hash are
not compared, since they differ by construction). The first seq that is not shared is the
*divergence*; from it on, each run's decisions (proposals, verdicts, conflicts, approvals,
restores, how the run ended, ...) are listed side by side, and the states at the two heads are
diffed path by path. ``telic compare A B`` prints this, and ``GET /compare`` serves it.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from telic.ledger import BaseLedger
from telic.state import RunState
from telic.statediff import Change, state_diff
from telic.transition import Transition

__all__ = [
    "DECISION_KINDS",
    "Change",
    "Comparison",
    "Decision",
    "Side",
    "compare",
    "state_diff",
    "summarize",
]

DECISION_KINDS: Final = frozenset(
    {
        "proposal.made",
        "proposal.rejected",
        "conflict.resolved",
        "approval.requested",
        "approval.granted",
        "approval.denied",
        "exploration.spawned",
        "hallucination.detected",
        "state.restored",
        "agent.restarted",
        "supervisor.escalated",
        "loop.detected",
        "budget.exhausted",
        "artifact.recorded",
        "run.forked",
        "run.resumed",
        "run.paused",
        "run.completed",
        "run.failed",
        "run.stopped",
    }
)
"""The kinds a comparison lists as decisions: what an agent proposed, what the kernel decided
about it, and how the run went on or ended. Ticks, tool traffic and observations are left out;
they are in the ledger."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Decision(BaseModel):
    """One decision transition of a run, summarised on one line."""

    model_config = _FROZEN
    seq: int
    tick: int
    agent: str | None
    kind: str
    summary: str
    """A one-line description, e.g. ``book_hotel {"name": "Lugano"} (0.82): cheapest``."""


class Side(BaseModel):
    """One of the two runs, from the divergence on."""

    model_config = _FROZEN
    run: str
    head: int
    """The run's last sequence number."""
    status: str
    """The run's status at its head."""
    progress: float
    decisions: tuple[Decision, ...]
    """Decisions from the divergence on, at most ``limit`` of them."""
    more: int = 0
    """How many further decisions the limit left out."""


class Comparison(BaseModel):
    """What ``telic compare A B`` reports."""

    model_config = _FROZEN
    a: Side
    b: Side
    relation: str
    """``"fork"`` when B was forked from A (or A from B), ``"same-goal"`` when both pursue the
    same goal, ``"unrelated"`` otherwise."""
    diverged_at: int | None = Field(default=None)
    """The first seq the two runs do not share; None when they are identical."""
    shared: int
    """How many leading transitions the runs share (``diverged_at - 1``, or both heads)."""
    final_diff: tuple[Change, ...]
    """How the state at A's head differs from the state at B's head."""


def _same(x: Transition, y: Transition) -> bool:
    if x.hash == y.hash:
        return True
    return (x.kind, x.tick, x.agent, x.data) == (y.kind, y.tick, y.agent, y.data)


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def summarize(t: Transition) -> str:
    """A one-line description of a transition, for lists and the timeline."""
    d = t.data
    match t.kind:
        case "proposal.made":
            args = f" {_short(d.get('args', {}))}" if d.get("args") else ""
            reason = f": {_short(d['reason'])}" if d.get("reason") else ""
            return f"{d['action']}{args} ({d['confidence']:.2f}){reason}"
        case "proposal.rejected":
            return f"rejected #{d.get('proposal')} by {d['check']}: {_short(d['reason'])}"
        case "conflict.resolved":
            return f"{d['resource']}: #{d['winner']} won by {d['policy']} policy"
        case "approval.requested":
            return f"approval of {d['tool']} (proposal #{d['proposal']}) requested"
        case "approval.granted":
            return f"proposal #{d['proposal']} approved by {d['by']}"
        case "approval.denied":
            return f"proposal #{d['proposal']} denied by {d['by']}: {_short(d['reason'])}"
        case "exploration.spawned":
            return f"explorer {d['explorer']} on {_short(d['question'])}"
        case "hallucination.detected":
            return f"unsupported claim by {d['agent']}: {_short(d['reason'])}"
        case "state.restored":
            return f"restored to tick {d['tick']} (seq {d['target']})"
        case "agent.restarted":
            return f"{d['agent']} restarted by {d['supervisor']} (attempt {d['attempt']})"
        case "artifact.recorded":
            return f"artifact {d['name']}"
        case "run.forked":
            return f"forked from {d['parent']} at seq {d['at']}"
        case _:
            for key in ("reason", "dimension", "pattern", "supervisor"):
                if key in d:
                    return _short(d[key])
            return t.kind


def _decision(t: Transition) -> Decision:
    return Decision(seq=t.seq, tick=t.tick, agent=t.agent, kind=t.kind, summary=summarize(t))


def _divergence(ledger: BaseLedger, a: str, b: str, head_a: int, head_b: int) -> int | None:
    """The first seq not shared, or None when both runs are the same transitions."""
    seq = 0
    for seq, (x, y) in enumerate(zip(ledger.read(a), ledger.read(b), strict=False), start=1):
        if not _same(x, y):
            return seq
    if head_a == head_b:
        return None
    return seq + 1


def _side(
    ledger: BaseLedger, run_id: str, head: int, start: int | None, limit: int
) -> tuple[Side, dict[str, Any]]:
    state = ledger.state_at(run_id) if head else {"status": "new", "progress": 0.0}
    typed = RunState(state)  # only its status and progress are read here
    decisions: list[Decision] = []
    more = 0
    if start is not None and start <= head:
        for t in ledger.read(run_id, start):
            if t.kind not in DECISION_KINDS:
                continue
            if len(decisions) < limit:
                decisions.append(_decision(t))
            else:
                more += 1
    side = Side(
        run=run_id,
        head=head,
        status=typed.status,
        progress=typed.progress,
        decisions=tuple(decisions),
        more=more,
    )
    return side, state


def compare(ledger: BaseLedger, a: str, b: str, *, limit: int = 100) -> Comparison:
    """Compare run ``a`` with run ``b`` (see the module docstring); each side lists at most
    ``limit`` decisions. Raises :class:`~telic.errors.RunNotFound` for an unknown run."""
    info_a, info_b = ledger.run(a), ledger.run(b)
    diverged = _divergence(ledger, a, b, info_a.head, info_b.head)
    side_a, state_a = _side(ledger, a, info_a.head, diverged, limit)
    side_b, state_b = _side(ledger, b, info_b.head, diverged, limit)
    if info_b.parent == a or info_a.parent == b:
        relation = "fork"
    elif state_a.get("goal") and state_a.get("goal") == state_b.get("goal"):
        relation = "same-goal"
    else:
        relation = "unrelated"
    return Comparison(
        a=side_a,
        b=side_b,
        relation=relation,
        diverged_at=diverged,
        shared=min(info_a.head, info_b.head) if diverged is None else diverged - 1,
        final_diff=tuple(state_diff(state_a, state_b)),
    )
