"""The kernel: boots, resumes and forks runs; a :class:`~telic.kernel.run.Run` ticks them.

Layout: ``config`` (what a run is made of), ``process`` (one agent = one supervised task),
``guard`` (calling user code under deadlines), ``intake`` (checking what minds and tools
return), ``batch`` (numbered group commits), ``view`` (the state a tick's minds read),
``tick`` (the order of one tick), ``run`` (a live run).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from telic.clock import Clock, SystemClock
from telic.errors import (
    ChainBroken,
    ConfigError,
    LedgerError,
    RunExists,
    RunNotFound,
    RunNotResumable,
)
from telic.kernel import approval
from telic.kernel.calls import open_tick
from telic.kernel.config import (
    AgentBudget,
    AgentSpec,
    Approver,
    Artifact,
    Budget,
    RunConfig,
    Team,
)
from telic.kernel.guard import Failed, safe_text
from telic.kernel.run import Run, RunResult
from telic.kernel.stages import Tick, ToolCall, execute
from telic.kernel.sweep import Sweeper
from telic.kernel.tree import Tree
from telic.kinds import (
    AgentRecord,
    AgentSpawned,
    AgentTerminated,
    RunBooted,
    RunForked,
    RunPaused,
    RunResumed,
    SupervisionTree,
    TickCompleted,
    ToolStarted,
    ToolUnknownOutcome,
)
from telic.ledger.base import BaseLedger
from telic.ledger.group import GroupCommitter
from telic.ledger.lease import Lease, default_holder
from telic.reducer import initial_state
from telic.state import PendingTool, RunState
from telic.transition import Transition, draft

__all__ = [
    "DEFAULT_LEASE_TTL_S",
    "AgentBudget",
    "AgentSpec",
    "Approver",
    "Artifact",
    "Budget",
    "Kernel",
    "Run",
    "RunConfig",
    "RunResult",
    "Sweeper",
    "Team",
    "new_run_id",
]


DEFAULT_LEASE_TTL_S = 10.0
"""How long a run's lease lasts without renewal (renewed every third of it)."""


def new_run_id() -> str:
    """A fresh run id (random: the id is where a run lives, not part of its hashed content)."""
    return "r-" + secrets.token_hex(6)


