"""A live run: its agent processes under a supervisor, its working state, its commits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from telic.clock import Clock
from telic.errors import (
    ConfigError,
    LeaseLost,
    LedgerError,
    RecordError,
    SequenceError,
    SupervisionError,
)
from telic.frozen import FrozenDict, thaw
from telic.kernel import approval, guard
from telic.kernel.approval import Decision, Parked
from telic.kernel.batch import Batch
from telic.kernel.config import AgentSpec, Artifact, RunConfig, is_own
from telic.kernel.guard import Failed, describe, safe_text
from telic.kernel.intake import encode_value
from telic.kernel.process import AgentProcess
from telic.kernel.stages.check import checks_of
from telic.kernel.tick import run_tick
from telic.kernel.tree import ROOT, Tree
from telic.kinds import (
    AgentFailed,
    AgentRestarted,
    AgentSpawned,
    AgentTerminated,
    ArtifactRecorded,
    BudgetExhausted,
    BudgetWarning,
    LoopDetected,
    ObservationRecorded,
    Payload,
    RunCompleted,
    RunFailed,
    RunStopped,
    StateRestored,
    SupervisorEscalated,
    SupervisorRestarted,
)
from telic.ledger.base import BaseLedger
from telic.ledger.group import GroupCommitter
from telic.ledger.lease import Lease
from telic.minds.base import CallLog, Mind, ToolInfo, View
from telic.reducer import Fold, State, initial_state
from telic.state import RunState
from telic.supervision import ChildSpec, Supervisor
from telic.tools import ToolRegistry
from telic.transition import Transition

__all__ = ["Run", "RunResult"]

_FAILURE_KINDS = frozenset(
    {"agent.failed", "tool.failed", "tool.timeout", "tool.unknown", "hallucination.detected"}
)
_DONE = frozenset({"completed", "failed", "stopped"})


def _artifacts(make: Callable[[RunState], Sequence[Artifact]], state: RunState) -> list[Artifact]:
    made = list(make(state))
    for art in made:
        if not isinstance(art, Artifact):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"it returned {type(art).__name__}, not an Artifact")
    return made


class RunResult:
    """How a run ended (in this process: ``status == "lost"`` when it lost its lease)."""

    def __init__(
        self,
        run_id: str,
        state: State,
        head: int,
        head_hash: str,
        *,
        lost: LeaseLost | None = None,
    ) -> None:
        self.run_id = run_id
        self.state = RunState(state)
        """The run's final state (a copy: the JSON form is :attr:`RunState.json`)."""
        self.status: str = "lost" if lost is not None else self.state.status
        self.reason: str | None = str(lost) if lost is not None else self.state.reason
        self.transitions = head
        self.head_hash = head_hash
        self.lost = lost
        """The lease this process lost (another owns the run now; it wrote nothing since)."""

    def __repr__(self) -> str:
        return f"RunResult(run_id={self.run_id!r}, status={self.status!r}, transitions={self.transitions})"


