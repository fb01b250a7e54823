"""Stage 6, ground: every claim of a proposal checked against what was observed.

With a verifier in the policy, a claim it finds unsupported is a hallucination
(``hallucination.detected``, citing only evidence that exists): the proposal is refused and
its agent is killed and the run restored at the end of the tick. A verifier that raises
refuses the proposal (check ``grounding``).
"""

from __future__ import annotations

from collections.abc import Sequence

from telic.kernel import guard
from telic.kernel.guard import Failed, safe_text
from telic.kernel.stages.records import Grounded, Passing, Tick
from telic.kernel.stages.shared import name_of
from telic.kinds import Claim, HallucinationDetected

__all__ = ["ground"]


def ground(t: Tick, passing: Sequence[Passing]) -> Grounded:
    """The proposals whose claims hold, and the agents that made claims that do not."""
    run, batch, tick = t.run, t.batch, t.number
    verifier = run.config.policy.verifier
    grounded: list[Passing] = []
    hallucinated: list[str] = []
    for each in passing:
        p = each.made
        if verifier is None or not p.proposal.claims:
            grounded.append(each)
            continue
        bad: tuple[Claim, str] | None = None
        broken: Failed | None = None
        for claim in p.proposal.claims:
            why = guard.attempt(verifier.unsupported, claim, run.lookup)
            if isinstance(why, Failed):
                broken = why
                break
            if why is not None:
                bad = (claim, safe_text(str(why)))
                break
        if broken is not None:
            batch.reject(tick, p.agent, p.seq, "grounding", f"the verifier failed ({broken})")
            continue
        if bad is not None:
            claim, why = bad
            # An invented citation is the finding, not a cause: only what exists is cited.
            cited = tuple(e for e in claim.evidence if 0 < e < batch.next_seq)
            batch.add(
                HallucinationDetected(agent=p.agent, proposal=p.seq, claim=claim, reason=why),
                tick=tick,
                agent=p.agent,
                causes=(p.seq, *cited),
            )
            batch.reject(tick, p.agent, p.seq, "grounding", why)
            hallucinated.append(p.agent)
            continue
        grounded.append(each.passed(name_of(verifier)))
    return Grounded(tuple(grounded), tuple(hallucinated))
