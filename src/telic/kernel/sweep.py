"""Failover: a sweeper takes over the runs whose owner stopped renewing their lease.

A run leased to a host that died (``kill -9``, a lost node) or was cut off keeps a lease
nobody renews; once it expires (or when its holder released it without ending the run, a
server's graceful stop), :meth:`Sweeper.sweep` takes the lease (its epoch + 1, only if it is
still the stale one it saw) and resumes the run through :meth:`Kernel.resume
<telic.kernel.Kernel.resume>`, with the guarantees of a local crash: nothing committed is
lost, an interrupted non-idempotent tool call becomes ``tool.unknown``, a run parked on an
approval stays parked. From then on the old owner's appends are refused by the fence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from telic.errors import (
    ConfigError,
    LeaseError,
    LedgerError,
    RunNotFound,
    RunNotResumable,
)
from telic.kernel.config import RunConfig
from telic.kernel.run import Run
from telic.ledger.lease import Lease
from telic.state import RunState

if TYPE_CHECKING:
    from telic.kernel import Kernel

__all__ = ["Sweeper"]

log = logging.getLogger(__name__)

_ENDED: Final = frozenset({"completed", "failed", "stopped"})


class Sweeper:
    """Adopts the runs of stale leases into ``kernel`` (which must have a ``holder``).

    ``config_for(run_id)`` rebuilds the run's configuration (its agents, minds, tools), or
    returns None for a run this process cannot host (it is left for another sweeper).
    """

    def __init__(self, kernel: Kernel, config_for: Callable[[str], RunConfig | None]) -> None:
        if kernel.holder is None:
            raise ConfigError("a sweeper takes leases: give its Kernel a holder")
        self.kernel = kernel
        self.config_for = config_for
        self._settled: set[str] = set()
        """Runs settled for good (ended, or never this sweeper's): their stale leases are not
        looked at again."""

    def adoptable(self, run_id: str) -> bool:
        """Whether runs like ``run_id`` are ever this sweeper's (a sweeper for some runs of a
        shared ledger narrows it); asked once per run, before its state is folded."""
        return True

    def choose(self, stale: list[Lease]) -> list[Lease]:
        """The candidates one pass offers, in order (all of them, as found)."""
        return stale

    def candidates(self) -> list[Lease]:
        """The stale leases (expired or released) of adoptable runs that exist and have not
        ended, as :meth:`choose` orders them."""
        ledger = self.kernel.ledger
        out: list[Lease] = []
        for lease in ledger.leases.stale():
            rid = lease.run_id
            if rid in self._settled:
                continue
            try:
                if not self.adoptable(rid):
                    self._settled.add(rid)
                    continue
                status = RunState(ledger.state_at(rid)).status
            except RunNotFound:
                continue  # a boot that died before it created the run: nothing to resume
            if status in _ENDED:
                self._settled.add(rid)
            elif status != "new":
                out.append(lease)
        return self.choose(out)

    def take(self, stale: Lease) -> Lease | None:
        """The lease of ``stale``'s run for this kernel's holder, if it is still that stale
        lease (another sweeper may have been first: then None; None too when the store could
        not be written now, which the next pass retries)."""
        kernel = self.kernel
        assert kernel.holder is not None
        try:
            return kernel.ledger.leases.acquire(
                stale.run_id,
                kernel.holder,
                ttl_s=kernel.lease_ttl_s,
                node=kernel.node,
                expect_epoch=stale.epoch,
            )
        except LeaseError:
            return None
        except LedgerError as exc:  # e.g. SQLite busy past its timeout: the next pass retries
            log.warning("cannot take the lease of %s: %s", stale.run_id, exc)
            return None

    async def sweep(self) -> list[Run]:
        """One pass: take over and resume every run of a stale lease this process can host.
        Returns the runs resumed (the caller drives and closes them)."""
        adopted: list[Run] = []
        ledger = self.kernel.ledger
        for stale in self.candidates():
            config = self.config_for(stale.run_id)
            if config is None:
                continue
            lease = self.take(stale)
            if lease is None:
                continue
            why = "released" if stale.released else "expired"
            try:
                run = await self.kernel.resume(
                    stale.run_id,
                    config,
                    reason=f"taken over: the lease of {stale.holder} (epoch {stale.epoch}) {why}",
                    lease=lease,
                )
            except (RunNotResumable, ConfigError, LedgerError) as exc:
                log.warning("cannot take over %s: %s", stale.run_id, exc)
                ledger.unfence(stale.run_id)
                continue
            adopted.append(run)
        return adopted
