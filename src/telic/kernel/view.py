"""The state a tick's minds read."""

from __future__ import annotations

from typing import Any

from telic.errors import ViewExpired
from telic.frozen import FrozenDict
from telic.reducer import Fold
from telic.state import RunState

__all__ = ["TickState"]


class TickState(RunState):
    """The state a tick's minds read, typed (:class:`~telic.state.RunState`): one copy of the
    working state, made when a mind first reads it, shared by that tick's minds as a
    read-only view (:mod:`telic.frozen`): a mind that tries to change it gets
    :class:`~telic.errors.ReadOnly`, recorded as its failure, and the others see the state
    unchanged.

    A mind that reads nothing but the tick (or answers from a script) costs no copy. The
    working state does not change while the minds are asked; once they have answered, the
    kernel closes it (:meth:`close`), and a view first read after that raises
    :class:`~telic.errors.ViewExpired` instead of showing a later state.
    """

    __slots__ = ("_fold", "tick_of")

    def __init__(self, fold: Fold, tick: int) -> None:  # the JSON form is made when first read
        self._fold: Fold | None = fold
        self.tick_of = tick
        self._kids = None

    def __getattr__(self, name: str) -> Any:
        # Only reached while the copy is not made: the `_json` slot is still empty.
        if name != "_json":
            raise AttributeError(name)
        fold: Fold | None = self._fold
        if fold is None:
            raise ViewExpired(self.tick_of)
        copy = self._json = FrozenDict(fold.state())
        return copy

    def close(self) -> None:
        """The minds have answered: the working state moves on from here."""
        self._fold = None
