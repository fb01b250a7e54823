"""The runs this server drives: started from specs, resumed, stopped, each in a task the
server's task group owns.

The server is one process on a shared ledger: a run that another process drives (``telic
run``, another server) can be read, followed, forked and approved here, but not stopped
(409: its own process must stop it; a parked one can be denied through its approvals).
Runs a server started are marked ``served`` in their ``run.booted``; when a server starts
again on the ledger, it resumes those that had not ended (a parked approval stays parked).

Ownership: the server's kernel has a lease holder, so every run it drives is leased to it
(renewed while it drives the run, released when it stops gracefully). Several servers on one
ledger never drive the same run: a resume of a run whose lease another server holds is
refused (:class:`~telic.errors.LeaseHeld`), and :meth:`Host.sweep` (every few seconds) takes
over the served runs whose lease went stale (their server died, or stopped without ending
them), as a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from telic.clock import ContinuedClock
from telic.errors import LeaseError, LedgerError, RunNotHosted, RunNotResumable, SpecError
from telic.kernel import Kernel, Run, RunConfig, Sweeper
from telic.kinds import RunStopped
from telic.ledger.lease import Lease
from telic.serve.models import ResumeIn, StartIn
from telic.spec import RecordedSpec, build_run, recorded_spec
from telic.state import RunState

__all__ = ["Host", "Hosting"]

log = logging.getLogger(__name__)

_ENDED = frozenset({"completed", "failed", "stopped"})


class Hosting(Protocol):
    """What the routes ask of whatever drives the server's runs: this process's
    :class:`Host`, or the cluster's (:class:`telic.cluster.serving.ClusterRuns`)."""

    def hosts(self, run_id: str) -> bool: ...

    async def start(self, body: StartIn, *, by: str) -> str: ...

    async def resume(self, run_id: str, body: ResumeIn, *, by: str) -> None: ...

    async def resume_served(self) -> list[str]: ...

    async def stop(self, run_id: str, *, by: str, reason: str) -> None: ...

    async def sweep_every(self, every_s: float) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _Hosted:
    run: Run
    release: Callable[[], Awaitable[None]]
    """Closes what the run's configuration opened (model clients, MCP servers)."""
    task: asyncio.Task[None] | None = None
    stopping: str | None = None


async def _nothing() -> None:
    return None


