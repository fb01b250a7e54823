"""The state a tick's minds read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from telic.errors import ViewExpired
from telic.frozen import FrozenDict
from telic.reducer import Fold

__all__ = ["TickState"]


class TickState(Mapping[str, Any]):
    """The state a tick's minds read: one copy of the working state, made when a mind first
    reads it, shared by that tick's minds as a read-only view (:mod:`telic.frozen`): a mind
    that tries to change it gets :class:`~telic.errors.ReadOnly`, recorded as its failure,
    and the others see the state unchanged.

    A mind that reads nothing but the tick (or answers from a script) costs no copy. The
    working state does not change while the minds are asked; once they have answered, the
    kernel closes it (:meth:`close`), and a view first read after that raises
    :class:`~telic.errors.ViewExpired` instead of showing a later state.
    """

    __slots__ = ("_copy", "_fold", "tick")

    def __init__(self, fold: Fold, tick: int) -> None:
        self._fold: Fold | None = fold
        self._copy: FrozenDict | None = None
        self.tick = tick

    def _state(self) -> FrozenDict:
        copy = self._copy
        if copy is None:
            if self._fold is None:
                raise ViewExpired(self.tick)
            copy = self._copy = FrozenDict(self._fold.state())
        return copy

    def close(self) -> None:
        """The minds have answered: the working state moves on from here."""
        self._fold = None

    def __getitem__(self, key: str) -> Any:
        return self._state()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._state())

    def __len__(self) -> int:
        return len(self._state())
