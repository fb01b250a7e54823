"""One node's host: boots, resumes and drives the runs placed on its node.

A :class:`NodeHost` lives in a Ray actor pinned to its node (:mod:`telic.cluster.actor`),
but it is plain asyncio and telic: a kernel on the shared PostgreSQL ledger, each run driven
in a task of the host's task group (opened by :meth:`NodeHost.serve`, which lives as long as
the host). Runs are built from their spec as ``telic run`` builds them
(:func:`telic.spec.build_run`), from the spec text the driver sent (recorded in the run's
``run.booted``, from which a host taking the run over rebuilds it), with every tool that
declares resources called as a Ray task (:func:`telic.cluster.tasks.on_ray`), and the model
requests of every agent that declares resources sent from Ray tasks
(:func:`telic.cluster.model_calls.models_on_ray`). A run booted here is marked
``hosted = "ray"`` in its ``run.booted``, which is how any host recognises the runs the
cluster is responsible for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from telic.clock import Clock, SystemClock
from telic.cluster.model_calls import models_on_ray
from telic.cluster.tasks import on_ray
from telic.errors import ConfigError, SpecError, TelicError
from telic.kernel import DEFAULT_LEASE_TTL_S, AgentSpec, Kernel, Run, RunConfig, Sweeper
from telic.kinds import RunStopped
from telic.ledger import BaseLedger, open_ledger
from telic.ledger.lease import Lease
from telic.minds.base import Mind
from telic.minds.model import ModelMind
from telic.spec import BuiltRun, build_run, recorded_spec

__all__ = ["HOSTED", "ClusterSweeper", "NodeHost", "StartRequest", "is_cluster_run"]

log = logging.getLogger(__name__)

HOSTED: Final = "ray"
"""The value of ``hosted`` in the ``run.booted`` config of a run the cluster hosts."""


@dataclass(frozen=True, slots=True)
class StartRequest:
    """What a host needs to boot a run: a spec, as ``telic run`` takes it, with its text."""

    path: str
    """The spec file (absolute) as the driver saw it: where relative paths and import paths
    resolve from (unless ``base_dir``), and what messages name."""
    text: str | None = None
    """The spec file's content, read by the driver: the host builds it and records it in the
    run's ``run.booted``, so neither it nor a host taking the run over reads the file
    (None: the host reads ``path``)."""
    model: str | None = None
    base_dir: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict[str, Any])
    run_id: str | None = None
    """The run's id (default: a fresh one)."""


def is_cluster_run(ledger: BaseLedger, run_id: str) -> bool:
    """Whether ``run_id`` was booted by a cluster host (``hosted = "ray"`` on record)."""
    booted = next(iter(ledger.read(run_id, 1, 1)), None)
    if booted is None or booted.kind != "run.booted":
        return False
    config: Any = booted.data.get("config", {})
    return isinstance(config, Mapping) and cast(Mapping[str, Any], config).get("hosted") == HOSTED


