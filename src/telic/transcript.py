"""The tick-level transcript of a run, rendered from its ledger alone.

``BOOT:``, ``SPAWN:``, one ``TICK nn:`` line per tick naming what the kernel did (conflicts,
exploration, supervision, hallucinations and restores, the return condition), and ``DONE:``.
A tick with model calls also says what they took (calls, tokens, cost, failed tries) and
which proposals were rejected and why, in short. A tick continued after ``RESUME:`` (asked
again, or closed) is ``TICK nn (resumed):``, below the ``RESUME:`` line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from telic.transition import Transition

__all__ = ["render", "render_tick"]

_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five"}


def _plural(resource: str) -> str:
    noun = resource.split(":")[-1].replace("_", " ")
    return noun if noun.endswith("s") else noun + "s"


def _models(by_kind: dict[str, list[Transition]]) -> list[str]:
    """What the tick's model calls took, and the rejections of their proposals."""
    called = [t.data for t in by_kind.get("model.called", [])]
    failed = by_kind.get("model.failed", [])
    if not called and not failed:
        return []
    tokens = sum(c.get("input_tokens", 0) + c.get("output_tokens", 0) for c in called)
    cost = sum(c.get("cost", 0.0) for c in called)
    currency = called[0].get("currency", "USD") if called else "USD"
    line = f"models: {len(called)} call{'s' if len(called) != 1 else ''}, {tokens:,} tokens"
    line += f", {currency} {cost:.4f}"
    if any(c.get("cost_known") is False for c in called):
        line += " (+ unknown)"
    if failed:
        line += f", {len(failed)} failed tr{'ies' if len(failed) != 1 else 'y'}"
    parts = [line]
    for t in by_kind.get("proposal.rejected", []):
        reason = " ".join(str(t.data.get("reason", "")).split())
        reason = reason if len(reason) <= 60 else reason[:57] + "..."
        parts.append(f"{t.data['agent']} rejected ({t.data['check']}: {reason})")
    return parts


def render_tick(tick: int, ts: list[Transition], *, resumed: bool = False) -> str:
    """One ``TICK nn:`` line from the transitions of that tick."""
    parts: list[str] = []
    by_kind: dict[str, list[Transition]] = {}
    for t in ts:
        by_kind.setdefault(t.kind, []).append(t)
    parts.extend(_models(by_kind))
    for t in by_kind.get("conflict.resolved", []):
        d = t.data
        n = len(d["losers"]) + 1
        parts.append(
            f"conflict detected ({_NUMBERS.get(n, str(n))} {_plural(d['resource'])}) -> resolved by {d['policy']} policy"
        )
    for t in by_kind.get("exploration.spawned", []):
        parts.append(f"uncertainty high on {t.data['question']} -> exploration spawned")
    restarted = {t.data["agent"] for t in by_kind.get("agent.restarted", [])}
    for t in by_kind.get("tool.timeout", []) + by_kind.get("tool.failed", []):
        what = "API timeout" if t.kind == "tool.timeout" else t.data["error"]
        follow = "agent restarted by supervisor" if t.data["agent"] in restarted else "recorded"
        parts.append(f"tool failure ({what}) -> {follow}")
    for t in by_kind.get("agent.failed", []):
        agent = t.data["agent"]
        if not any(
            x.data["agent"] == agent
            for x in by_kind.get("tool.timeout", []) + by_kind.get("tool.failed", [])
        ):
            follow = "restarted by supervisor" if agent in restarted else "not restarted"
            parts.append(f"agent failure ({t.data['error']}) -> {follow}")
    team_restarts = {t.data["supervisor"]: t for t in by_kind.get("supervisor.restarted", [])}
    for t in by_kind.get("supervisor.escalated", []):
        team = t.data["supervisor"]
        if team == "root":  # the run's end says it
            continue
        again = team_restarts.get(team)
        follow = f"restarted by {again.data['parent']}" if again is not None else "not restarted"
        parts.append(f"team {team} gave up -> {follow}")
    if by_kind.get("hallucination.detected"):
        line = "hallucination detected -> process killed"
        for r in by_kind.get("state.restored", []):
            line += f" -> restored from tick {r.data['tick']:02d}"
        parts.append(line)
    for t in by_kind.get("loop.detected", []):
        parts.append(f"loop detected ({t.data['pattern']})")
    for t in by_kind.get("budget.exhausted", []):
        parts.append(f"budget exhausted ({t.data['dimension']})")
    for t in by_kind.get("proposal.rejected", []):
        own = t.data.get("limit")  # an agent's own budget refused it
        if own is not None:
            parts.append(
                f"{own['agent']} over its own budget "
                f"({own['dimension']} {own['spent']:g}/{own['limit']:g}) -> rejected"
            )
    completed = by_kind.get("tick.completed", [])
    delta = completed[-1].data["delta"] if completed else 0.0
    if by_kind.get("run.completed"):
        parts.append(f"progress {delta:+.2f} -> return condition met")
    elif by_kind.get("run.stopped"):
        parts.append(
            f"progress {delta:+.2f} -> stopped: {by_kind['run.stopped'][-1].data['reason']}"
        )
    elif by_kind.get("run.failed"):
        parts.append(f"failed: {by_kind['run.failed'][-1].data['reason']}")
    elif not parts or not any(k in by_kind for k in _NOTED):
        parts.append(f"proposals -> commits -> progress {delta:+.2f}")
    label = f"TICK {tick:02d} (resumed)" if resumed else f"TICK {tick:02d}"
    return f"{label}: " + "; ".join(parts)


