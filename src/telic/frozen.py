"""Read-only views of a run's state, for code that is not the kernel's.

Minds read the state of their tick, policy checks and conflict resolvers read the working
state, and none of them may change it: one mind's edit must not show in another mind's view,
nor in the run. :func:`freeze` wraps a JSON value in a view that refuses every change with
:class:`~telic.errors.ReadOnly` (also a ``TypeError``).

:class:`FrozenDict` and :class:`FrozenList` subclass ``dict`` and ``list``, so code that
serialises the state (``orjson.dumps``, ``json.dumps``) or checks ``isinstance(x, dict)`` keeps
working. A view holds a shallow copy of its container; a nested container is wrapped when it is
first read and the wrapper kept, so freezing costs in proportion to what is read, not to the
size of the state. ``dict(view)``, ``list(view)``, ``{**view}``, ``view | other``, slices and
iteration hand out the nested values frozen too; ``.thaw()`` (or :func:`thaw`) makes a private,
changeable deep copy.

What a view guards against is mistakes, not malice: calling ``dict.__setitem__`` on a view
directly changes that view's own shallow copy (still never the kernel's state when the view was
made over a copy, as a mind's is).
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from typing import Any, NoReturn, SupportsIndex, overload

import orjson

from telic.errors import ReadOnly

__all__ = ["FrozenDict", "FrozenList", "freeze", "thaw"]


def freeze(value: Any) -> Any:
    """``value`` as a read-only view if it is a dict or a list; other values as they are."""
    if isinstance(value, (FrozenDict, FrozenList)):
        return value
    if isinstance(value, dict):
        return FrozenDict(value)  # pyright: ignore[reportUnknownArgumentType]
    if isinstance(value, list):
        return FrozenList(value)  # pyright: ignore[reportUnknownArgumentType]
    return value


def thaw(value: Any) -> Any:
    """A plain, changeable deep copy of ``value`` (views included)."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return _thaw(value)


def _thaw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in dict.items(value)}  # pyright: ignore[reportUnknownArgumentType,reportUnknownVariableType,reportUnknownMemberType]
    if isinstance(value, list):
        return [_thaw(v) for v in list.__iter__(value)]  # pyright: ignore[reportUnknownArgumentType,reportUnknownVariableType,reportUnknownMemberType]
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


class FrozenDict(dict[str, Any]):
    """A read-only view of a JSON object (see the module docstring)."""

    __slots__ = ("_kids",)

    def __init__(self, source: Mapping[str, Any] = {}) -> None:  # the default is never changed
        super().__init__(source)
        self._kids: dict[str, Any] | None = None

    def _refuse(self, operation: str) -> NoReturn:
        raise ReadOnly("this dict", operation)

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if not isinstance(value, (dict, list)):
            return value
        kids = self._kids
        if kids is None:
            kids = self._kids = {}
        kid = kids.get(key)
        if kid is None:
            kid = kids[key] = freeze(value)
        return kid

    @overload
    def get(self, key: str, /) -> Any | None: ...
    @overload
    def get(self, key: str, default: Any, /) -> Any: ...
    def get(self, key: str, default: Any = None, /) -> Any:  # pyright: ignore[reportIncompatibleMethodOverride]
        return self[key] if super().__contains__(key) else default

    def __iter__(self) -> Iterator[str]:
        # Defined (not inherited) so that dict(view) and {**view} go through __getitem__.
        return super().__iter__()

    def values(self) -> ValuesView[Any]:  # pyright: ignore[reportIncompatibleMethodOverride]
        return ValuesView(self)

    def items(self) -> ItemsView[str, Any]:  # pyright: ignore[reportIncompatibleMethodOverride]
        return ItemsView(self)

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:  # pyright: ignore[reportIncompatibleMethodOverride]
        out = dict(self.items())
        out.update(other)
        return out

    def __ror__(self, other: Mapping[str, Any]) -> dict[str, Any]:  # pyright: ignore[reportIncompatibleMethodOverride]
        out = dict(other)
        out.update(self.items())
        return out

    def copy(self) -> dict[str, Any]:
        """A plain, changeable deep copy."""
        copied: dict[str, Any] = thaw(self)
        return copied

    thaw = copy

    def __copy__(self) -> dict[str, Any]:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> dict[str, Any]:
        return self.copy()

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (self.copy(),))

    # -- every change is refused ----------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        self._refuse(f"setting {key!r}")

    def __delitem__(self, key: str) -> NoReturn:
        self._refuse(f"deleting {key!r}")

    def __ior__(self, other: Any) -> NoReturn:  # pyright: ignore[reportIncompatibleMethodOverride]
        self._refuse("|=")

    def clear(self) -> NoReturn:
        self._refuse("clear()")

    def pop(self, *args: Any) -> NoReturn:  # pyright: ignore[reportIncompatibleMethodOverride]
        self._refuse("pop()")

    def popitem(self) -> NoReturn:
        self._refuse("popitem()")

    def setdefault(self, *args: Any) -> NoReturn:  # pyright: ignore[reportIncompatibleMethodOverride]
        self._refuse("setdefault()")

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:  # pyright: ignore[reportIncompatibleMethodOverride]
        self._refuse("update()")


