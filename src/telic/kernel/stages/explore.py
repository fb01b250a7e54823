"""Stage 4, explore: an explorer instead of a low-confidence action.

A proposal (other than ``finish`` and ``spawn``, and not an explorer's own) below the
policy's exploration threshold is refused, and an explorer is spawned for its question
(``exploration.spawned``, ``agent.spawned``); a run without an explorer factory refuses it
instead, and refuses ``spawn`` too.
"""

from __future__ import annotations

from collections.abc import Sequence

from telic.kernel.guard import Failed
from telic.kernel.stages.records import Passing, Tick
from telic.kinds import ExplorationSpawned

__all__ = ["explore"]


async def explore(t: Tick, passing: Sequence[Passing]) -> tuple[Passing, ...]:
    """The proposals confident enough to act on (the others explored or refused)."""
    run, batch, tick = t.run, t.batch, t.number
    threshold = run.config.policy.exploration_threshold
    confident: list[Passing] = []
    for each in passing:
        p = each.made
        unsure = (
            p.proposal.confidence < threshold
            and p.proposal.action not in ("finish", "spawn")
            and not run.is_explorer(p.agent)
        )
        if run.config.explorer is None and (unsure or p.proposal.action == "spawn"):
            check, reason = (
                (
                    "confidence",
                    f"confidence {p.proposal.confidence:g} is below {threshold:g} and the run has no explorer",
                )
                if unsure
                else ("spawn", "the run has no explorer to spawn")
            )
            batch.reject(tick, p.agent, p.seq, check, reason)
            continue
        if not unsure:
            confident.append(each)
            continue
        question = p.proposal.reason or f"{p.proposal.action} {p.proposal.args}"
        mind = run.make_explorer(question, p.agent)
        if isinstance(mind, Failed):
            why = f"confidence {p.proposal.confidence:g} is below {threshold:g} and the explorer factory failed ({mind})"
            batch.reject(tick, p.agent, p.seq, "confidence", why)
            continue
        explorer = run.next_explorer_name()
        cause = batch.add(
            ExplorationSpawned(
                proposal=p.seq,
                agent=p.agent,
                explorer=explorer,
                question=question,
                confidence=p.proposal.confidence,
                threshold=threshold,
            ),
            tick=tick,
            agent=p.agent,
            causes=(p.seq,),
        )
        batch.reject(
            tick,
            p.agent,
            p.seq,
            "confidence",
            f"confidence {p.proposal.confidence:g} is below {threshold:g}; {explorer} explores it",
        )
        await run.spawn_explorer(batch, tick, explorer, question, p.agent, cause, mind)
    return tuple(confident)
