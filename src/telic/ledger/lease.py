"""Run ownership: leases with epochs (fencing tokens), one lease per run, in the ledger's store.

A host that drives a run holds its lease: ``ledger.leases.acquire(run_id, holder, ttl_s=...)``
takes a run nobody holds (no lease yet, released, or expired) and makes the epoch one higher;
the holder renews it before it expires; ``release`` gives it up. The ledger instance that
drives the run is *fenced* (:meth:`~telic.ledger.base.BaseLedger.fence`): every append it makes
to the run carries the epoch, and the backend compares it with the lease's in the same
transaction as the head check. So once another host took the run over (epoch + 1), a paused or
partitioned old owner can write nothing more: its next append raises
:class:`~telic.errors.Fenced` and writes nothing at all.

The rule, checked by every backend inside the append transaction (:func:`check_fence`):

- a lease that is not released: the append's epoch must be the lease's; an append without an
  epoch is refused too, except a group made only of approval decisions (``approval.granted``,
  ``approval.denied``: a human's answer from any process; the parked owner folds it);
- a released lease: appends without an epoch go through (the run is unowned), appends with one
  are refused (the lease they were made under was given up);
- no lease (a run never leased: ``telic run``, ``telic demo``): appends without an epoch go
  through exactly as before; an append with an epoch is refused (its lease is gone).

Expiry alone fences nothing: until someone takes the lease over, the late holder's epoch still
matches and it may still renew. Expiry is measured on one clock: PostgreSQL's own
(``clock_timestamp()`` in the statement, so the hosts' clocks never matter); SQLite and memory
use :attr:`Leases.clock` (the wall clock unless another is injected).
"""

from __future__ import annotations

import abc
import math
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from telic.clock import Clock, SystemClock
from telic.errors import Fenced, LeaseHeld, LeaseLost, LedgerOptionInvalid

__all__ = [
    "DECISION_KINDS",
    "Lease",
    "LeaseRow",
    "Leases",
    "check_fence",
    "default_holder",
    "ttl_us",
]

DECISION_KINDS: Final = frozenset({"approval.granted", "approval.denied"})
"""What any process may append to a leased run without its epoch."""

_MAX_TTL_S: Final = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Lease:
    """A run's lease as the store holds it. Times are microseconds since the Unix epoch on the
    lease clock (PostgreSQL's for a PostgreSQL ledger)."""

    run_id: str
    holder: str
    """Who holds it: one process (:func:`default_holder`)."""
    node: str
    """Where the holder runs, free text (a host name, a Ray node id); may be empty."""
    epoch: int
    """The fencing token: 1 for a run's first lease, one more at every takeover."""
    ttl_us: int
    """The time to live each acquire and renew grants."""
    acquired_us: int
    """When this epoch began."""
    renewed_us: int
    """The last acquire or renew."""
    expires_us: int
    released: bool
    """Given up by its holder: the run is unowned."""

    def live(self, now_us: int) -> bool:
        """Held: not released and not expired at ``now_us`` (the lease clock)."""
        return not self.released and self.expires_us > now_us

    def remaining_s(self, now_us: int) -> float:
        """Seconds until it expires (negative once expired)."""
        return (self.expires_us - now_us) / 1e6


LeaseRow = tuple[str, str, str, int, int, int, int, int, bool]
"""A lease as stored: the fields of :class:`Lease` in order."""


def default_holder() -> str:
    """A holder name unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def ttl_us(ttl_s: float) -> int:
    """``ttl_s`` in microseconds, once it is a sensible time to live."""
    if (
        isinstance(ttl_s, bool)
        or not isinstance(ttl_s, int | float)  # pyright: ignore[reportUnnecessaryIsInstance]
        or not math.isfinite(ttl_s)
        or not 0 < ttl_s <= _MAX_TTL_S
    ):
        raise LedgerOptionInvalid("ttl_s", ttl_s, f"a number of seconds in (0, {_MAX_TTL_S:g}]")
    return max(1, round(ttl_s * 1e6))


def _holder(holder: str) -> str:
    if not isinstance(holder, str) or not holder or len(holder) > 200:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise LedgerOptionInvalid("holder", holder, "a non-empty name of at most 200 characters")
    return holder


def check_fence(
    run_id: str,
    epoch: int | None,
    lease: tuple[int, bool, str] | None,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Raise :class:`Fenced` unless an append under ``epoch`` may write to a run whose lease is
    ``lease`` (epoch, released, holder; None: the run has no lease). ``rows``: the rows the
    append writes (their kinds, ``row[3]``, matter). The rule is in the module docstring."""
    if lease is None:
        if epoch is not None:
            raise Fenced(run_id, epoch, None, None, f"it has no lease, and epoch {epoch} was given")
        return
    current, released, holder = lease
    if released:
        if epoch is not None:
            raise Fenced(run_id, epoch, current, None, f"its lease (epoch {current}) was released")
        return
    if epoch is None:
        if rows and all(r[3] in DECISION_KINDS for r in rows):
            return
        raise Fenced(run_id, None, current, holder, f"it is leased to {holder} (epoch {current})")
    if epoch != current:
        raise Fenced(
            run_id,
            epoch,
            current,
            holder,
            f"it was made under lease epoch {epoch} but {holder} holds epoch {current}",
        )


