"""What changed between two states: the paths whose values differ (``telic diff``, the API)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["changes"]


def changes(a: Any, b: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(path, before, after)`` for every leaf that differs, dotted paths in key order."""
    if isinstance(a, dict) and isinstance(b, dict):
        da: dict[str, Any] = a  # pyright: ignore[reportUnknownVariableType]
        db_: dict[str, Any] = b  # pyright: ignore[reportUnknownVariableType]
        for k in sorted(set(da) | set(db_)):
            yield from changes(da.get(k), db_.get(k), f"{path}.{k}" if path else k)
    elif a != b:
        yield path, a, b