class Run:
    """A run the kernel is driving. Use :meth:`until_done` (or :meth:`step`) then :meth:`close`."""

    def __init__(
        self,
        ledger: BaseLedger,
        run_id: str,
        config: RunConfig,
        clock: Clock,
        publish: Any,
        *,
        state: State | Fold | None = None,
        abandoned: list[asyncio.Task[Any]] | None = None,
        committer: GroupCommitter | None = None,
        tree: Tree | None = None,
    ) -> None:
        """``state``: the run's head state (or head fold) just read from ``ledger``, which the
        run takes over (the caller keeps no use of it); read from the ledger when not given. ``committer``:
        where the run's commits go to share an fsync with other runs' (see :meth:`commit`).
        ``tree``: the supervision tree (by default the configuration's; a resumed run's is the
        recorded one)."""
        self.ledger = ledger
        self.committer = committer
        self.id = run_id
        self.config = config
        self.clock = clock
        self.tools: ToolRegistry = config.registry()
        self._publish = publish
        if isinstance(state, Fold):
            self.fold = state
        else:
            self.fold = Fold.adopt(ledger.state_at(run_id) if state is None else state)
        self._specs: dict[str, AgentSpec] = {a.name: a for a in config.agents}
        self._order: list[str] = [a.name for a in config.agents]
        self._procs: dict[str, AgentProcess] = {}
        self._sup_events: list[Payload] = []
        self._finishing: set[str] = set()
        self._reacted: set[str] = set()
        self._reaction = asyncio.Event()
        self._escalated: SupervisorEscalated | None = None
        self._tick_failures: set[int] = set()
        self.abandoned: list[asyncio.Task[Any]] = [] if abandoned is None else abandoned
        """Calls of this run's minds, tools and approver that swallowed their cancellation."""
        self.fault: str | None = None
        """A run-level function (progress, return condition, artifacts) failed: the run fails
        with this reason at the end of the tick."""
        self.checks = checks_of(config.policy)
        """The policy's per-proposal checks, named once (see :mod:`telic.kernel.stages.check`)."""
        self.parked: list[Parked] = []
        """Approvals a resumed run still waits for, from the tick the stop interrupted."""
        self.lease: Lease | None = None
        """The run's lease, while this process owns the run through one (:meth:`hold`)."""
        self.lost: LeaseLost | None = None
        """Set once the lease is lost: the run stops and writes nothing more."""
        self._renewer: asyncio.Task[None] | None = None
        self._stepping: asyncio.Task[Any] | None = None
        self._cancelled_for_loss = False
        self.tree: Tree = config.tree() if tree is None else tree
        """Who supervises each agent: the root, or a team (see :mod:`telic.kernel.tree`)."""
        self.supervisor = Supervisor(
            ROOT,
            [],
            strategy=self.tree.strategy,
            intensity=self.tree.intensity,
            period=self.tree.period_s,
            clock=clock,
            on_event=self._on_supervisor_event,
        )
        self._sups: dict[str, Supervisor] = {ROOT: self.supervisor}
        self._home: dict[str, str] = {}
        """The supervisor of each agent started outside the tree (explorers)."""

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The working state, typed and read-only (:mod:`telic.frozen`): the kernel's own,
        never a copy to change."""
        return RunState(FrozenDict(self.fold.peek()))

    @property
    def done(self) -> bool:
        return self.fold.live.status in _DONE

    def batch(self) -> Batch:
        return Batch(self.ledger, self.id, self.fold, self.clock.now_us)

    async def commit(self, batch: Batch) -> list[Transition]:
        """Commit ``batch`` durably: through the kernel's :class:`GroupCommitter
        <telic.ledger.group.GroupCommitter>`, in a commit shared with other runs' (when the
        kernel has one), or on its own."""
        if self.committer is None or not len(batch):
            return self.commit_now(batch)
        if self.lost is not None:
            raise self.lost  # not the owner any more: nothing is even tried
        try:
            committed = await batch.commit_shared(self.committer)
        except LeaseLost as exc:
            self._lose(exc)
            raise
        except BaseException:
            self.fold = Fold.adopt(self.ledger.state_at(self.id))
            raise
        return self._committed(committed)

    def commit_now(self, batch: Batch) -> list[Transition]:
        """Commit ``batch`` durably, on its own, before returning (for what cannot wait for
        a shared commit: a model call's record, written from inside a mind's call)."""
        if self.lost is not None:
            raise self.lost  # not the owner any more: nothing is even tried
        try:
            committed = batch.commit()
        except LeaseLost as exc:
            self._lose(exc)
            raise
        except BaseException:
            self.fold = Fold.adopt(self.ledger.state_at(self.id))
            raise
        return self._committed(committed)

    def _committed(self, committed: list[Transition]) -> list[Transition]:
        for t in committed:
            if t.kind in _FAILURE_KINDS:
                self._tick_failures.add(t.tick)
        if committed and self._publish is not None:
            self._publish(committed)
        return committed

    def lookup(self, seq: int) -> Transition | None:
        """A committed transition of this run, or None if there is none at ``seq``."""
        try:
            return self.ledger.get(self.id, seq)
        except SequenceError:
            return None

    def tick_had_failures(self, tick: int) -> bool:
        return tick in self._tick_failures

    # -- agents --------------------------------------------------------------------------

    def live_agents(self) -> list[str]:
        agents = self.fold.live.agents
        return [
            n
            for n in self._order
            if n in agents
            and agents[n].status == "running"
            and n in self._procs
            and self.supervises(n)  # its stop may not be recorded yet: it was just stopped
        ]

    def role(self, name: str) -> str:
        return self.fold.live.agents[name].role

    def allowed_tools(self, name: str) -> frozenset[str]:
        return frozenset(self.fold.live.agents[name].tools)

    def is_explorer(self, name: str) -> bool:
        agent = self.fold.live.agents.get(name)
        return agent is not None and agent.temporary

    def next_explorer_name(self) -> str:
        used = sum(1 for a in self.fold.live.agents.values() if a.temporary)
        return f"explorer-{used + 1}"

    def process(self, name: str) -> AgentProcess:
        return self._procs[name]

    def view(
        self,
        name: str,
        tick: int,
        state: RunState,
        *,
        calls: CallLog | None = None,
        recorded: Mapping[str, Any] | None = None,
    ) -> View:
        """``name``'s view of ``state`` (what the working state is while the minds think),
        with the tick's call log for it and the answers its calls already got."""
        live = self.fold.live
        a = live.agents[name]
        tools = [self.tools.get(t) for t in a.tools if t in self.tools]
        return View(
            agent=name,
            role=a.role,
            tick=tick,
            goal=live.goal,
            state=state,
            tools=[ToolInfo(t.name, t.description, t.schema, t.high_impact) for t in tools],
            question=a.question,
            recorded=recorded or {},
            calls=calls,
        )

    def home(self, name: str) -> str:
        """The supervisor of agent ``name``: ``root`` or a team (an explorer's is its
        parent's)."""
        return self._home.get(name) or self.tree.home(name)

    def _child(self, spec: AgentSpec) -> ChildSpec:
        """A new process for ``spec``, as a child of its supervisor."""
        policy = self.config.policy
        proc = AgentProcess(
            spec.name,
            spec.mind,
            mind_timeout_s=policy.mind_timeout_s,
            cancel_grace_s=policy.cancel_grace_s,
            max_payload=self.ledger.max_payload,
            abandoned=self.abandoned,
        )
        self._procs[spec.name] = proc
        self._specs[spec.name] = spec
        if spec.name not in self._order:
            self._order.append(spec.name)
        return ChildSpec(id=spec.name, start=proc.body, restart=spec.restart, shutdown=1.0)

    async def start_agent(self, spec: AgentSpec, *, under: str | None = None) -> None:
        """Start one agent under its supervisor (``under``: the agent whose supervisor it
        joins, as an explorer joins its parent's)."""
        if under is not None:
            self._home[spec.name] = self.home(under)
        await self._sups[self.home(spec.name)].start_child(self._child(spec))

    async def start_agents(self, specs: Sequence[AgentSpec]) -> None:
        """Start ``specs`` (agents of the tree) under the running root: its own agents one by
        one, each team with those of its agents (and teams) that are among ``specs``; a team
        its parent restarts comes back with the same."""
        chosen = {s.name: s for s in specs}
        for name in self.tree.children(ROOT):
            if self.tree.is_team(name):
                await self.supervisor.start_child(self._team(name, chosen))
            elif name in chosen:
                await self.supervisor.start_child(self._child(chosen[name]))

    def _team(self, name: str, chosen: Mapping[str, AgentSpec]) -> ChildSpec:
        team = self.tree.team(name)
        assert team is not None
        children: list[ChildSpec] = []
        for c in self.tree.children(name):
            if self.tree.is_team(c):
                children.append(self._team(c, chosen))
            elif c in chosen:
                children.append(self._child(chosen[c]))
        sup = Supervisor(
            name,
            children,
            strategy=team.strategy,
            intensity=team.intensity,
            period=team.period_s,
        )
        self._sups[name] = sup
        return sup.as_child(restart=team.restart)

    def make_explorer(self, question: str, parent: str) -> Mind | Failed:
        """The mind of an explorer of ``question`` for ``parent``, from the run's factory (user
        code: its failure, or something that is not a mind, is returned as :class:`Failed`)."""
        make = self.config.explorer
        if make is None:  # run_tick refuses exploration without a factory
            raise ConfigError(f"{parent!r} cannot explore {question!r}: the run has no explorer")
        mind = guard.attempt(make, question, self._specs[parent])
        if not isinstance(mind, Failed) and not isinstance(mind, Mind):  # pyright: ignore[reportUnnecessaryIsInstance]
            return Failed("TypeError", f"it returned {type(mind).__name__}, not a Mind")
        return mind

    async def spawn_explorer(
        self,
        batch: Batch,
        tick: int,
        name: str,
        question: str,
        parent: str,
        cause: int,
        mind: Mind,
    ) -> None:
        parent_spec = self._specs[parent]
        spec = AgentSpec(
            name=name,
            role="explorer",
            mind=mind,
            tools=parent_spec.tools,
            restart="temporary",
            resources=parent_spec.resources,
        )
        batch.add(
            AgentSpawned(
                agent=name,
                role="explorer",
                supervisor=self.home(parent),
                temporary=True,
                parent=parent,
                question=question,
                tools=spec.tools,
            ),
            tick=tick,
            agent=name,
            causes=(cause,),
        )
        await self.start_agent(spec, under=parent)

    async def finish_agent(
        self, batch: Batch, tick: int, name: str, result: Any, cause: int
    ) -> None:
        if self.is_explorer(name):
            parent = self.fold.live.agents[name].parent
            if parent is not None:
                batch.add(
                    ObservationRecorded(agent=parent, source=f"explorer:{name}", content=result),
                    tick=tick,
                    agent=parent,
                    causes=(cause,),
                )
        batch.add(
            AgentTerminated(agent=name, reason="normal"), tick=tick, agent=name, causes=(cause,)
        )
        if self.supervises(name):
            self._finishing.add(name)  # our own record says why; the supervisor's would repeat it
            await self._sups[self.home(name)].terminate_child(name)
        self._procs.pop(name, None)

    def supervises(self, name: str) -> bool:
        """Whether ``name`` is still a child of its supervisor. Under one_for_all and
        rest_for_one, a crash elsewhere stops temporary siblings for good (OTP does not bring
        them back), possibly after they proposed in the same tick; once the root gave up (its
        intensity exceeded), it supervises no one: every agent is being stopped; and a team
        that gave up supervises no one until its parent restarts it."""
        sup = self._sups.get(self.home(name))
        return self._escalated is None and sup is not None and sup.running and sup.has_child(name)

    def kill(self, name: str, *, reason: str) -> bool:
        """Kill agent ``name`` (its supervisor decides on a restart); False if there was
        nothing to kill. An agent a group restart stopped for good earlier in the tick (a
        sibling's failure under one_for_all, say) is no longer the supervisor's child."""
        return self.supervises(name) and self._sups[self.home(name)].kill(name, reason=reason)

    # -- ownership -----------------------------------------------------------------------

    def hold(self, lease: Lease) -> None:
        """Own the run through ``lease`` (the ledger is fenced with it already): renew it every
        third of its TTL from a task this run owns (:meth:`close` ends it), and stop the run at
        once when it is lost."""
        self.lease = lease
        self._renewer = asyncio.get_running_loop().create_task(
            self._renew(lease), name=f"telic-lease-{self.id}"
        )

    async def _renew(self, lease: Lease) -> None:
        clock = self.clock
        ttl = lease.ttl_us / 1e6
        every = ttl / 3
        deadline = clock.monotonic() + ttl
        while self.lost is None:
            await clock.sleep(every)
            asked = clock.monotonic()
            try:
                lease = self.ledger.leases.renew(lease)
            except LeaseLost as exc:
                self._lose(exc)
                return
            except LedgerError as exc:
                # The store cannot be reached: the lease may expire there, and another host
                # take the run over. Past its TTL (counted from the last renewal asked) this
                # process must assume it has.
                if clock.monotonic() >= deadline:
                    self._lose(
                        LeaseLost(
                            self.id,
                            lease.epoch,
                            None,
                            None,
                            f"it could not be renewed within its {ttl:g} s ({exc})",
                        )
                    )
                    return
                continue
            self.lease = lease
            deadline = asked + ttl

    def _lose(self, exc: LeaseLost) -> None:
        """The lease is gone: stop at once (the step in progress is cancelled; every commit
        from now on raises without writing)."""
        if self.lost is not None:
            return
        self.lost = exc
        task = self._stepping
        if task is not None and task is not asyncio.current_task() and not task.done():
            self._cancelled_for_loss = True
            task.cancel(msg="the run's lease was lost")

    async def _release(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        lease, self.lease = self.lease, None
        if lease is None:
            return
        if self.lost is None:
            # A graceful end: the run is unowned again (a sweeper may take it over if it
            # has not ended). If the store is unreachable, the lease expires by itself.
            with contextlib.suppress(LedgerError):
                self.ledger.leases.release(lease)
            self.ledger.unfence(self.id)
        # A lost lease keeps its stale fence: anything this instance still tried is refused.

    # -- supervision ---------------------------------------------------------------------

    def _on_supervisor_event(self, payload: Payload) -> None:
        agent: str | None = getattr(payload, "agent", None)
        if isinstance(payload, AgentTerminated) and agent in self._finishing:
            self._finishing.discard(agent)
            return
        if agent is not None and self.tree.is_team(agent):
            self._on_team_event(agent, payload)
            return
        if isinstance(payload, SupervisorEscalated) and payload.supervisor == ROOT:
            self._escalated = payload
            for proc in self._procs.values():  # nothing will serve their requests now
                proc.fail_pending(f"the supervisor gave up: {payload.reason}")
        self._sup_events.append(payload)
        if agent is not None and isinstance(payload, (AgentRestarted, AgentTerminated)):
            # A killed agent that will be restarted has not been reacted to until it is: the
            # restart (under one_for_all and rest_for_one, of its siblings too) is still going.
            spec = self._specs.get(agent)
            if not (
                isinstance(payload, AgentTerminated)
                and payload.reason == "killed"
                and spec is not None
                and spec.restart != "temporary"
            ):
                self._reacted.add(agent)
        self._reaction.set()

    def _on_team_event(self, team: str, payload: Payload) -> None:
        """A team's supervisor as a child of its parent. Its exit is on record already (its
        ``supervisor.escalated``, its agents' terminations); its restart is recorded as
        ``supervisor.restarted`` and an ``agent.restarted`` for each agent it brought back."""
        if isinstance(payload, AgentRestarted):
            self._sup_events.append(
                SupervisorRestarted(
                    supervisor=team,
                    parent=payload.supervisor,
                    attempt=payload.attempt,
                    reason=payload.reason,
                )
            )
            for name in self._workers(team):
                self._sup_events.append(
                    AgentRestarted(
                        agent=name,
                        supervisor=self.home(name),
                        attempt=payload.attempt,
                        reason=f"its team {team!r} was restarted by {payload.supervisor!r}",
                    )
                )
                self._reacted.add(name)
        elif isinstance(payload, (AgentFailed, AgentTerminated)):
            # A temporary team its parent stopped (it gave up, or a sibling's crash stopped
            # it under one_for_all or rest_for_one) is not restarted: its agents are gone.
            record = self.tree.team(team)
            if record is not None and record.restart == "temporary":
                for name in self.tree.agents_under(team):
                    self._reacted.add(name)
                    proc = self._procs.get(name)
                    if proc is not None:
                        proc.fail_pending(f"its team {team!r} gave up and is not restarted")
        self._reaction.set()

    def _workers(self, team: str) -> list[str]:
        """The agents ``team`` (and the teams under it) runs now that the kernel drives, in
        start order (an agent that finished is not one)."""
        out: list[str] = []
        for c in self._sups[team].which_children():
            if c.kind == "supervisor":
                out += self._workers(c.id)
            elif c.running and c.id in self._procs:
                out.append(c.id)
        return out

    async def _await_reaction(self, name: str) -> None:
        """Wait until the supervisor has restarted (or given up on) a crashed agent."""
        while name not in self._reacted and self._escalated is None:
            self._reaction.clear()
            try:
                await asyncio.wait_for(self._reaction.wait(), 5.0)
            except TimeoutError:
                return
        self._reacted.discard(name)

    async def settle(self, batch: Batch, tick: int, crashed: list[str]) -> None:
        """Record the supervisor's reactions to this step's crashes.

        The kernel waits until each crashed agent was restarted (or not), then records the
        reports grouped by agent in agent order, so that timing does not change the ledger.
        """
        for name in crashed:
            await self._await_reaction(name)
        self.flush_supervisor(batch, tick)

    def flush_supervisor(self, batch: Batch, tick: int, *, by_agent: bool = True) -> None:
        """Record the supervisor's reports: grouped by agent in agent order (exits arrive in
        the order tasks ended, which timing decides), or as reported (``by_agent=False``,
        for what the supervisor does in an order of its own, such as stopping)."""
        if not self._sup_events:
            return
        events, self._sup_events = self._sup_events, []
        if by_agent:  # a team's own reports stand where its first agent does
            rank = {n: i for i, n in enumerate(self._order)}
            events.sort(
                key=lambda e: self.tree.rank(
                    getattr(e, "agent", None) or getattr(e, "supervisor", ""), rank
                )
            )
        for e in events:
            batch.add(e, tick=tick, agent=getattr(e, "agent", None))

    async def kill_and_restore(self, batch: Batch, tick: int, agents: list[str]) -> None:
        """Kill hallucinating agents (their supervisor restarts them) and restore the run to
        its last valid tick: beliefs, plan and memory go back; spending does not."""
        # "killed" is the reason the reducer folds into the status "killed": a killed agent
        # that is not restarted has not finished.
        killed = [name for name in agents if self.kill(name, reason="killed")]
        await self.settle(batch, tick, killed)
        valid = self.fold.live.valid
        target = valid.seq
        past = self.ledger.state_at(self.id, target) if target else initial_state()
        batch.add(
            StateRestored(
                target=target,
                tick=valid.tick,
                reason=f"hallucination by {', '.join(agents)}",
                memory=past["memory"],
                beliefs=past["beliefs"],
                plan=past["plan"],
                progress=past["progress"],
            ),
            tick=tick,
        )

    # -- approvals -----------------------------------------------------------------------

    async def decide_approval(self, proposal: int, agent: str, tool: str, args: Any) -> Decision:
        """The decision on a parked high-impact call: the in-process approver's, if the run
        has one; otherwise whoever records one in the ledger (see :mod:`telic.kernel.approval`)."""
        if self.config.approver is None:
            return await approval.wait(self, proposal)
        ok, by, why = await self.ask_approval(agent, tool, args)
        return Decision(ok, by, why, recorded=False)

    def published(self, transitions: list[Transition]) -> None:
        """Hand transitions others committed (and this run folded) to the publish hook."""
        if transitions and self._publish is not None:
            self._publish(transitions)

    async def ask_approval(self, agent: str, tool: str, args: Any) -> tuple[bool, str, str]:
        approver = self.config.approver
        if approver is None:
            return False, "kernel", "no approver is configured; no answer means deny"
        policy = self.config.policy
        # The approver is user code: it gets its own copy of the arguments, runs under the
        # approval deadline, and whatever it raises is a denial.
        called = await guard.call(
            approver,
            agent,
            tool,
            thaw(args),
            limit=policy.approval_timeout_s,
            grace=policy.cancel_grace_s,
            abandoned=self.abandoned,
            name=f"telic-approver-{agent}",
        )
        if called.status == "timeout":
            return (
                False,
                "kernel",
                f"no answer within {policy.approval_timeout_s:g} s; no answer means deny",
            )
        if called.status == "raised":
            error, message = called.describe()
            return False, "kernel", f"the approver failed ({error}: {message}); deny"
        answer = called.value
        if answer is None:
            return False, "approver", "no answer means deny"
        return (True, "approver", "") if answer is True else (False, "approver", "denied")

    # -- the loop ------------------------------------------------------------------------

    async def step(self) -> bool:
        """Run one tick and its end-of-tick checks; False once the run has ended, or once it
        lost its lease (:attr:`lost`: another process owns it now)."""
        if self.lost is not None:
            return False
        task = asyncio.current_task()
        self._stepping = task
        try:
            return await self._step()
        except LeaseLost as exc:
            self._lose(exc)
            return False
        except asyncio.CancelledError:
            if self._cancelled_for_loss and task is not None:
                self._cancelled_for_loss = False
                if task.uncancel() == 0:
                    return False  # only the lease's loss cancelled the step
            raise
        finally:
            self._stepping = None

    async def _step(self) -> bool:
        if self.done:
            return False
        if self.parked:
            parked, self.parked = self.parked, []
            await approval.finish_parked(self, parked)
            if self.done:
                return False
        try:
            await run_tick(self)
        except SupervisionError as exc:
            self._escalated = self._escalated or SupervisorEscalated(
                supervisor="root", restarts=0, period_s=0, reason=str(exc)
            )
        except RecordError as exc:
            # The net under intake: something the tick meant to record cannot be. Nothing of
            # the tick's uncommitted batch is kept; the run fails, saying why.
            self.fold = Fold.adopt(self.ledger.state_at(self.id))
            self.fault = self.fault or f"the kernel could not record a transition: {exc}"
        batch = self.batch()
        tick = self.fold.live.tick
        if self._escalated is not None:
            self.flush_supervisor(batch, tick)
            batch.add(RunFailed(reason=f"supervisor gave up: {self._escalated.reason}"), tick=tick)
            await self.commit(batch)
            return False
        if self.fault is None:
            self._end_of_tick(batch, tick)
        if self.fault is not None:
            batch.add(RunFailed(reason=safe_text(self.fault)), tick=tick)
        if self.done:
            await self._shutdown(batch, tick)
        await self.commit(batch)
        return not self.done

    def _end_of_tick(self, batch: Batch, tick: int) -> None:
        s = self.fold.live
        # The run's own functions are user code: they read the state read-only, and one that
        # fails (or an artifact that cannot be recorded) fails the run, saying why. They run
        # before anything is added, so that a failure leaves nothing half recorded.
        artifacts = self._artifacts_if_done(s)
        if artifacts is None:
            return
        warn_at = self.config.policy.warn_at
        exhausted: str | None = None
        spent_of = s.spent.json
        for dim, limit in s.budget.items():
            spent = float(spent_of.get(dim, 0.0))
            if limit > 0 and spent / limit >= warn_at and dim not in s.warned:
                batch.add(BudgetWarning(dimension=dim, spent=spent, limit=limit), tick=tick)
            if spent >= limit and dim not in s.exhausted:
                batch.add(BudgetExhausted(dimension=dim, spent=spent, limit=limit), tick=tick)
                exhausted = exhausted or dim
        if not isinstance(artifacts, bool):
            for art in artifacts:
                batch.add(art, tick=tick)
            batch.add(
                RunCompleted(reason="return condition met", artifacts=tuple(s.artifacts)),
                tick=tick,
            )
            return
        if exhausted is not None:
            batch.add(RunStopped(reason=f"budget exhausted: {exhausted}"), tick=tick)
            return
        stall = self.config.policy.stall_ticks
        if stall and tick - s.progress_tick >= stall:
            batch.add(
                LoopDetected(agent=None, pattern="stall", count=tick - s.progress_tick),
                tick=tick,
            )
            batch.add(RunStopped(reason=f"no progress for {stall} ticks"), tick=tick)
            return
        if not self.live_agents():
            batch.add(RunFailed(reason="no live agents are left"), tick=tick)

    def _artifacts_if_done(self, state: RunState) -> list[ArtifactRecorded] | bool | None:
        """The artifacts to record if the return condition holds, False if it does not, None
        (with :attr:`fault` set) if the condition, the artifacts function or an artifact
        failed. ``state`` is the live state: each function gets a read-only view of it, unless
        it is one of telic's own (:func:`~telic.kernel.config.is_own`)."""
        condition, artifacts = self.config.return_condition, self.config.artifacts
        met = guard.attempt(condition, state if is_own(condition) else self.state)
        if isinstance(met, Failed):
            self.fault = f"the return condition failed ({met})"
            return None
        if not met:
            return False
        made = guard.attempt(_artifacts, artifacts, state if is_own(artifacts) else self.state)
        if isinstance(made, Failed):
            self.fault = f"the artifacts function failed ({made})"
            return None
        records: list[ArtifactRecorded] = []
        for art in made:
            try:
                record = ArtifactRecorded(
                    name=art.name, media_type=art.media_type, content=art.content
                )
                encode_value(
                    record.model_dump(mode="json"),
                    what=record.kind,
                    max_bytes=self.ledger.max_payload,
                )
            except (ValidationError, RecordError) as exc:
                self.fault = f"artifact {safe_text(repr(art.name), 200)} cannot be recorded ({describe(exc)[1]})"
                return None
            records.append(record)
        return records

    async def _shutdown(self, batch: Batch, tick: int) -> None:
        """Stop every agent (reverse start order); the supervisor reports each termination."""
        await self.supervisor.stop("shutdown")
        self._procs.clear()
        self.flush_supervisor(batch, tick, by_agent=False)

    async def until_done(self, max_ticks: int | None = None) -> RunResult:
        """Tick until the run ends (or ``max_ticks`` more ticks), then stop its processes."""
        try:
            n = 0
            while (max_ticks is None or n < max_ticks) and await self.step():
                n += 1
        finally:
            await self.close()
        return self.result()

    async def wrap_up(self) -> bool:
        """The end-of-tick checks (budgets, the return condition, stall, live agents) on the
        state as it is, ending the run if one says so; False once the run has ended.

        :meth:`step` runs them after every tick; :meth:`Kernel.resume` runs them again,
        because a process that died between a tick's close and these checks never ran them
        (without this, a resumed run whose budget was spent would start one more tick).
        """
        if self.done:
            return False
        batch = self.batch()
        tick = self.fold.live.tick
        self._end_of_tick(batch, tick)
        if self.done:
            await self._shutdown(batch, tick)
        await self.commit(batch)
        return not self.done

    def result(self) -> RunResult:
        info = self.ledger.run(self.id)
        return RunResult(
            self.id, self.fold.state(), info.head, info.head_hash.hex(), lost=self.lost
        )

    async def close(self) -> None:
        """Stop every agent process (no orphan tasks), then end the lease's renewal and
        release the lease (unless it was lost)."""
        try:
            await self.supervisor.stop()
            self._procs.clear()
        finally:
            await self._release()
