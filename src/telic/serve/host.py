"""The runs this server drives: started from specs, resumed, stopped, each in a task the
server's task group owns.

The server is one process on a shared ledger: a run that another process drives (``telic
run``, another server) can be read, followed, forked and approved here, but not stopped
(409: its own process must stop it; a parked one can be denied through its approvals).
Runs a server started are marked ``served`` in their ``run.booted``; when a server starts
again on the ledger, it resumes those that had not ended (a parked approval stays parked).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from telic.clock import ContinuedClock
from telic.errors import RunNotHosted, RunNotResumable, SpecError
from telic.kernel import Kernel, Run, RunConfig
from telic.kinds import RunStopped
from telic.serve.models import ResumeIn, StartIn
from telic.spec import RecordedSpec, build_run, recorded_spec
from telic.transition import draft

__all__ = ["Host"]

log = logging.getLogger(__name__)

_ENDED = frozenset({"completed", "failed", "stopped"})


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

    def hosts(self, run_id: str) -> bool:
        return run_id in self._runs

    def tasks(self) -> list[asyncio.Task[None]]:
        return [h.task for h in self._runs.values() if h.task is not None]

    # -- start -------------------------------------------------------------------------

    def _write_spec(self, body: StartIn) -> Path:
        if (body.toml is None) == (body.spec is None):
            raise SpecError("<request>", "give exactly one of `toml` (text) or `spec` (JSON)")
        self._spec_dir.mkdir(parents=True, exist_ok=True)
        name = secrets.token_hex(6)
        if body.toml is not None:
            path = self._spec_dir / f"{name}.toml"
            path.write_text(body.toml, encoding="utf-8")
        else:
            path = self._spec_dir / f"{name}.json"
            path.write_text(json.dumps(body.spec), encoding="utf-8")
        return path

    async def start(self, body: StartIn, *, by: str) -> str:
        """Boot a run from the posted spec; it goes on in the background."""
        path = self._write_spec(body)
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

    async def resume(self, run_id: str, body: ResumeIn, *, by: str) -> None:
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
        kernel = Kernel(self.ledger, clock=ContinuedClock(last.ts), publish=self.kernel.publish)
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
            if self.ledger.state_at(info.id)["status"] in _ENDED:
                continue
            try:
                await self.resume(info.id, ResumeIn(reason="the server restarted"), by="server")
            except (RunNotResumable, SpecError) as exc:
                log.warning("cannot resume %s: %s", info.id, exc)
                continue
            resumed.append(info.id)
        return resumed

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
                await run.close()
            finally:
                await hosted.release()
                self._runs.pop(run.id, None)

    # -- stop --------------------------------------------------------------------------

    async def stop(self, run_id: str, *, by: str, reason: str) -> None:
        """Stop a run this server drives: after the tick in progress, or at once when it is
        parked on an approval. ``run.stopped`` records who stopped it and why."""
        hosted = self._runs.get(run_id)
        status = self.ledger.state_at(run_id)["status"]
        if hosted is None:
            if status in _ENDED:
                raise RunNotHosted(run_id, f"it has ended ({status}); there is nothing to stop")
            raise RunNotHosted(
                run_id,
                "it is not driven by this server (another process drives it, or none does): "
                "stop it in its own process, or resume it here first",
            )
        hosted.stopping = reason
        task = hosted.task
        assert task is not None
        if status == "paused":
            task.cancel()  # parked on an approval: nothing in progress to finish
        await asyncio.wait([task])
        state = self.ledger.state_at(run_id)
        if state["status"] not in _ENDED:
            info = self.ledger.run(run_id)
            committed = self.ledger.append(
                run_id,
                [
                    draft(
                        RunStopped(reason=f"{reason} (by {by})"),
                        ts=self.kernel.clock.now_us(),
                        tick=state["tick"],
                    )
                ],
                expected=info.head + 1,
            )
            if self.kernel.publish is not None:
                self.kernel.publish(committed)