class ClusterSweeper(Sweeper):
    """The kernel's :class:`~telic.kernel.Sweeper` for the cluster's runs only (a run that is
    not the cluster's never becomes one, so the sweeper settles it once, as it does an ended
    run). Each sweep offers at most ``batch`` runs, in a shuffled order, so that the hosts
    sweeping at the same time share a lost node's runs instead of one taking them all in turn.
    """

    def __init__(
        self,
        kernel: Kernel,
        config_for: Callable[[str], RunConfig | None],
        *,
        batch: int = 4,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(kernel, config_for)
        self.batch = batch
        self._rng = rng or random.Random()

    def adoptable(self, run_id: str) -> bool:
        return is_cluster_run(self.kernel.ledger, run_id)

    def choose(self, stale: list[Lease]) -> list[Lease]:
        self._rng.shuffle(stale)
        return stale[: self.batch]


def _explorers_on_ray(
    make: Callable[[str, AgentSpec], Mind] | None,
) -> Callable[[str, AgentSpec], Mind] | None:
    """The run's explorer factory, whose model minds send their requests where their parent
    agent's resources are."""
    if make is None:
        return None
    inner = make

    def explorer(question: str, parent: AgentSpec) -> Mind:
        mind = inner(question, parent)
        if isinstance(mind, ModelMind):  # another explorer factory's mind is its own affair
            models_on_ray(mind, parent.name, parent.resources)
        return mind

    return explorer


@dataclass(slots=True)
class _Hosted:
    run: Run
    built: BuiltRun
    task: asyncio.Task[None] | None = None
    stopping: str | None = None


class NodeHost:
    """Drives runs on one node against the shared ledger at ``db``."""

    def __init__(
        self,
        db: str,
        *,
        host_id: str,
        node_id: str,
        clock: Clock | None = None,
        ledger: BaseLedger | None = None,
        lease_s: float = DEFAULT_LEASE_TTL_S,
        sweep_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.host_id = host_id
        self.node_id = node_id
        self.lease_s = lease_s
        self.sweep_s = min(1.0, lease_s / 4) if sweep_s is None else sweep_s
        self.clock: Clock = clock or SystemClock()
        self.ledger = ledger if ledger is not None else open_ledger(db)
        self.kernel = Kernel(
            self.ledger, clock=self.clock, holder=host_id, lease_ttl_s=lease_s, node=node_id
        )
        self.sweeper = ClusterSweeper(self.kernel, self._config_for, rng=rng)
        self._adopting: dict[str, BuiltRun] = {}
        """What :meth:`_config_for` built for the sweeper, by run id, until it adopts the run."""
        self.lost: dict[str, str] = {}
        """Runs this host lost to another owner (by run id: ``Fenced``, an append refused, or
        ``LeaseLost``, a renewal refused), since it started."""
        self._runs: dict[str, _Hosted] = {}
        self._group: asyncio.TaskGroup | None = None
        self._ready = asyncio.Event()

    # -- what it hosts ------------------------------------------------------------------

    def hosted(self) -> list[str]:
        """The runs this host drives now."""
        return sorted(self._runs)

    def load(self) -> int:
        return len(self._runs)

    # -- lifetime -----------------------------------------------------------------------

    async def serve(self) -> None:
        """Own the runs' tasks and sweep for runs to take over, until cancelled (the actor's
        lifetime)."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._ready.set()
                while True:
                    await self.sweep()
                    await self.clock.sleep(self.sweep_s)
        finally:
            self._group = None

    async def sweep(self) -> list[str]:
        """Take over and drive every cluster run whose lease went stale (its host is gone, or
        paused, or cut off from the ledger); returns their ids."""
        group = await self._group_ready()
        try:
            adopted = await self.sweeper.sweep()
        except TelicError as exc:  # the ledger is unreachable: try again at the next sweep
            log.warning("host %s could not sweep: %s", self.host_id, exc)
            adopted = []
        except Exception:  # never let a sweep take the host's runs down with it
            log.exception("host %s: the sweep failed", self.host_id)
            adopted = []
        finally:
            leftovers = dict(self._adopting)
            self._adopting.clear()
        taken: list[str] = []
        for run in adopted:
            built = leftovers.get(run.id)
            if built is None:  # cannot happen: the sweeper resumes only what it was given
                await run.close()
                continue
            log.info("host %s took over run %s", self.host_id, run.id)
            self._drive(group, run, built)
            taken.append(run.id)
        for run_id, built in leftovers.items():
            if run_id not in taken:
                await built.aclose()  # another host was first
        return taken

    def _config_for(self, run_id: str) -> RunConfig | None:
        """The configuration of a stale cluster run, rebuilt from its recorded spec (None: not
        a cluster run, driven here already, or its spec cannot be built on this node)."""
        if run_id in self._runs or not is_cluster_run(self.ledger, run_id):
            return None
        recorded = recorded_spec(self.ledger, run_id)
        if recorded is None:
            return None
        try:
            built = self._build(
                recorded.path,
                text=recorded.text,
                model=recorded.model,
                base_dir=recorded.base_dir,
                overrides=recorded.overrides,
            )
        except TelicError as exc:
            log.warning("host %s cannot rebuild run %s: %s", self.host_id, run_id, exc)
            return None
        self._adopting[run_id] = built
        return built.config

    async def _group_ready(self) -> asyncio.TaskGroup:
        await self._ready.wait()
        assert self._group is not None
        return self._group

    # -- start and resume ---------------------------------------------------------------

    def _build(
        self,
        path: str,
        *,
        text: str | None,
        model: str | None,
        base_dir: str | None,
        overrides: Mapping[str, Any],
    ) -> BuiltRun:
        built = build_run(
            path,
            model=model,
            clock=self.clock,
            base_dir=base_dir,
            overrides=overrides or None,
            text=text,
        )
        base = str(Path(base_dir).resolve() if base_dir else built.path.parent)
        config = built.config
        try:
            for a in config.agents:
                models_on_ray(a.mind, a.name, a.resources)
        except ConfigError as exc:
            raise SpecError(str(built.path), str(exc)) from None
        built.config = dataclasses.replace(
            config,
            tools=[on_ray(t, paths=(base,)) for t in config.tools],
            explorer=_explorers_on_ray(config.explorer),
            record={**config.record, "hosted": HOSTED},
        )
        return built

    async def start(self, request: StartRequest) -> str:
        """Boot a run from ``request``'s spec and drive it here; returns its id."""
        group = await self._group_ready()
        built = self._build(
            request.path,
            text=request.text,
            model=request.model,
            base_dir=request.base_dir,
            overrides=request.overrides,
        )
        try:
            run = await self.kernel.boot(built.config, run_id=request.run_id)
        except BaseException:
            await built.aclose()
            raise
        self._drive(group, run, built)
        return run.id

    # -- driving ------------------------------------------------------------------------

    def _drive(self, group: asyncio.TaskGroup, run: Run, built: BuiltRun) -> None:
        hosted = _Hosted(run, built)
        self._runs[run.id] = hosted
        hosted.task = group.create_task(self._loop(hosted), name=f"run {run.id}")

    async def _loop(self, hosted: _Hosted) -> None:
        run = hosted.run
        try:
            try:
                while hosted.stopping is None and await run.step():
                    pass
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if hosted.stopping is None or task is None or task.uncancel() > 0:
                    raise
            if run.lost is not None:
                self.lost[run.id] = type(run.lost).__name__
                log.warning("host %s lost run %s: %s", self.host_id, run.id, run.lost)
            elif hosted.stopping is not None and not run.done:
                # Recorded under the run's lease, before close() gives the lease up: a
                # sweeper never sees a stopped run unowned.
                batch = run.batch()
                batch.add(RunStopped(reason=hosted.stopping), tick=run.fold.live.tick)
                await run.commit(batch)
        except TelicError as exc:
            log.warning("run %s stopped on host %s: %s", run.id, self.host_id, exc)
        except Exception:
            log.exception("run %s failed on host %s", run.id, self.host_id)
        finally:
            try:
                await run.close()
            finally:
                await hosted.built.aclose()
                self._runs.pop(run.id, None)

    # -- stop --------------------------------------------------------------------------

    async def stop(self, run_id: str, *, reason: str) -> bool:
        """Stop ``run_id`` after its tick in progress (at once when parked on an approval)
        and record ``run.stopped``; False if this host does not drive it."""
        hosted = self._runs.get(run_id)
        if hosted is None or hosted.task is None:
            return False
        hosted.stopping = reason
        if hosted.run.fold.live.status == "paused":
            hosted.task.cancel()  # parked on an approval: nothing in progress to finish
        await asyncio.wait([hosted.task])
        return True

    def close(self) -> None:
        self.ledger.close()
