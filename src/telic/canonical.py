"""The canonical encoding: what gets hashed, stored and compared.

Canonical JSON here means orjson with sorted keys, no whitespace, UTF-8, and only values
that survive a round trip exactly: ``None``, ``bool``, ``int`` (64-bit), finite ``float``,
``str``, lists/tuples and dicts with string keys. orjson silently writes NaN and infinity
as ``null``; that would not round-trip, so it is refused here.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final

import orjson

from telic.errors import NotCanonical

__all__ = ["ZERO_HASH", "decode", "digest", "encode", "encode_validated", "hex_digest"]

_OPTIONS: Final = orjson.OPT_SORT_KEYS
ZERO_HASH: Final = bytes(32)
"""The previous-hash of a run's first transition."""


def encode(value: Any) -> bytes:
    """Encode ``value`` canonically, or raise :class:`NotCanonical`."""
    try:
        out = orjson.dumps(value, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise NotCanonical(str(exc)) from None
    # NaN and infinities become ``null``; only then is a walk needed to tell them from None.
    if b"null" in out:
        _reject_non_finite(value)
    return out


def encode_validated(value: Any) -> bytes:
    """Encode a value that is already known to be canonical-safe, skipping the NaN walk.

    For the JSON of telic's own pydantic models (``allow_inf_nan=False`` refuses NaN and
    infinities when the model is built); anything else goes through :func:`encode`.
    """
    return orjson.dumps(value, option=_OPTIONS)


def decode(data: bytes | str) -> Any:
    """Decode canonical (or any) JSON."""
    return orjson.loads(data)


_SHA256: Final = hashlib.sha256()
"""An empty SHA-256 that is only ever copied: with OpenSSL 3, ``hashlib.sha256()`` looks the
algorithm up on every call, and a copy skips that (40% of a short hash; every transition is
hashed on write and verify, and the state's entries at every tick)."""


def sha256(data: bytes) -> hashlib._Hash:  # pyright: ignore[reportPrivateUsage]
    """A SHA-256 hash object of ``data`` (what ``hashlib.sha256(data)`` is, cheaper)."""
    h = _SHA256.copy()
    h.update(data)
    return h


def digest(data: bytes) -> bytes:
    """SHA-256 of ``data``."""
    h = _SHA256.copy()
    h.update(data)
    return h.digest()


def hex_digest(data: bytes) -> str:
    h = _SHA256.copy()
    h.update(data)
    return h.hexdigest()


def _reject_non_finite(value: Any) -> None:
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise NotCanonical(f"non-finite number {item!r}")
        elif isinstance(item, dict):
            stack.extend(item.values())  # pyright: ignore[reportUnknownArgumentType,reportUnknownMemberType]
        elif isinstance(item, (list, tuple)):
            stack.extend(item)  # pyright: ignore[reportUnknownArgumentType]
        elif hasattr(item, "model_dump"):
            stack.append(item.model_dump(mode="json"))
