"""The invariants every seed must keep, checked against the ledger and the world's log.

Each check is a function of an :class:`~telic.sim.runner.Outcome` (and the transitions read
back from a freshly opened ledger) returning the violations it found; :func:`check` runs them
all. ``deterministic`` compares two runs of one seed and lives in :mod:`telic.sim.seeds`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from telic.errors import TelicError
from telic.reducer import Fold
from telic.sim.runner import Outcome
from telic.transition import Transition

__all__ = ["INVARIANTS", "Violation", "check"]

INVARIANTS = (
    "ended",
    "no-crash",
    "clear-errors",
    "verify",
    "replay",
    "allowlist",
    "recorded",
    "once",
    "budget",
    "approval",
    "tree",
    "deterministic",
)
"""Every invariant's name, in the order reports list them."""

_ENDED = ("completed", "failed", "stopped")
_INJECTED_STORAGE = ("database or disk is full", "disk I/O error")


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.detail}"


Check = Callable[[Outcome, Sequence[Transition]], list[Violation]]


def check(outcome: Outcome) -> list[Violation]:
    """Every invariant but determinism, on what ``outcome`` left in its ledger."""
    found: list[Violation] = []
    ledger = outcome.machine.reader()
    try:
        try:
            transitions = list(ledger.read(outcome.run_id))
        except TelicError as exc:
            transitions = []
            if outcome.machine.appends or outcome.escapes:
                found.append(Violation("verify", f"the run cannot be read back: {exc}"))
        found += _verify_and_replay(outcome, ledger)
    finally:
        ledger.close()
    for c in CHECKS:
        found += c(outcome, transitions)
    return found


def _verify_and_replay(outcome: Outcome, ledger: Any) -> list[Violation]:
    out: list[Violation] = []
    try:
        report = ledger.verify(outcome.run_id)
        if not report.ok:
            out.append(Violation("verify", f"seq {report.first_bad}: {report.reason}"))
    except TelicError as exc:
        out.append(Violation("verify", f"{type(exc).__name__}: {exc}"))
    try:
        replayed = ledger.replay(outcome.run_id)
    except TelicError as exc:
        out.append(Violation("replay", f"{type(exc).__name__}: {exc}"))
        return out
    if outcome.final_hash is not None and outcome.final_hash != replayed.state_hash:
        out.append(
            Violation(
                "replay",
                "the kernel's final working state differs from the fold of its ledger "
                f"({outcome.final_hash[:12]} vs {replayed.state_hash[:12]})",
            )
        )
    return out