class Kernel:
    """Drives runs against one ledger.

    ``publish`` receives every committed batch (wire it to ``EventKernel.publish``).
    ``committer``: a :class:`~telic.ledger.group.GroupCommitter` on ``ledger``, through which
    the runs of this kernel share their commits' fsyncs (many runs in one process).

    ``holder``: run every run under a lease (:mod:`telic.ledger.lease`) held by this name (one
    process: :func:`~telic.ledger.lease.default_holder`), for ``lease_ttl_s`` at a time and
    renewed every third of it; ``node`` says where the holder runs. Without a holder, runs
    are unleased (one process owns its ledger), except a run that has a lease already: its
    resume takes the lease (with a holder of its own) or refuses while another holds it.
    """

    def __init__(
        self,
        ledger: BaseLedger,
        *,
        clock: Clock | None = None,
        publish: Callable[[Sequence[Transition]], None] | None = None,
        committer: GroupCommitter | None = None,
        holder: str | None = None,
        lease_ttl_s: float = DEFAULT_LEASE_TTL_S,
        node: str = "",
    ) -> None:
        if committer is not None and committer.ledger is not ledger:
            raise ConfigError(
                "the group committer writes to another ledger than the kernel's: "
                "make it with GroupCommitter(ledger) for the same ledger"
            )
        self.ledger = ledger
        self.committer = committer
        """Where the runs' commits go to share an fsync (None: each commit on its own)."""
        self.clock: Clock = clock or SystemClock()
        self.publish = publish
        self.holder = holder
        self.lease_ttl_s = lease_ttl_s
        self.node = node
        self.abandoned: list[asyncio.Task[Any]] = []
        """Calls of minds, tools and approvers that swallowed their cancellation past their
        deadline and grace: left running (asyncio cannot force them) and listed here, ended or
        not, so that none is orphaned silently."""

    async def boot(self, config: RunConfig, *, run_id: str | None = None) -> Run:
        """Start a run: ``run.booted``, then each agent spawned under the root supervisor.

        The run is created in the same transaction as ``run.booted`` and the spawns: a crash
        during boot leaves no run at all, never one without its boot that nothing can resume.
        """
        config.validate()
        rid = run_id or new_run_id()
        if run_id is not None:
            _refuse_taken(self.ledger, rid)
        lease = None
        if self.holder is not None:
            # Taken before the run exists: the run is created by a fenced append.
            lease = self.ledger.leases.acquire(
                rid, self.holder, ttl_s=self.lease_ttl_s, node=self.node
            )
            self.ledger.fence(lease)
        run = Run(
            self.ledger,
            rid,
            config,
            self.clock,
            self.publish,
            state=initial_state(),
            abandoned=self.abandoned,
            committer=self.committer,
        )
        if lease is not None:
            run.hold(lease)
        batch = run.batch()
        batch.add(
            RunBooted(
                goal=config.goal,
                agents=tuple(
                    AgentRecord(
                        name=a.name,
                        role=a.role,
                        tools=a.tools,
                        restart=a.restart,
                        priority=a.priority,
                        budget=(a.budget.limits(a.name) or None) if a.budget is not None else None,
                    )
                    for a in config.agents
                ),
                budget=config.budget.limits(),
                currency=config.budget.currency,
                policy=config.policy.describe(),
                return_condition=config.return_description,
                seed=config.seed,
                config=dict(config.record),
                supervision=run.tree.record(),
            ),
            tick=0,
        )
        await run.supervisor.start()
        for spec in config.agents:
            batch.add(
                AgentSpawned(
                    agent=spec.name,
                    role=spec.role,
                    supervisor=run.home(spec.name),
                    tools=spec.tools,
                ),
                tick=0,
                agent=spec.name,
                causes=(1,),
            )
        await run.start_agents(config.agents)
        try:
            committed = batch.commit(create=True)
        except BaseException:
            await run.close()  # the run does not exist: leave no agent running either
            raise
        if self.publish is not None:
            self.publish(committed)
        return run

    async def run(
        self, config: RunConfig, *, max_ticks: int | None = None, run_id: str | None = None
    ) -> RunResult:
        """Boot and drive a run to its end."""
        run = await self.boot(config, run_id=run_id)
        return await run.until_done(max_ticks)

    def fork(
        self, run_id: str, at: int, *, new_id: str | None = None, by: str | None = None
    ) -> str:
        """Fork ``run_id`` after sequence ``at`` (copy-on-write) and record ``run.forked``
        (with ``by``, who asked for it, when given)."""
        rid = new_id or new_run_id()
        tick = self.ledger.get(run_id, at).tick if at else 0
        # The fork and its run.forked in one transaction: one durable commit, and no fork
        # without the record of where it came from.
        committed = self.ledger.append(
            rid,
            [draft(RunForked(parent=run_id, at=at, by=by), ts=self.clock.now_us(), tick=tick)],
            fork_of=(run_id, at),
        )
        if self.publish is not None:
            self.publish(committed)
        return rid

    async def resume(
        self,
        run_id: str,
        config: RunConfig,
        *,
        reason: str = "resumed",
        counterfactual: Mapping[str, Any] | None = None,
        by: str | None = None,
        lease: Lease | None = None,
    ) -> Run:
        """Continue a run after a crash, a stop or a fork, rebuilding everything from the ledger.

        A tool that started with no recorded result is run again only if it is idempotent;
        otherwise its outcome is recorded as unknown. A tick interrupted while its minds were
        asked stays open and is asked again (same tick number; answered model calls are reused,
        not bought again); calls in it that wait for approval stay parked (the run's first step
        waits for their decisions, then closes the tick); any other interrupted tick is closed
        as invalid. ``counterfactual`` records what the run goes on with that differs from how
        it was booted (another model, prompt, policy).

        Ownership: ``lease`` is one the caller took already (a sweeper); otherwise the run's
        lease is taken here when the kernel has a holder or the run has a lease that is not
        released (:class:`~telic.errors.LeaseHeld` while another process holds it). It is
        taken before anything is read, so what the resume reads is what the last owner left.
        """
        lease = self._own(run_id, lease)
        if lease is None:
            return await self._resume(run_id, config, reason, counterfactual, by, None)
        try:
            return await self._resume(run_id, config, reason, counterfactual, by, lease)
        except BaseException:
            with contextlib.suppress(LedgerError):
                self.ledger.leases.release(lease)
            self.ledger.unfence(run_id)
            raise

    def _own(self, run_id: str, given: Lease | None) -> Lease | None:
        if given is not None:
            if given.run_id != run_id:
                raise ValueError(f"the lease given is run {given.run_id!r}'s, not {run_id!r}'s")
            self.ledger.fence(given)
            return given
        current = self.ledger.leases.get(run_id)
        if self.holder is None and (current is None or current.released):
            return None
        lease = self.ledger.leases.acquire(
            run_id, self.holder or default_holder(), ttl_s=self.lease_ttl_s, node=self.node
        )
        self.ledger.fence(lease)
        return lease

    async def _resume(
        self,
        run_id: str,
        config: RunConfig,
        reason: str,
        counterfactual: Mapping[str, Any] | None,
        by: str | None,
        lease: Lease | None,
    ) -> Run:
        # What resume rebuilds the state from must be intact: the chain from the snapshot it
        # folds on to the head (``telic verify`` checks the whole lineage).
        start = self.ledger.last_snapshot(run_id) + 1
        report = self.ledger.verify(run_id, start=start)
        if not report.ok:
            raise ChainBroken(run_id, report.first_bad or 0, report.reason or "verification failed")
        # The fold the check just made (entry digests included: the first tick's state hash
        # does not hash every entry again), the run's own copy.
        fold = self.ledger.head_fold(run_id)
        s = RunState(fold.peek())
        if s.status == "new":
            raise RunNotResumable(run_id, "it has no run.booted transition")
        if s.status in ("completed", "failed", "stopped"):
            raise RunNotResumable(
                run_id, f"it has ended ({s.status}: {s.reason}); fork it to continue"
            )
        config.validate()
        tree = _recorded_tree(self.ledger, run_id, config, s)
        # What resume acts on, read before the run takes the state over (its batches change it).
        tick, head, tick_open = s.tick, s.seq, s.tick_open
        # A tick stopped while its minds were asked is asked again, with the answers its
        # model calls already got (written ahead: see telic.kernel.calls).
        reask = open_tick(self.ledger, run_id, s) is not None
        progress = s.progress
        parked = approval.unresolved(self.ledger, run_id, s)
        pending = sorted(s.pending_tools.items(), key=lambda kv: kv[1].seq)
        running = [
            (name, a.role, a.temporary, a.parent, a.question, tuple(a.tools))
            for name, a in s.agents_in_order()  # as started, from a snapshot or not
            if a.status == "running"
        ]
        run = Run(
            self.ledger,
            run_id,
            config,
            self.clock,
            self.publish,
            state=fold,
            abandoned=self.abandoned,
            committer=self.committer,
            tree=tree,
        )
        acts = _Acts(tick, head, tick_open, reask, progress, parked, pending, running)
        if lease is None:
            return await self._restart(run, acts, config, reason, counterfactual, by)
        run.hold(lease)
        try:
            return await self._restart(run, acts, config, reason, counterfactual, by)
        except BaseException:
            await run.close()  # ends the lease's renewal (the caller releases the lease)
            raise

    async def _restart(
        self,
        run: Run,
        acts: _Acts,
        config: RunConfig,
        reason: str,
        counterfactual: Mapping[str, Any] | None,
        by: str | None,
    ) -> Run:
        """Record the resume and settle what the stop interrupted (see :meth:`resume`)."""
        tick, head, tick_open, reask, progress, parked, pending, running = acts
        batch = run.batch()
        batch.add(
            RunResumed(
                reason=reason,
                head=head,
                counterfactual=None if counterfactual is None else dict(counterfactual),
                by=by,
            ),
            tick=tick,
        )
        # An approval still awaited when the kernel stopped stays awaited: the run parks again.
        waiting = [p for p in parked if p.decision is None]
        if waiting:
            names = ", ".join(f"{p.tool} for {p.agent}" for p in waiting)
            batch.add(RunPaused(reason=f"still waiting for approval of {names}"), tick=tick)
        await run.supervisor.start()
        specs = {a.name: a for a in config.agents}
        # The tree's agents first (each team with its own, as its parent would restart it),
        # then the explorers, each under its parent's supervisor.
        await run.start_agents([specs[r[0]] for r in running if r[0] in specs])
        for name, role, temporary, parent, question, tools in running:
            if name in specs:
                continue
            if temporary and parent in specs and config.explorer is not None:
                mind = run.make_explorer(question or "", parent)
                if isinstance(mind, Failed):
                    batch.add(
                        AgentTerminated(
                            agent=name,
                            reason=safe_text(f"the explorer factory failed on resume ({mind})"),
                        ),
                        tick=tick,
                        agent=name,
                    )
                    continue
                explorer = AgentSpec(
                    name=name,
                    role=role,
                    mind=mind,
                    tools=tools,
                    restart="temporary",
                    resources=specs[parent].resources,
                )
                await run.start_agent(explorer, under=parent)
            else:
                batch.add(
                    AgentTerminated(agent=name, reason="no spec for it on resume"),
                    tick=tick,
                    agent=name,
                )
        # An interrupted call runs again, in its agent, through the tick's execute stage
        # (retries and supervision included), if it is idempotent and its agent is back;
        # the outcome of any other is unknown.
        calls: list[ToolCall] = []
        unknown: list[tuple[str, PendingTool]] = []
        for call_id, p in pending:
            if not (p.idempotent and p.tool in run.tools and run.supervises(p.agent)):
                unknown.append((call_id, p))
                continue
            attempt = p.attempt + 1
            tool = run.tools.get(p.tool)
            args = dict(p.args)
            again = batch.add(
                ToolStarted(
                    call_id=call_id,
                    agent=p.agent,
                    tool=p.tool,
                    args=args,
                    idempotent=True,
                    attempt=attempt,
                    source=tool.source,
                    version=tool.version,
                ),
                tick=tick,
                agent=p.agent,
                causes=(p.seq,),
            )
            calls.append(ToolCall(p.agent, tool, call_id, args, again, attempt))
        await execute(Tick(run, batch, tick), calls)
        for call_id, p in unknown:
            batch.add(
                ToolUnknownOutcome(call_id=call_id, agent=p.agent, tool=p.tool),
                tick=tick,
                agent=p.agent,
                causes=(p.seq,),
            )
        if tick_open and not parked and not reask:
            batch.add(
                TickCompleted(
                    tick=tick,
                    progress=progress,
                    delta=0.0,
                    valid=False,
                    state_hash=run.fold.hash(),
                ),
                tick=tick,
            )
        await run.commit(batch)
        run.parked = parked
        await run.wrap_up()  # the dead process may not have run the last tick's checks
        return run


