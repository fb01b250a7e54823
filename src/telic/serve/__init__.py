"""``telic serve``: an HTTP API over a ledger, with live event streams, durable approvals and
scoped tokens. Needs the ``telic[serve]`` extra. See docs/server.md."""

from __future__ import annotations

from telic.serve.app import create_app
from telic.serve.context import Settings

__all__ = ["Settings", "create_app"]
