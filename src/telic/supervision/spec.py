"""What a supervisor is told about its children, and what it tells back.

:class:`ChildSpec` describes one child (OTP's child specification); :class:`ChildInfo` and
:class:`ChildCount` are the answers of ``which_children`` and ``count_children``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

__all__ = [
    "AutoShutdown",
    "ChildCount",
    "ChildInfo",
    "ChildSpec",
    "RestartType",
    "Shutdown",
    "Strategy",
]

RestartType = Literal["permanent", "transient", "temporary"]
"""permanent: always restarted; transient: restarted only after an abnormal exit (an exception
or a kill); temporary: never restarted."""

Shutdown = float | Literal["brutal_kill", "infinity"]
"""Seconds of grace between the first cancellation and the forced one; ``"brutal_kill"``
forces at once; ``"infinity"`` waits as long as the child takes (the default for supervisors)."""

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one"]
"""Which children a supervisor restarts when one of them exits and must be restarted."""

AutoShutdown = Literal["never", "any_significant", "all_significant"]
"""Whether the exit of significant children (not restarted) shuts the supervisor down."""

_RESTART_TYPES = ("permanent", "transient", "temporary")


class _ChildSpecFields(NamedTuple):
    id: str
    """Unique among the supervisor's children; also the agent name in events."""
    start: Callable[[], Coroutine[Any, Any, None]]
    """Returns the child's body; the supervisor runs it as one asyncio task. If ``start``
    itself raises, the child could not be started (at ``Supervisor.start`` that fails the
    start; at a restart it counts as one more failure)."""
    restart: RestartType = "permanent"
    """When the child is restarted after it exits."""
    shutdown: Shutdown = 5.0
    """How long a stopping child may take after its first cancellation."""
    significant: bool = False
    """With the supervisor's ``auto_shutdown``, the exit of this child (transient or
    temporary only) can shut the supervisor down."""


class ChildSpec(_ChildSpecFields):
    """One child of a supervisor: how to start it, when to restart it, how to stop it.

    An immutable record (a named tuple: a pool may be handed 100,000 of them, and a tuple is
    the cheapest immutable record Python has). A supervisor becomes a child of another
    through ``Supervisor.as_child()``.
    """

    __slots__ = ()

    def __new__(
        cls,
        id: str,
        start: Callable[[], Coroutine[Any, Any, None]],
        restart: RestartType = "permanent",
        shutdown: Shutdown = 5.0,
        significant: bool = False,
    ) -> ChildSpec:
        if restart not in _RESTART_TYPES:
            raise ValueError(
                f"child {id!r}: restart must be one of {', '.join(_RESTART_TYPES)}, not {restart!r}"
            )
        if isinstance(shutdown, str):
            if shutdown not in ("brutal_kill", "infinity"):
                raise ValueError(
                    f"child {id!r}: shutdown must be seconds, 'brutal_kill' or "
                    f"'infinity', not {shutdown!r}"
                )
        elif not shutdown >= 0:  # also refuses NaN
            raise ValueError(f"child {id!r}: shutdown must be >= 0 seconds, not {shutdown!r}")
        if significant and restart == "permanent":
            raise ValueError(
                f"child {id!r}: a permanent child cannot be significant (it never ends "
                "for good); make it transient or temporary"
            )
        # tuple.__new__ directly: the validated fields, without NamedTuple's slower __new__
        return tuple[Any, ...].__new__(cls, (id, start, restart, shutdown, significant))


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One line of ``Supervisor.which_children()``."""

    id: str
    running: bool
    """Whether the child's task is alive now."""
    restarts: int
    """How many times this supervisor has restarted it."""
    restart: RestartType
    kind: Literal["worker", "supervisor"]


@dataclass(frozen=True, slots=True)
class ChildCount:
    """The answer of ``Supervisor.count_children()`` (OTP's specs/active/supervisors/workers)."""

    specs: int
    """Children the supervisor knows, running or not."""
    active: int
    """Children whose task is alive."""
    supervisors: int
    workers: int