class _Acts(NamedTuple):
    """What a resume acts on, read before the run takes the state over (its batches change
    it)."""

    tick: int
    head: int
    tick_open: bool
    reask: bool
    progress: float
    parked: list[approval.Parked]
    pending: list[tuple[str, PendingTool]]
    running: list[tuple[str, str, bool, str | None, str | None, tuple[str, ...]]]


def _recorded_tree(ledger: BaseLedger, run_id: str, config: RunConfig, state: RunState) -> Tree:
    """The supervision tree ``run_id`` was booted with (``run.booted`` records it), which a
    resumed run rebuilds; ``config`` may leave its teams out, not change them."""
    booted = next(iter(ledger.read(run_id, 1, 1)), None)
    recorded: Any = None
    if booted is not None and booted.kind == "run.booted":
        recorded = booted.data.get("supervision")
    if recorded is None:
        if config.teams:
            raise ConfigError(
                f"run {run_id!r} was booted without teams (every agent under the root); "
                "resume it with a configuration without teams"
            )
        return config.tree()
    roster = [a.name for a in state.roster]
    tree = Tree.from_record(SupervisionTree.model_validate(recorded), roster)
    if config.teams and config.tree().record() != tree.record():
        raise ConfigError(
            f"run {run_id!r} was booted with another supervision tree (teams, or the root's "
            "strategy and intensity) than the configuration's; resume it with the tree it was "
            "booted with, or with no teams (the recorded tree is used)"
        )
    return tree


def _refuse_taken(ledger: BaseLedger, run_id: str) -> None:
    try:
        ledger.run(run_id)
    except RunNotFound:
        return
    raise RunExists(run_id)


_ = Budget, Artifact