class Leases(abc.ABC):
    """The lease operations of one ledger (``ledger.leases``)."""

    clock: Clock
    """The lease clock of SQLite and memory ledgers (PostgreSQL uses its server's)."""

    def __init__(self) -> None:
        self.clock = SystemClock()

    def acquire(
        self,
        run_id: str,
        holder: str,
        *,
        ttl_s: float,
        node: str = "",
        expect_epoch: int | None = None,
    ) -> Lease:
        """Take the lease of ``run_id`` for ``holder``, with epoch one above the last.

        Taken when there is no lease yet, or it was released, or it expired, or ``holder``
        holds it already (a holder is one process: it takes its own lease over). A live lease
        of another holder raises :class:`LeaseHeld`. ``expect_epoch``: take it only if its
        epoch is still this one (0: there is no lease yet), else :class:`LeaseHeld` (another
        took it first).
        """
        ttl = ttl_us(ttl_s)
        _holder(holder)
        if not isinstance(node, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise LedgerOptionInvalid("node", node, "a string")
        got, now, took = self._acquire(run_id, holder, node, ttl, expect_epoch)
        if took:
            assert got is not None
            return Lease(*got)
        if got is None:
            raise LeaseLost(run_id, expect_epoch or 0, None, None, "the run has no lease")
        lease = Lease(*got)
        if lease.live(now) or expect_epoch is None:
            raise LeaseHeld(run_id, lease.holder, lease.node, lease.epoch, lease.remaining_s(now))
        raise LeaseLost(
            run_id,
            expect_epoch,
            lease.epoch,
            lease.holder,
            f"its epoch moved to {lease.epoch} ({lease.holder})",
        )

    def renew(self, lease: Lease, *, ttl_s: float | None = None) -> Lease:
        """The same lease, expiring ``ttl_s`` (its own TTL by default) from now;
        :class:`LeaseLost` if it was taken over or released."""
        ttl = lease.ttl_us if ttl_s is None else ttl_us(ttl_s)
        got = self._renew(lease.run_id, lease.holder, lease.epoch, ttl)
        if got is None:
            raise self._lost(lease)
        return Lease(*got)

    def release(self, lease: Lease) -> bool:
        """Give the lease up (its epoch stays); False, changing nothing, if it was lost."""
        return self._release(lease.run_id, lease.holder, lease.epoch)

    def get(self, run_id: str) -> Lease | None:
        row = self._get(run_id)
        return None if row is None else Lease(*row)

    def all(self) -> list[Lease]:
        """Every lease, by run id."""
        return [Lease(*r) for r in self._all()]

    def stale(self) -> list[Lease]:
        """The leases nobody holds any more (expired or released), by run id: what a sweeper
        may take over (for the runs that have not ended)."""
        now = self.now_us()
        return [lease for lease in self.all() if not lease.live(now)]

    def now_us(self) -> int:
        """The lease clock, in microseconds since the Unix epoch."""
        return self.clock.now_us()

    def _lost(self, lease: Lease) -> LeaseLost:
        now = self.get(lease.run_id)
        if now is None:
            return LeaseLost(lease.run_id, lease.epoch, None, None, "the run has no lease any more")
        if now.epoch != lease.epoch:
            return LeaseLost(
                lease.run_id,
                lease.epoch,
                now.epoch,
                now.holder,
                f"{now.holder} took it over (epoch {now.epoch})",
            )
        return LeaseLost(lease.run_id, lease.epoch, now.epoch, None, "it was released")

    # -- per backend -----------------------------------------------------------------------

    @abc.abstractmethod
    def _acquire(
        self, run_id: str, holder: str, node: str, ttl: int, expect_epoch: int | None
    ) -> tuple[LeaseRow | None, int, bool]:
        """Atomically take the lease if it is free (see :meth:`acquire`; with
        ``expect_epoch``, only if its epoch, 0 without a lease, is that one). Returns the
        lease as it is after the attempt (None: there is none), the time of the attempt on the
        lease clock, and whether it was taken."""

    @abc.abstractmethod
    def _renew(self, run_id: str, holder: str, epoch: int, ttl: int) -> LeaseRow | None:
        """Atomically extend the lease if it is still ``holder``'s at ``epoch`` and not
        released; None otherwise."""

    @abc.abstractmethod
    def _release(self, run_id: str, holder: str, epoch: int) -> bool: ...

    @abc.abstractmethod
    def _get(self, run_id: str) -> LeaseRow | None: ...

    @abc.abstractmethod
    def _all(self) -> list[LeaseRow]: ...


def free(row: LeaseRow | None, holder: str, now: int, expect_epoch: int | None) -> bool:
    """Whether ``holder`` may take the lease ``row`` at ``now`` (memory and SQLite)."""
    if expect_epoch is not None and (0 if row is None else row[3]) != expect_epoch:
        return False
    if row is None:
        return True
    _, held_by, _, _, _, _, _, expires, released = row
    return released or expires <= now or held_by == holder


def taken(
    row: LeaseRow | None, run_id: str, holder: str, node: str, ttl: int, now: int
) -> LeaseRow:
    """The lease ``holder`` takes over ``row`` at ``now``."""
    epoch = 1 if row is None else row[3] + 1
    return (run_id, holder, node, epoch, ttl, now, now, now + ttl, False)