def ended(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    tick = max((t.tick for t in ts), default=0)
    if outcome.hang is not None:
        return [
            Violation(
                "ended",
                f"hung ({outcome.hang}) at tick {tick}, {outcome.elapsed_s:.0f} virtual s in, "
                f"waiting at {outcome.hang_where}",
            )
        ]
    if outcome.refused is not None:
        return [
            Violation("ended", f"a restarted process could not resume the run: {outcome.refused}")
        ]
    if any(not e.expected for e in outcome.escapes):
        return []  # no-crash says it
    status = _status(ts)
    if status not in _ENDED:
        return [Violation("ended", f"the run is still {status} at tick {tick}")]
    if outcome.elapsed_s > outcome.bound_s:
        return [
            Violation(
                "ended",
                f"it took {outcome.elapsed_s:.1f} virtual s, over its bound of "
                f"{outcome.bound_s:.1f} s",
            )
        ]
    return []


def no_crash(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    return [
        Violation(
            "no-crash",
            f"{e.type} escaped the kernel (process {e.lifetime}): {e.message}",
        )
        for e in outcome.escapes
        if not e.expected
    ]


def clear_errors(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    out: list[Violation] = []
    for e in outcome.escapes:
        if not e.storage:
            continue
        if not any(s in e.message for s in _INJECTED_STORAGE):
            out.append(
                Violation(
                    "clear-errors",
                    f"the storage failure was reported as {e.type}: {e.message!r}, "
                    "which hides what the disk said",
                )
            )
    return out


def allowlist(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    allowed = _allowed(ts)
    out: list[Violation] = []
    for t in ts:
        if t.kind == "tool.started":
            agent, tool = t.data["agent"], t.data["tool"]
            if tool not in allowed.get(agent, ()):
                out.append(
                    Violation("allowlist", f"seq {t.seq}: {agent} started {tool}, not allowed")
                )
    for e in outcome.world.executions:
        agent = e.key.split("/")[0]
        if e.tool not in allowed.get(agent, ()):
            out.append(Violation("allowlist", f"{e.tool} ran for {agent}, who may not call it"))
    return out


def recorded(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    started = {(t.data["tool"], str(t.data["args"].get("key"))) for t in _started(ts)}
    return [
        Violation("recorded", f"{e.tool} ran for {e.key} with no tool.started in the ledger")
        for e in outcome.world.executions
        if (e.tool, e.key) not in started
    ]


def once(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    plans = outcome.world.plans
    out: list[Violation] = []
    runs = Counter((e.tool, e.key) for e in outcome.world.executions)
    for (tool, key), n in sorted(runs.items()):
        if n > 1 and not plans[tool].idempotent:
            out.append(Violation("once", f"non-idempotent {tool} ran {n} times for {key}"))
    starts = Counter(t.data["call_id"] for t in _started(ts) if not t.data["idempotent"])
    for call_id, n in sorted(starts.items()):
        if n > 1:
            out.append(Violation("once", f"non-idempotent call {call_id} was started {n} times"))
    return out


def budget(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    out: list[Violation] = []
    fold = Fold()
    spent_at: tuple[int, str] | None = None
    first_calls = 0
    for t in ts:
        if t.kind == "tick.started" and spent_at is not None:
            tick, dim = spent_at
            out.append(
                Violation(
                    "budget",
                    f"tick {t.tick} started after the {dim} budget was spent in tick {tick}",
                )
            )
            break
        if t.kind == "tool.started" and t.data.get("attempt", 1) == 1:
            first_calls += 1
        try:
            fold.apply(t)
        except Exception:
            return out  # replay reports a fold that fails
        if t.kind == "tick.completed" and spent_at is None:
            s = fold.live
            for dim, limit in s.budget.items():
                if s.spent.of(dim) >= limit:
                    spent_at = (t.tick, dim)
                    break
    limit = outcome.scenario.swarm.budget.tool_calls
    if limit is not None and first_calls > limit + 1:
        out.append(
            Violation("budget", f"{first_calls} tool calls started, over the budget of {limit} + 1")
        )
    return out


def approval(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    plans = outcome.world.plans
    granted = {t.data["proposal"] for t in ts if t.kind == "approval.granted"}
    out: list[Violation] = []
    for t in _started(ts):
        if plans[t.data["tool"]].high_impact and t.data.get("attempt", 1) == 1:
            proposal = t.causes[0] if t.causes else None
            if proposal not in granted:
                out.append(
                    Violation(
                        "approval", f"seq {t.seq}: high-impact {t.data['tool']} started unapproved"
                    )
                )
    yes = {(a.tool, a.key) for a in outcome.world.approvals if a.answer == "yes"}
    for e in outcome.world.executions:
        if plans[e.tool].high_impact and (e.tool, e.key) not in yes:
            out.append(Violation("approval", f"high-impact {e.tool} ran for {e.key} without a yes"))
    return out


def tree(outcome: Outcome, ts: Sequence[Transition]) -> list[Violation]:
    """Supervision follows the recorded tree: each agent is spawned and restarted under its
    team (an explorer under its parent's), and a team is restarted only by its parent."""
    booted = next((t for t in ts if t.kind == "run.booted"), None)
    if booted is None:
        return []
    recorded: dict[str, Any] = booted.data.get("supervision") or {"teams": []}
    home = {a: t["name"] for t in recorded["teams"] for a in t["agents"]}
    parent = {t["name"]: t["supervisor"] for t in recorded["teams"]}
    out: list[Violation] = []
    for t in ts:
        d = t.data
        if t.kind == "agent.spawned":
            if d.get("parent") is not None and d.get("temporary"):
                home[d["agent"]] = home.get(d["parent"], "root")
            want = home.get(d["agent"], "root")
            if d["supervisor"] != want:
                out.append(
                    Violation(
                        "tree",
                        f"seq {t.seq}: {d['agent']} spawned under {d['supervisor']}, not {want}",
                    )
                )
        elif t.kind == "agent.restarted" and d["supervisor"] != home.get(d["agent"], "root"):
            out.append(
                Violation(
                    "tree",
                    f"seq {t.seq}: {d['agent']} restarted by {d['supervisor']}, "
                    f"not {home.get(d['agent'], 'root')}",
                )
            )
        elif t.kind == "supervisor.restarted" and parent.get(d["supervisor"]) != d["parent"]:
            out.append(
                Violation(
                    "tree",
                    f"seq {t.seq}: team {d['supervisor']} restarted by {d['parent']}, "
                    f"not {parent.get(d['supervisor'])}",
                )
            )
    return out


CHECKS: tuple[Check, ...] = (
    ended,
    no_crash,
    clear_errors,
    allowlist,
    recorded,
    once,
    budget,
    approval,
    tree,
)


def _status(ts: Sequence[Transition]) -> str:
    status = "new"
    for t in ts:
        match t.kind:
            case "run.booted" | "run.resumed":
                status = "running"
            case "run.completed":
                status = "completed"
            case "run.failed":
                status = "failed"
            case "run.stopped":
                status = "stopped"
            case _:
                pass
    return status


def _started(ts: Sequence[Transition]) -> list[Transition]:
    return [t for t in ts if t.kind == "tool.started"]


def _allowed(ts: Sequence[Transition]) -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    for t in ts:
        if t.kind == "run.booted":
            for a in t.data["agents"]:
                allowed.setdefault(a["name"], set()).update(a["tools"])
        elif t.kind == "agent.spawned":
            allowed.setdefault(t.data["agent"], set()).update(t.data.get("tools", ()))
    return allowed
