"""The tick-level transcript of a run, rendered from its ledger alone.

``BOOT:``, ``SPAWN:``, one ``TICK nn:`` line per tick naming what the kernel did (conflicts,
exploration, supervision, hallucinations and restores, the return condition), and ``DONE:``.
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


def render_tick(tick: int, ts: list[Transition]) -> str:
    """One ``TICK nn:`` line from the transitions of that tick."""
    parts: list[str] = []
    by_kind: dict[str, list[Transition]] = {}
    for t in ts:
        by_kind.setdefault(t.kind, []).append(t)
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
    if by_kind.get("hallucination.detected"):
        line = "hallucination detected -> process killed"
        for r in by_kind.get("state.restored", []):
            line += f" -> restored from tick {r.data['tick']:02d}"
        parts.append(line)
    for t in by_kind.get("loop.detected", []):
        parts.append(f"loop detected ({t.data['pattern']})")
    for t in by_kind.get("budget.exhausted", []):
        parts.append(f"budget exhausted ({t.data['dimension']})")
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
    elif not parts:
        parts.append(f"proposals -> commits -> progress {delta:+.2f}")
    return f"TICK {tick:02d}: " + "; ".join(parts)


def _ticks(transitions: Iterable[Transition]) -> Iterator[tuple[int, list[Transition]]]:
    current: list[Transition] = []
    tick = 0
    for t in transitions:
        if t.tick != tick and current:
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
        if any(t.kind == "tick.started" for t in ts) or any(t.kind == "tick.completed" for t in ts):
            lines.append(render_tick(tick, ts))
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
