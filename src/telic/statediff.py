"""What changed between two states: the one diff of telic (``telic diff``, ``telic compare``,
the API's ``GET /runs/{id}/diff`` and ``GET /compare``, and so the dashboard)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

__all__ = ["Change", "state_diff"]


class Change(BaseModel):
    """One path whose value differs between two states."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str
    """Dotted path into the state, e.g. ``plan.hotel.value``."""
    before: Any = None
    """The value in the first state (None when absent)."""
    after: Any = None
    """The value in the second state (None when absent)."""


_ABSENT: Final = object()


def state_diff(a: Any, b: Any, path: str = "") -> Iterator[Change]:
    """The paths where two JSON values differ, depth first in sorted key order; lists and
    scalars are compared whole, and a key present on one side only is a change (its missing
    side reported as None), even when the other side holds None."""
    if isinstance(a, dict) and isinstance(b, dict):
        da: dict[str, Any] = a  # pyright: ignore[reportUnknownVariableType]
        db: dict[str, Any] = b  # pyright: ignore[reportUnknownVariableType]
        for key in sorted(set(da) | set(db)):
            sub = f"{path}.{key}" if path else key
            x, y = da.get(key, _ABSENT), db.get(key, _ABSENT)
            if x is _ABSENT or y is _ABSENT:
                yield Change(
                    path=sub, before=None if x is _ABSENT else x, after=None if y is _ABSENT else y
                )
            else:
                yield from state_diff(x, y, sub)
    elif a != b:
        yield Change(path=path, before=a, after=b)