class Host:
    """Drives runs in ``kernel`` inside ``group`` (the server's task group)."""

    def __init__(self, kernel: Kernel, group: asyncio.TaskGroup, spec_dir: Path) -> None:
        self.kernel = kernel
        self.ledger = kernel.ledger
        self._group = group
        self._spec_dir = spec_dir
        self._runs: dict[str, _Hosted] = {}
        self._sweeper: Sweeper | None = None

    def hosts(self, run_id: str) -> bool:
        return run_id in self._runs

    def tasks(self) -> list[asyncio.Task[None]]:
        return [h.task for h in self._runs.values() if h.task is not None]

    def close(self) -> None:
        """Nothing to release: the runs' tasks belong to the kernel loop's task group."""

    # -- start -------------------------------------------------------------------------

    async def start(self, body: StartIn, *, by: str) -> str:
        """Boot a run from the posted spec; it goes on in the background."""
        path = body.save(self._spec_dir)
        built = build_run(
            path, model=body.model, clock=self.kernel.clock, base_dir=body.directory, served=True
        )
        try:
            run = await self.kernel.boot(built.config)
        except BaseException:
            await built.aclose()
            raise
        self._drive(run, built.aclose)
        return run.id

    # -- resume ------------------------------------------------------------------------

    async def resume(
        self, run_id: str, body: ResumeIn, *, by: str, lease: Lease | None = None
    ) -> None:
        """Resume ``run_id`` here, possibly as a counterfactual (another model, prompt or
        policy than it was booted with).

        Every run the server can rebuild from what it recorded resumes: a run booted from a
        spec (its spec file, with the counterfactual changes recorded since) and a reference
        run (``telic demo``: its seed). Anything else is :class:`RunNotResumable` (409).
        """
        if run_id in self._runs:
            raise RunNotResumable(run_id, "this server is driving it already")
        config, release, counterfactual, kernel = self._rebuild(run_id, body)
        try:
            run = await kernel.resume(
                run_id,
                config,
                reason=f"{body.reason} (by {by})",
                counterfactual=counterfactual or None,
                lease=lease,
            )
        except BaseException:
            await release()
            raise
        self._drive(run, release)

    def _rebuild(
        self, run_id: str, body: ResumeIn
    ) -> tuple[RunConfig, Callable[[], Awaitable[None]], dict[str, Any], Kernel]:
        """The configuration ``run_id`` goes on with, what closes it, what it changes, and the
        kernel that drives it."""
        recorded = recorded_spec(self.ledger, run_id)
        if recorded is not None:
            return (*self._rebuild_spec(recorded, body), self.kernel)
        booted = next(iter(self.ledger.read(run_id, 1, 1)), None)
        if booted is None or booted.kind != "run.booted":
            raise RunNotResumable(run_id, "it was never booted (it holds no run.booted)")
        demo: Any = booted.data.get("config", {}).get("demo")
        seed: object = cast(dict[str, object], demo).get("seed") if isinstance(demo, dict) else None
        if not isinstance(seed, int):
            raise RunNotResumable(
                run_id,
                "it was booted by Python code the server does not have (not from a spec, not "
                "the reference run); resume it in a process that builds its configuration "
                "(Kernel.resume)",
            )
        if body.model is not None or body.instructions is not None or body.policy is not None:
            raise RunNotResumable(
                run_id,
                "it is a reference run (telic demo), whose minds are scripted: model, "
                "instructions and policy do not apply; resume it without them",
            )
        from telic.demo import build

        config, _ = build(seed)
        # The reference run goes on on its own timeline (it may have been recorded on a
        # virtual clock, or long ago): its wall-time budget counts the time it has run.
        head = self.ledger.run(run_id).head
        last = self.ledger.get(run_id, head)
        if last.kind == "run.forked" and head > 1:  # recorded when forked, on the server's clock
            last = self.ledger.get(run_id, head - 1)
        kernel = Kernel(
            self.ledger,
            clock=ContinuedClock(last.ts),
            publish=self.kernel.publish,
            holder=self.kernel.holder,
            lease_ttl_s=self.kernel.lease_ttl_s,
            node=self.kernel.node,
        )
        return config, _nothing, {}, kernel

    def _rebuild_spec(
        self, recorded: RecordedSpec, body: ResumeIn
    ) -> tuple[RunConfig, Callable[[], Awaitable[None]], dict[str, Any]]:
        overrides: dict[str, Any] = {}
        if body.instructions is not None:
            overrides["instructions"] = body.instructions
        if body.policy is not None:
            overrides["policy"] = body.policy
        built = build_run(
            recorded.path,
            model=body.model or recorded.model,
            clock=self.kernel.clock,
            base_dir=recorded.base_dir,
            text=recorded.text,
            overrides={**recorded.overrides, **overrides},
            served=True,
        )
        counterfactual: dict[str, Any] = dict(overrides)
        if body.model is not None and body.model != recorded.model:
            counterfactual["model"] = body.model
        return built.config, built.aclose, counterfactual

    async def resume_served(self) -> list[str]:
        """Resume the runs a server started and that have not ended (after a restart)."""
        resumed: list[str] = []
        for info in self.ledger.runs():
            if info.head == 0 or info.id in self._runs:
                continue
            recorded = recorded_spec(self.ledger, info.id)
            if recorded is None or not recorded.served:
                continue
            if RunState(self.ledger.state_at(info.id)).status in _ENDED:
                continue
            try:
                await self.resume(info.id, ResumeIn(reason="the server restarted"), by="server")
            except LeaseError as exc:  # another server drives it
                log.info("not resuming %s: %s", info.id, exc)
                continue
            except (RunNotResumable, SpecError) as exc:
                log.warning("cannot resume %s: %s", info.id, exc)
                continue
            resumed.append(info.id)
        return resumed

    async def sweep(self) -> list[str]:
        """Take over the served runs whose lease went stale (their server died, or stopped
        without ending them) and drive them here."""
        if self._sweeper is None:
            self._sweeper = Sweeper(self.kernel, lambda _: None)
        sweeper = self._sweeper
        taken: list[str] = []
        for stale in sweeper.candidates():
            run_id = stale.run_id
            if run_id in self._runs:
                continue
            recorded = recorded_spec(self.ledger, run_id)
            if recorded is None or not recorded.served:
                continue
            lease = sweeper.take(stale)
            if lease is None:
                continue  # another server was first
            why = "released" if stale.released else "expired"
            body = ResumeIn(
                reason=f"taken over: the lease of {stale.holder} (epoch {stale.epoch}) {why}"
            )
            try:
                await self.resume(run_id, body, by="server", lease=lease)
            except (LedgerError, RunNotResumable, SpecError) as exc:
                log.warning("cannot take over %s: %s", run_id, exc)
                continue
            taken.append(run_id)
        return taken

    async def sweep_every(self, every_s: float) -> None:
        """Start :meth:`sweep` every ``every_s`` seconds, in a task of the host's group (call it
        on the host's loop)."""
        self._group.create_task(self._sweep_forever(every_s), name="lease sweeper")

    async def _sweep_forever(self, every_s: float) -> None:
        while True:
            await self.kernel.clock.sleep(every_s)
            try:
                await self.sweep()
            except LedgerError as exc:  # the ledger is unreachable: try again later
                log.warning("lease sweep failed: %s", exc)

    # -- driving -----------------------------------------------------------------------

    def _drive(self, run: Run, release: Callable[[], Awaitable[None]]) -> None:
        hosted = _Hosted(run, release)
        self._runs[run.id] = hosted
        hosted.task = self._group.create_task(self._loop(hosted), name=f"run {run.id}")

    async def _loop(self, hosted: _Hosted) -> None:
        run = hosted.run
        try:
            while hosted.stopping is None and await run.step():
                pass
        except Exception:
            log.exception("run %s failed in the server's kernel", run.id)
        finally:
            try:
                if run.lost is not None:
                    log.warning("run %s: %s", run.id, run.lost)
                elif hosted.stopping is not None and not run.done:
                    # Recorded under the run's lease, before close releases it.
                    batch = run.batch()
                    batch.add(RunStopped(reason=hosted.stopping), tick=run.fold.live.tick)
                    with contextlib.suppress(LedgerError):
                        await run.commit(batch)
            finally:
                try:
                    await run.close()
                finally:
                    await hosted.release()
                    self._runs.pop(run.id, None)

    # -- stop --------------------------------------------------------------------------

    async def stop(self, run_id: str, *, by: str, reason: str) -> None:
        """Stop a run this server drives: after the tick in progress, or at once when it is
        parked on an approval. ``run.stopped`` records who stopped it and why."""
        hosted = self._runs.get(run_id)
        status = RunState(self.ledger.state_at(run_id)).status
        if hosted is None:
            if status in _ENDED:
                raise RunNotHosted(run_id, f"it has ended ({status}); there is nothing to stop")
            raise RunNotHosted(
                run_id,
                "it is not driven by this server (another process drives it, or none does): "
                "stop it in its own process, or resume it here first",
            )
        hosted.stopping = f"{reason} (by {by})"
        task = hosted.task
        assert task is not None
        if status == "paused":
            task.cancel()  # parked on an approval: nothing in progress to finish
        await asyncio.wait([task])
