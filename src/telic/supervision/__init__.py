"""Erlang/OTP supervision for asyncio tasks: one agent is one supervised task.

A :class:`Supervisor` starts its children (:class:`ChildSpec`) in spec order and stops them in
reverse order. When a child exits, its restart type decides whether it comes back:

- ``permanent``: always; ``transient``: only after an abnormal exit (an exception, a kill, a
  cancellation from outside); ``temporary``: never (and its spec is dropped).

and the strategy decides who comes back with it:

- ``one_for_one``: the child alone; ``one_for_all``: every child (the others are stopped in
  reverse order first, then all start in order); ``rest_for_one``: the child and those started
  after it; ``simple_one_for_one``: a dynamic pool, started empty and filled with
  ``start_child``, restarted one for one and stopped all at once.

Restart intensity: more than ``intensity`` restarts within ``period`` seconds (OTP's default
of 1 in 5 s; on the injected clock's ``monotonic()``, else the event loop's time, which a
:class:`~telic.clock.VirtualClock` drives) and the supervisor reports
``SupervisorEscalated``, stops every child and fails with
:class:`~telic.errors.SupervisionError`. Under a parent supervisor (``sup.as_child()``, or the
Supervisor itself in the parent's children), that is an abnormal exit of the child, handled by
the parent's own restart type, strategy and intensity; a root supervisor's owner learns it from
``await sup.wait()`` (or leaving ``async with``).

Stopping a child cancels its task, waits for its ``shutdown`` grace (seconds), then cancels
again until it ends; ``brutal_kill`` skips the grace, ``infinity`` (the default for
supervisors) waits as long as it takes. ``kill(id)`` crashes a running child from outside,
as ``exit(Pid, kill)`` does: it then restarts by the usual rules. With ``auto_shutdown``
(``any_significant`` / ``all_significant``), the end of ``significant`` children that are not
restarted shuts the supervisor down normally (OTP 24's automatic shutdown).

Example::

    async def researcher() -> None: ...

    sup = Supervisor("agents", [ChildSpec("researcher", researcher)], on_event=ledger_append)
    async with sup:             # start in spec order; leaving stops in reverse order and
        ...                     # raises SupervisionError if the supervisor gave up
        sup.kill("researcher", "hallucination")   # it restarts (permanent)

Events. ``on_event`` receives, synchronously and in a deterministic order (given the same
children on a :class:`~telic.clock.VirtualClock`, the same sequence every run):

- ``AgentFailed(agent, error, message)``: the child raised, its ``start`` raised, or it was
  cancelled by something other than its supervisor;
- ``AgentTerminated(agent, reason)``: the child returned (``normal``), was killed (the kill
  reason), or was stopped (``shutdown``, or the reason given to ``stop``);
- ``AgentRestarted(agent, supervisor, attempt, reason)``: the child was started again;
  ``attempt`` counts its restarts;
- ``SupervisorEscalated(supervisor, restarts, period_s, reason)``: the intensity was exceeded.

Exits are reported from the supervisor's task; what the ``*_child`` calls and ``start``/``stop``
cause is reported before they return. Both run under one lock, so they never interleave. A
nested supervisor without an ``on_event`` (or ``clock``) of its own uses its parent's.

If ``on_event`` raises, the event sink is taken to be broken (the kernel's ledger cannot record
supervision any more): the supervisor delivers no further events, stops its children and fails
with that exception, which ``wait()`` raises and a parent sees as an abnormal exit. The ledger
may then miss events, but never silently.

Every child task is owned by its supervisor; after ``stop()`` (or a failure) no child task is
left running. Cancellation is never swallowed: a cancelled supervisor stops its children, then
re-raises. asyncio has no untrappable kill, so a child that swallows every cancellation cannot
be stopped (its supervisor keeps cancelling it every millisecond rather than orphan it).

Modules: ``spec`` (ChildSpec and the records of which_children / count_children),
``supervisor`` (the public face), ``_core`` (exits, restarts, intensity, stopping),
``_exits`` (cancelling with grace, reading how a task ended).
"""

from __future__ import annotations

from telic.supervision._core import EventSink
from telic.supervision.spec import (
    AutoShutdown,
    ChildCount,
    ChildInfo,
    ChildSpec,
    RestartType,
    Shutdown,
    Strategy,
)
from telic.supervision.supervisor import Supervisor

__all__ = [
    "AutoShutdown",
    "ChildCount",
    "ChildInfo",
    "ChildSpec",
    "EventSink",
    "RestartType",
    "Shutdown",
    "Strategy",
    "Supervisor",
]
