"""A batch: the transitions of one commit, numbered before they are written.

The kernel is a run's only writer, so it knows the next sequence number; each payload added
gets its seq at once (so later transitions can cite it as a cause) and is folded into the
kernel's working state. :meth:`commit` appends the batch in one atomic, durable group with
optimistic concurrency on the first seq; on failure the working state is rebuilt from the
ledger.

Nothing the kernel adds can fail to commit for its content: :meth:`add` encodes a payload and
checks its size and depth before anything is numbered or folded, and refuses one it cannot
record with :class:`~telic.errors.NotCanonical` or :class:`~telic.errors.PayloadTooLarge`
(what minds and tools return was checked before, by :mod:`telic.kernel.intake`; this is the
net under it). The working state folds its own decoded copy of each payload, so that no
transition handed out after the commit (to subscribers, say) shares a value with it.

The ledger snapshots a run's state every ``snapshot_every`` seqs (and by bytes). The batch
encodes its working state after each draft at such a seq and hands these states to
:meth:`BaseLedger.append <telic.ledger.base.BaseLedger.append>` (``states``), so that the
ledger need not decode and fold every record a second time to have them (a snapshot due by
bytes it folds from the store). A shared commit (:meth:`commit_shared`) hands none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from telic.canonical import encode_validated
from telic.errors import NotCanonical, PayloadTooLarge
from telic.kernel.guard import describe
from telic.kernel.intake import check_depth
from telic.kinds import AgentLimit, Payload, ProposalRejected
from telic.ledger.base import BaseLedger
from telic.ledger.group import GroupCommitter
from telic.reducer import Fold
from telic.transition import SCHEMA_VERSION, Draft, Transition

__all__ = ["Batch"]

_new: Final[Callable[[type[Any], tuple[Any, ...]], Any]] = tuple.__new__  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]


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
        self.max_payload: int = ledger.max_payload
        self._every = ledger.snapshots.every
        self._states: dict[int, tuple[bytes, str]] = {}
        """The working state after each draft at a seq the ledger snapshots by count, for
        the ledger (see :meth:`BaseLedger.append <telic.ledger.base.BaseLedger.append>`)."""

    @property
    def next_seq(self) -> int:
        return self._first + len(self._drafts)

    def add(
        self, payload: Payload, *, tick: int, agent: str | None = None, causes: Sequence[int] = ()
    ) -> int:
        """Add ``payload``; return the sequence number it will have.

        Raises :class:`NotCanonical` or :class:`PayloadTooLarge` (adding nothing) for a payload
        that could not be recorded.
        """
        kind = payload.kind
        try:
            # model_dump(mode="json") without its Python-level argument handling (a µs a call)
            data = payload.__pydantic_serializer__.to_python(payload, mode="json")
            raw = encode_validated(data)  # a validated model: finite by construction
        except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
            raise NotCanonical(f"{kind} payload: {describe(exc)[1]}") from None
        check_depth(raw)
        return self.add_encoded(kind, data, raw, tick=tick, agent=agent, causes=causes)

    def add_encoded(
        self,
        kind: str,
        data: dict[str, Any],
        raw: bytes,
        *,
        tick: int,
        agent: str | None = None,
        causes: Sequence[int] = (),
    ) -> int:
        """Add a payload of ``kind`` already validated and encoded (``raw`` is ``data``'s
        canonical encoding)."""
        if len(raw) > self.max_payload:
            raise PayloadTooLarge(kind, len(raw), self.max_payload)
        ts = self._now_us()
        drafts = self._drafts
        seq = self._first + len(drafts)
        c: tuple[int, ...] = causes if type(causes) is tuple else tuple(causes)  # pyright: ignore[reportUnknownVariableType]
        # tuple.__new__: the named tuples' own __new__ is a Python function (a µs a record)
        drafts.append(_new(Draft, (kind, raw, ts, tick, agent, c, data)))
        folded: dict[str, Any] = orjson.loads(raw)  # the state's own copy (see the module)
        fold = self.fold
        fold.apply(
            _new(
                Transition,
                (self.run_id, seq, tick, agent, kind, c, ts, SCHEMA_VERSION, folded, b"", b""),
            )
        )
        if seq % self._every == 0:
            self._states[seq] = (fold.encoded(), fold.hash())
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
        limit: AgentLimit | None = None,
    ) -> int:
        """Record that ``check`` refused the proposal at ``proposal`` (seq), and why (with the
        agent's own budget ``limit`` that refused it, when one did)."""
        return self.add(
            ProposalRejected(
                agent=agent, check=check, reason=reason, proposal=proposal, limit=limit
            ),
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

    def commit(self, *, create: bool = False) -> list[Transition]:
        """Write the batch (one durable commit); returns the committed transitions.
        ``create``: the batch is the run's first, and creates it in the same transaction."""
        if not self._drafts:
            return []
        drafts, first = self._take()
        states, self._states = self._states, {}
        return self.ledger.append(self.run_id, drafts, expected=first, create=create, states=states)

    async def commit_shared(self, committer: GroupCommitter) -> list[Transition]:
        """Write the batch through ``committer``: durable when this returns, in a commit
        shared with the other runs' batches queued with it."""
        if not self._drafts:
            return []
        drafts, first = self._take()
        self._states = {}  # a shared commit folds its snapshots in the ledger
        return await committer.append(self.run_id, drafts, expected=first)

    def _take(self) -> tuple[list[Draft], int]:
        """The drafts to write and the seq of the first; the batch numbers on after them."""
        drafts, self._drafts = self._drafts, []
        first, self._first = self._first, self._first + len(drafts)
        return drafts, first
