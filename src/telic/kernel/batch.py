"""A batch: the transitions of one commit, numbered before they are written.

The kernel is a run's only writer, so it knows the next sequence number; each payload added
gets its seq at once (so later transitions can cite it as a cause) and is folded into the
kernel's working state. :meth:`commit` appends the batch in one atomic, durable group with
optimistic concurrency on the first seq; on failure the working state is rebuilt from the
ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from telic.canonical import encode_validated
from telic.kinds import Payload, ProposalRejected
from telic.ledger.base import BaseLedger
from telic.reducer import Fold
from telic.transition import SCHEMA_VERSION, Draft, Transition

__all__ = ["Batch"]


class Batch:
    def __init__(
        self, ledger: BaseLedger, run_id: str, fold: Fold, now_us: Callable[[], int]
    ) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.fold = fold
        self._now_us = now_us
        self._drafts: list[Draft] = []
        self._first = fold.seq + 1

    @property
    def next_seq(self) -> int:
        return self._first + len(self._drafts)

    def add(
        self, payload: Payload, *, tick: int, agent: str | None = None, causes: Sequence[int] = ()
    ) -> int:
        """Add ``payload``; return the sequence number it will have."""
        data = payload.model_dump(mode="json")
        raw = encode_validated(data)  # a validated model: finite by construction
        ts = self._now_us()
        seq = self.next_seq
        c = tuple(causes)
        self._drafts.append(Draft(payload.kind, raw, ts, tick, agent, c, data))
        self.fold.apply(
            Transition(
                self.run_id, seq, tick, agent, payload.kind, c, ts, SCHEMA_VERSION, data, b"", b""
            )
        )
        return seq

    def reject(
        self,
        tick: int,
        agent: str,
        proposal: int,
        check: str,
        reason: str,
        *,
        causes: Sequence[int] | None = None,
    ) -> int:
        """Record that ``check`` refused the proposal at ``proposal`` (seq), and why."""
        return self.add(
            ProposalRejected(agent=agent, check=check, reason=reason, proposal=proposal),
            tick=tick,
            agent=agent,
            causes=(proposal,) if causes is None else causes,
        )

    def rebase(self) -> None:
        """Number from the working state's seq again, after transitions others appended (a
        decision on a parked approval) were folded into it. Only between commits."""
        if self._drafts:
            raise RuntimeError("rebase with uncommitted drafts would renumber them")
        self._first = self.fold.seq + 1

    def __len__(self) -> int:
        return len(self._drafts)

    def commit(self) -> list[Transition]:
        """Write the batch (one durable commit); returns the committed transitions."""
        if not self._drafts:
            return []
        drafts, self._drafts = self._drafts, []
        first, self._first = self._first, self._first + len(drafts)
        return self.ledger.append(self.run_id, drafts, expected=first)
