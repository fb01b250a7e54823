"""Group commit across runs: many runs' appends, awaited, written in one durable commit.

A run that commits every tick durably pays one fsync a tick; a hundred such runs in one
process, one after the other, pay a hundred. :class:`GroupCommitter` lets them share: each
run awaits :meth:`GroupCommitter.append`, which queues its group; one writer takes every
group queued (one per run), appends them with :meth:`BaseLedger.append_groups
<telic.ledger.base.BaseLedger.append_groups>` in a worker thread (one transaction, one
fsync: the event loop goes on meanwhile, and the groups queued during that fsync go in the
next), and hands each run its own answer: its committed transitions, or the error that
refused its group (a refused group is not written; the others are). A failure of the commit
itself fails every group of it.

A run's append is durable when its ``append`` returns, as with :meth:`BaseLedger.append
<telic.ledger.base.BaseLedger.append>`. A caller cancelled while its group is being written
does not unwrite it (as with a process stopped mid-commit); one cancelled before the writer
took its group has nothing written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from telic.errors import LedgerUnavailable
from telic.ledger.base import AppendGroup, BaseLedger
from telic.transition import Draft, Transition

__all__ = ["MAX_GROUPS", "GroupCommitter"]

MAX_GROUPS: Final = 512
"""The most groups one commit takes (the rest wait for the next)."""


@dataclass(frozen=True, slots=True)
class _Queued:
    group: AppendGroup
    answer: asyncio.Future[list[Transition]]


class GroupCommitter:
    """Awaited appends of many runs, written together (see the module).

    Use it as an async context manager (``async with GroupCommitter(ledger) as commits:``),
    which owns its writer task; leaving it writes what is queued, then stops.
    """

    def __init__(self, ledger: BaseLedger, *, max_groups: int = MAX_GROUPS) -> None:
        if max_groups < 1:
            raise ValueError(f"max_groups must be at least 1, not {max_groups}")
        self.ledger = ledger
        self.max_groups = max_groups
        self.commits = 0
        """Commits that wrote at least one group (each one transaction, one fsync)."""
        self.groups = 0
        """Groups written so far."""
        self.writing_s = 0.0
        """Seconds the writer spent in :meth:`BaseLedger.append_groups` (numbering, hashing,
        storing, the fsync): how long a commit keeps the runs of the next one waiting."""
        self._queue: list[_Queued] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> GroupCommitter:
        if self._writer is not None or self._closed:
            raise RuntimeError("a GroupCommitter is entered once")
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(), name="telic-group-commit"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Write what is queued, then stop the writer; appends after this are refused."""
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            await self._writer

    async def append(
        self,
        run_id: str,
        drafts: Sequence[Draft],
        *,
        expected: int | None = None,
        create: bool = False,
    ) -> list[Transition]:
        """Append ``drafts`` to ``run_id`` (as :meth:`BaseLedger.append`), durably, in a
        commit shared with the other runs' groups queued at the same time."""
        if self._closed or self._writer is None:
            raise LedgerUnavailable(
                self.ledger.url, "the group committer is not running (enter it with async with)"
            )
        answer: asyncio.Future[list[Transition]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(AppendGroup(run_id, drafts, expected, create), answer))
        self._wake.set()
        return await answer

    def _take(self) -> list[_Queued]:
        """The next commit's groups: at most one per run and :attr:`max_groups`, in queue
        order; the rest stay queued. Groups whose callers gave up are dropped."""
        batch: list[_Queued] = []
        rest: list[_Queued] = []
        runs: set[str] = set()
        for q in self._queue:
            if q.answer.done():
                continue
            if q.group.run_id in runs or len(batch) >= self.max_groups:
                rest.append(q)
            else:
                runs.add(q.group.run_id)
                batch.append(q)
        self._queue = rest
        return batch

    async def _write_loop(self) -> None:
        try:
            while True:
                batch = self._take()
                if not batch:
                    if self._closed:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                groups = [q.group for q in batch]
                started = time.perf_counter()
                try:
                    answers = await asyncio.to_thread(self.ledger.append_groups, groups)
                except Exception as exc:  # the commit itself failed: no group was written
                    for q in batch:
                        if not q.answer.done():
                            q.answer.set_exception(exc)
                    continue
                finally:
                    self.writing_s += time.perf_counter() - started
                written = sum(isinstance(got, list) for got in answers)
                self.commits += written > 0
                self.groups += written
                for q, got in zip(batch, answers, strict=True):
                    if q.answer.done():
                        continue
                    if isinstance(got, list):
                        q.answer.set_result(got)
                    else:
                        q.answer.set_exception(got)
        finally:
            left, self._queue = self._queue, []
            for q in left:
                if not q.answer.done():
                    q.answer.set_exception(
                        LedgerUnavailable(self.ledger.url, "the group committer stopped")
                    )
