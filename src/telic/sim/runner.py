"""Running one scenario: process lifetimes on the virtual clock, crashes, resumes.

A seed runs as a sequence of simulated processes. The first boots the run; when one dies (an
injected crash, or a storage failure the kernel reports as a ledger error) the next reopens
the ledger and resumes the run, until a process ends with the run over, or hangs, or lets an
unexpected error escape. What happened is an :class:`Outcome`, which the invariants judge.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from telic.errors import LedgerError, RunNotFound, SimulatedCrash
from telic.events import EventKernel
from telic.kernel import Kernel
from telic.ledger.base import BaseLedger
from telic.sim.loop import Drive, Hang, SimClock, drive
from telic.sim.scenario import CrashFault, Scenario, StorageFault
from telic.sim.storage import Machine
from telic.sim.world import World
from telic.state import RunState

__all__ = ["Escape", "Outcome", "run_scenario", "time_bound"]

SUBSCRIBER_TIMEOUT_S = 1.0
_ENDED = ("completed", "failed", "stopped")


@dataclass(frozen=True, slots=True)
class Escape:
    """An exception that left the kernel in one process lifetime."""

    lifetime: int
    type: str
    message: str
    traceback: str
    expected: bool
    """True for the injected process deaths and the typed ledger errors a storage fault
    causes; False for anything else (a crash of the kernel)."""
    storage: bool = False
    """The ledger error of a storage fault (its message must say what the disk said)."""


@dataclass
class Outcome:
    """Everything one run of a scenario left behind, for the invariant checks."""

    scenario: Scenario
    run_id: str
    world: World
    machine: Machine
    hang: Hang | None = None
    hang_where: str = ""
    escapes: list[Escape] = field(default_factory=list[Escape])
    refused: str | None = None
    """Why a restarted process could not resume the run, if it could not."""
    elapsed_s: float = 0.0
    """Virtual seconds from the first boot to the last process's end."""
    bound_s: float = 0.0
    final_hash: str | None = None
    """The kernel's own working-state hash when its last process ended the run."""
    real_s: float = 0.0
    tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        """Remove the seed's files (an SQLite seed's ledger)."""
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


def time_bound(scenario: Scenario) -> float:
    """Virtual seconds within which the seed's run must be over, faults included.

    Per tick: every mind's timeout, every tool's timeouts and back-off for every agent, an
    approval timeout per agent, the supervisor's waits; per process lifetime one more tick.
    Generous on purpose: it tells a run that ends from one that does not.
    """
    s = scenario.swarm
    n = len(s.agents) + 4  # explorers
    tools = sum((t.timeout_s * 3 + 0.5) * t.attempts for t in s.tools)
    per_tick = s.policy.mind_timeout_s + n * (tools + s.policy.approval_timeout_s + 12.0) + 30.0
    lives = 1 + sum(isinstance(f, CrashFault | StorageFault) for f in scenario.faults)
    return (s.budget.ticks + 2 * lives) * per_tick


def run_scenario(scenario: Scenario, *, real_timeout_s: float = 30.0) -> Outcome:
    """Run ``scenario`` once, in fresh storage; the ledger is checked by the caller through
    :attr:`Outcome.machine` (call :meth:`Outcome.close` afterwards)."""
    swarm = scenario.swarm
    storage = [f for f in scenario.faults if isinstance(f, StorageFault)]
    crashes = [f for f in scenario.faults if isinstance(f, CrashFault)]
    backend = "sqlite" if storage else swarm.backend
    tmp = tempfile.TemporaryDirectory(prefix="telic-sim-") if backend == "sqlite" else None
    run_id = f"sim-{scenario.seed}"
    machine = Machine(
        run_id,
        backend=backend,
        directory=None if tmp is None else Path(tmp.name),
        snapshot_every=swarm.snapshot_every,
        crashes=crashes,
        storage=storage,
    )
    world = World(scenario, machine)
    clock = SimClock()
    outcome = Outcome(scenario, run_id, world, machine, bound_s=time_bound(scenario), tmp=tmp)
    start = clock.monotonic()
    real_start = time.monotonic()
    for life in range(1, len(crashes) + len(storage) + 3):
        ledger = machine.open()
        result = drive(
            clock,
            _lifetime(ledger, clock, world, outcome),
            virtual_deadline=start + outcome.bound_s,
            real_timeout_s=real_timeout_s,
        )
        _close(ledger)
        if result.hang is not None:
            outcome.hang = result.hang
            outcome.hang_where = result.where
            break
        if result.error is None:
            break
        escape = _escape(life, result, machine)
        outcome.escapes.append(escape)
        if not escape.expected:
            break
    outcome.elapsed_s = clock.monotonic() - start
    outcome.real_s = time.monotonic() - real_start
    return outcome


async def _lifetime(ledger: BaseLedger, clock: SimClock, world: World, outcome: Outcome) -> None:
    events = EventKernel(ledger, clock=clock)
    kernel = Kernel(ledger, clock=clock, publish=events.publish)
    config = world.config()
    try:
        try:
            status = RunState(ledger.state_at(outcome.run_id)).status
        except RunNotFound:
            status = None
        if status in _ENDED:
            return
        if status is None:
            run = await kernel.boot(config, run_id=outcome.run_id)
        else:
            try:
                run = await kernel.resume(outcome.run_id, config, reason="simulated crash")
            except LedgerError:
                raise
            except Exception as exc:
                outcome.refused = f"{type(exc).__name__}: {_text(exc)}"
                return
        for effect in world.subscriber_faults:
            handler = world.subscriber(effect)
            events.on("*", handler, run=outcome.run_id, timeout=SUBSCRIBER_TIMEOUT_S)
        await run.until_done()
        outcome.final_hash = run.fold.hash()
    finally:
        if not world.machine.down:
            await events.aclose()


def _escape(life: int, result: Drive, machine: Machine) -> Escape:
    exc = result.error
    assert exc is not None
    storage = not machine.down and isinstance(exc, LedgerError) and life in machine.storage_failed
    expected = machine.down or storage or isinstance(exc, SimulatedCrash)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Escape(life, type(exc).__name__, _text(exc), tb, expected, storage)


def _text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "<the error's str() raised>"
    return text if len(text) <= 300 else text[:300] + f"... ({len(text)} chars)"


def _close(ledger: BaseLedger) -> None:
    with contextlib.suppress(Exception):  # a ledger broken by a fault closes as it can
        ledger.close()