class FrozenList(list[Any]):
    """A read-only view of a JSON array (see the module docstring)."""

    __slots__ = ("_kids",)

    def __init__(self, source: Iterable[Any] = ()) -> None:
        super().__init__(source)
        self._kids: dict[int, Any] | None = None

    def _refuse(self, operation: str) -> NoReturn:
        raise ReadOnly("this list", operation)

    def _at(self, index: int) -> Any:
        value = super().__getitem__(index)
        if not isinstance(value, (dict, list)):
            return value
        index %= len(self)
        kids = self._kids
        if kids is None:
            kids = self._kids = {}
        kid = kids.get(index)
        if kid is None:
            kid = kids[index] = freeze(value)
        return kid

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> FrozenList: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            return FrozenList(self._at(i) for i in range(len(self))[index])
        return self._at(index.__index__())

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self._at(i)

    def __reversed__(self) -> Iterator[Any]:
        for i in range(len(self) - 1, -1, -1):
            yield self._at(i)

    def __add__(self, other: Iterable[Any]) -> list[Any]:  # pyright: ignore[reportIncompatibleMethodOverride]
        return [*self, *other]

    def __radd__(self, other: Iterable[Any]) -> list[Any]:
        return [*other, *self]

    def __mul__(self, n: SupportsIndex) -> list[Any]:
        return [*self] * n

    __rmul__ = __mul__

    def copy(self) -> list[Any]:
        """A plain, changeable deep copy."""
        copied: list[Any] = thaw(self)
        return copied

    thaw = copy

    def __copy__(self) -> list[Any]:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> list[Any]:
        return self.copy()

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (self.copy(),))

    # -- every change is refused ----------------------------------------------------------

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        self._refuse("item assignment")

    def __delitem__(self, index: Any) -> NoReturn:
        self._refuse("item deletion")

    def __iadd__(self, other: Any) -> NoReturn:  # pyright: ignore[reportIncompatibleMethodOverride]
        self._refuse("+=")

    def __imul__(self, n: Any) -> NoReturn:  # pyright: ignore[reportIncompatibleMethodOverride]
        self._refuse("*=")

    def append(self, value: Any) -> NoReturn:
        self._refuse("append()")

    def extend(self, values: Any) -> NoReturn:
        self._refuse("extend()")

    def insert(self, index: Any, value: Any) -> NoReturn:
        self._refuse("insert()")

    def pop(self, *args: Any) -> NoReturn:
        self._refuse("pop()")

    def remove(self, value: Any) -> NoReturn:
        self._refuse("remove()")

    def clear(self) -> NoReturn:
        self._refuse("clear()")

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("sort()")

    def reverse(self) -> NoReturn:
        self._refuse("reverse()")
