"""Stage 2, record: the answers in agent order (never arrival order).

An admitted proposal is recorded as ``proposal.made`` after the model calls that produced
it; a malformed or unrecordable one as ``proposal.rejected`` (what its calls spent is still
recorded); a crash, or no answer by the last-resort deadline, leaves the agent to its
supervisor, whose reactions are recorded here. A group restart or a supervisor giving up may
stop agents that proposed: their proposals are refused, never acted on.
"""

from __future__ import annotations

from collections.abc import Sequence

from telic.errors import MalformedOutput
from telic.kernel.intake import Admitted, Refused
from telic.kernel.process import AgentCrash
from telic.kernel.stages.records import Asked, Proposed, Recorded, Tick
from telic.kinds import ModelCalled, ProposalRejected

__all__ = ["drop_stopped", "record"]


async def record(t: Tick, asked: Asked) -> Recorded:
    """Record each agent's reply; settle the crashes with the supervisor."""
    run, batch, tick = t.run, t.batch, t.number
    proposed: list[Proposed] = []
    crashed: list[str] = []
    invalid = False
    for order, (name, reply) in enumerate(zip(asked.agents, asked.replies, strict=True)):
        role = run.role(name)
        if isinstance(reply, Admitted):
            proposal = reply.proposal
            for call in proposal.model_calls:
                batch.add(call, tick=tick, agent=name)
            seq = batch.add_encoded("proposal.made", reply.made, reply.raw, tick=tick, agent=name)
            proposed.append(Proposed(name, role, order, proposal, seq, reply.json))
            continue
        if isinstance(reply, AgentCrash):
            invalid = True  # the supervisor reports the crash and the restart
            for call in reply.calls:  # what was spent before the failure is still spent
                batch.add(call, tick=tick, agent=name)
            crashed.append(name)
            continue
        if isinstance(reply, MalformedOutput):
            recorded: tuple[ModelCalled, ...] = getattr(reply, "calls", ())
            for call in recorded:
                batch.add(call, tick=tick, agent=name)
            check, reason = reply.check, str(reply)
        elif isinstance(reply, Refused):
            check, reason = "schema", reply.reason
        else:  # no answer by the last-resort deadline: the process is stopped and restarted
            invalid = True
            why = f"no answer within {asked.limit:g} s (the last-resort deadline of a tick)"
            if run.kill(name, reason=why):
                crashed.append(name)
            continue
        batch.add(ProposalRejected(agent=name, check=check, reason=reason), tick=tick, agent=name)
    await run.settle(batch, tick, crashed)
    kept = drop_stopped(t, proposed) if crashed else tuple(proposed)
    return Recorded(kept, tuple(crashed), invalid)


def drop_stopped(t: Tick, proposed: Sequence[Proposed]) -> tuple[Proposed, ...]:
    """The proposals of agents the run still supervises; the others refused.

    A group restart (one_for_all, rest_for_one) stops temporary siblings for good, and a
    supervisor that gives up stops every agent, maybe after they proposed in this tick: their
    proposals are refused, never acted on (a tool call sent to a stopped agent would wait for
    it, and record a fault that never happened)."""
    kept: list[Proposed] = []
    for p in proposed:
        if t.run.supervises(p.agent):
            kept.append(p)
        else:
            why = "its supervisor stopped the agent (a sibling's crash) before this was checked"
            t.batch.reject(t.number, p.agent, p.seq, "supervision", why)
    return tuple(kept)