_NOTED = frozenset(
    {
        "conflict.resolved",
        "exploration.spawned",
        "tool.timeout",
        "tool.failed",
        "agent.failed",
        "supervisor.escalated",
        "hallucination.detected",
        "loop.detected",
        "budget.exhausted",
    }
)
"""Kinds that make a tick's line say more than its progress."""


_BREAKS = frozenset({"run.forked", "run.resumed"})


def _ticks(transitions: Iterable[Transition]) -> Iterator[tuple[int, list[Transition]]]:
    """Transitions grouped by tick; a fork or a resume starts a new group (what follows it
    is printed below it, even in the same tick)."""
    current: list[Transition] = []
    tick = 0
    for t in transitions:
        if (t.tick != tick or t.kind in _BREAKS) and current:
            yield tick, current
            current = []
        tick = t.tick
        current.append(t)
    if current:
        yield tick, current


def render(transitions: Iterable[Transition], *, total: int | None = None) -> list[str]:
    """The whole transcript of a run (``total`` is the ledger's transition count)."""
    lines: list[str] = []
    count = 0
    ended: Transition | None = None
    artifacts: list[str] = []
    for tick, ts in _ticks(transitions):
        count += len(ts)
        if tick == 0:
            for t in ts:
                if t.kind == "run.booted":
                    lines.append(f'BOOT: goal="{t.data["goal"]}"')
                elif t.kind == "run.forked":
                    lines.append(f"FORK: from {t.data['parent']} at seq {t.data['at']}")
            spawned = [t.data for t in ts if t.kind == "agent.spawned"]
            if spawned:
                roles = ", ".join(d["role"] for d in spawned)
                lines.append(f"SPAWN: {len(spawned)} agents ({roles})")
            continue
        for t in ts:
            if t.kind == "run.forked":
                lines.append(f"FORK: from {t.data['parent']} at seq {t.data['at']}")
            elif t.kind == "run.resumed":
                lines.append(f"RESUME: at seq {t.data['head']} ({t.data['reason']})")
            elif t.kind == "artifact.recorded":
                artifacts.append(t.data["name"])
            elif t.kind in ("run.completed", "run.failed", "run.stopped"):
                ended = t
        started = any(t.kind == "tick.started" for t in ts)
        if started or any(t.kind in ("tick.completed", "proposal.made") for t in ts):
            resumed = not started and ts[0].kind in _BREAKS
            lines.append(render_tick(tick, ts, resumed=resumed))
    n = total if total is not None else count
    if ended is not None:
        if ended.kind == "run.completed":
            what = "artifact generated" if artifacts else "no artifact"
            lines.append(f"DONE: {what} + full replay trace ({n} transitions)")
        else:
            reason: Any = ended.data["reason"]
            lines.append(
                f"END: {ended.kind.split('.')[1]} ({reason}) + full replay trace ({n} transitions)"
            )
    return lines
