"""The ledger: append-only, hash-chained, durable. One protocol, three backends.

``open_ledger(url)`` picks the backend from the URL:

- ``memory://``: in memory (tests);
- ``sqlite:///abs/path.db``, ``sqlite://rel/path.db`` or a plain path: SQLite (the default);
  ``?synchronous=normal`` trades power-loss durability for speed;
- ``postgresql://user@host:port/db`` (or ``postgres://``): PostgreSQL (needs ``telic[postgres]``).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from telic.errors import LedgerOptionInvalid, UnknownScheme
from telic.ledger.base import (
    DEFAULT_BLOB_THRESHOLD,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_SNAPSHOT_EVERY,
    AppendGroup,
    BaseLedger,
    Ledger,
    ReplayReport,
    Row,
    RunInfo,
    Snapshot,
    VerifyReport,
)
from telic.ledger.group import GroupCommitter
from telic.ledger.lease import Lease, Leases, default_holder
from telic.ledger.memory import MemoryLedger
from telic.ledger.sqlite import SQLiteLedger

__all__ = [
    "DEFAULT_BLOB_THRESHOLD",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_SNAPSHOT_EVERY",
    "AppendGroup",
    "BaseLedger",
    "GroupCommitter",
    "Lease",
    "Leases",
    "Ledger",
    "MemoryLedger",
    "ReplayReport",
    "Row",
    "RunInfo",
    "SQLiteLedger",
    "Snapshot",
    "VerifyReport",
    "default_holder",
    "open_ledger",
]

_INT_OPTIONS = (
    "snapshot_every",
    "snapshot_bytes",
    "snapshot_percent",
    "max_payload",
    "blob_threshold",
)


def open_ledger(url: str | os.PathLike[str], **options: Any) -> BaseLedger:
    """Open (creating if needed) the ledger at ``url``; see the module docstring."""
    text = os.fspath(url)
    if "://" not in text:
        return SQLiteLedger(text, **options)
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    query: dict[str, str] = {}
    if "?" in rest:
        rest, _, q = rest.partition("?")
        query = dict(parse_qsl(q))
    for key in _INT_OPTIONS:
        if key in query:
            raw = query.pop(key)
            if not raw.isdigit():
                raise LedgerOptionInvalid(key, raw, "a positive integer")
            options.setdefault(key, int(raw))
    if scheme == "memory":
        return MemoryLedger(text, **options)
    if scheme == "sqlite":
        if "synchronous" in query:
            options.setdefault("synchronous", query.pop("synchronous").lower())
        return SQLiteLedger(rest, **options)
    if scheme in ("postgresql", "postgres"):
        from telic.ledger.postgres import PostgresLedger  # an optional extra: import on use

        if "schema" in query:
            options.setdefault("schema", query.pop("schema"))
        if "connections" in query:
            raw = query.pop("connections")
            if not raw.isdigit():
                raise LedgerOptionInvalid("connections", raw, "a positive integer")
            options.setdefault("connections", int(raw))
        dsn = urlsplit(text.partition("?")[0])._replace(scheme="postgresql").geturl()
        if query:
            dsn += "?" + urlencode(query)
        return PostgresLedger(dsn, **options)
    raise UnknownScheme(text)
