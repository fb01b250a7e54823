"""Access tokens: scoped, stored hashed, in the ledger's system run ``telic-access``.

A token is ``telic_`` and 43 random URL-safe characters, shown once when it is created. The
ledger keeps only its SHA-256 (a random 256-bit secret needs no slow hash) in a
``token.created`` transition with its name (the identity it authenticates as) and scopes;
``token.revoked`` ends it. Several processes may share one ledger: :class:`TokenStore` folds
what it has not seen on each lookup, so a revocation from the CLI holds for a running server
at once. The server records every mutating request it serves in the same run
(``api.called``, see :meth:`TokenStore.record_call`).

Scopes: ``read`` (runs, transitions, state, streams), ``operate`` (start, stop, fork,
resume, verify), ``approve`` (decide approvals), ``admin`` (everything). ``operate`` and
``approve`` include ``read``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from telic.clock import Clock, SystemClock
from telic.errors import Forbidden, RunExists, RunNotFound, TokenInvalid, Unauthenticated
from telic.kinds import ApiCalled, TokenCreated, TokenRevoked
from telic.ledger.base import BaseLedger
from telic.transition import draft

__all__ = [
    "ACCESS_RUN",
    "SCOPES",
    "Identity",
    "Scope",
    "TokenInfo",
    "TokenStore",
    "allows",
]

ACCESS_RUN: Final = "telic-access"
"""The ledger run that holds tokens and the record of mutating API calls."""

Scope = Literal["read", "operate", "approve", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("read", "operate", "approve", "admin")
_IMPLIES: Final[dict[str, frozenset[str]]] = {
    "read": frozenset({"read"}),
    "operate": frozenset({"read", "operate"}),
    "approve": frozenset({"read", "approve"}),
    "admin": frozenset(SCOPES),
}
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_PREFIX: Final = "telic_"


def allows(scopes: Iterable[str], needed: str) -> bool:
    """Whether a token with ``scopes`` may do what needs ``needed``."""
    return any(needed in _IMPLIES.get(s, frozenset()) for s in scopes)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is from: a token's name and scopes (``anonymous`` reads on loopback)."""

    name: str
    scopes: tuple[str, ...]

    def require(self, scope: str) -> None:
        if not allows(self.scopes, scope):
            raise Forbidden(self.name, scope)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    scopes: tuple[str, ...]
    created_seq: int
    """The seq of its ``token.created`` in ``telic-access``."""
    created_ts: int
    revoked: bool


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The tokens of one ledger. Thread-safe; cheap to ask (one head lookup when nothing
    changed)."""

    def __init__(self, ledger: BaseLedger, *, clock: Clock | None = None) -> None:
        self.ledger = ledger
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._seen = 0
        self._tokens: dict[str, TokenInfo] = {}
        self._by_digest: dict[str, str] = {}

    # -- reading -----------------------------------------------------------------------

    def _ensure_run(self) -> None:
        try:
            self.ledger.run(ACCESS_RUN)
        except RunNotFound:
            with contextlib.suppress(RunExists):  # another process created it first
                self.ledger.create_run(ACCESS_RUN)

    def _catch_up(self) -> None:
        with self._lock:
            try:
                head = self.ledger.run(ACCESS_RUN).head
            except RunNotFound:
                return  # no tokens yet
            if head <= self._seen:
                return
            for t in self.ledger.read(ACCESS_RUN, self._seen + 1, head):
                if t.kind == "token.created":
                    d = t.data
                    info = TokenInfo(d["name"], tuple(d["scopes"]), t.seq, t.ts, False)
                    self._tokens[info.name] = info
                    self._by_digest[d["digest"]] = info.name
                elif t.kind == "token.revoked":
                    old = self._tokens.get(t.data["name"])
                    if old is not None:
                        self._tokens[old.name] = TokenInfo(
                            old.name, old.scopes, old.created_seq, old.created_ts, True
                        )
                self._seen = t.seq

    def list(self) -> list[TokenInfo]:
        self._catch_up()
        return sorted(self._tokens.values(), key=lambda t: t.created_seq)

    def active(self) -> list[TokenInfo]:
        return [t for t in self.list() if not t.revoked]

    def authenticate(self, token: str | None) -> Identity:
        """The identity ``token`` stands for, or :class:`Unauthenticated`."""
        if not token:
            raise Unauthenticated("this request needs a token")
        if not token.startswith(_PREFIX):
            raise Unauthenticated("that is not a telic token")
        self._catch_up()
        wanted = _digest(token)
        for known, name in self._by_digest.items():
            if hmac.compare_digest(known, wanted):
                info = self._tokens[name]
                if info.revoked:
                    raise Unauthenticated(f"token {name!r} was revoked")
                return Identity(info.name, info.scopes)
        raise Unauthenticated("unknown token")

    # -- writing -----------------------------------------------------------------------

    def create(self, name: str, scopes: Iterable[str]) -> tuple[str, TokenInfo]:
        """Make a token for ``name``; returns the token (shown once) and its record."""
        wanted = tuple(dict.fromkeys(scopes))
        if not _NAME.match(name):
            raise TokenInvalid(
                f"token name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'"
            )
        if not wanted:
            raise TokenInvalid(f"token {name!r} needs at least one scope: {', '.join(SCOPES)}")
        for s in wanted:
            if s not in SCOPES:
                raise TokenInvalid(f"unknown scope {s!r}; use {', '.join(SCOPES)}")
        self._catch_up()
        old = self._tokens.get(name)
        if old is not None and not old.revoked:
            raise TokenInvalid(f"a token named {name!r} exists; revoke it first")
        token = _PREFIX + secrets.token_urlsafe(32)
        self._ensure_run()
        payload = TokenCreated(name=name, scopes=wanted, digest=_digest(token))
        (t,) = self.ledger.append(ACCESS_RUN, [draft(payload, ts=self.clock.now_us())])
        self._catch_up()
        return token, TokenInfo(name, wanted, t.seq, t.ts, False)

    def revoke(self, name: str, *, by: str) -> None:
        self._catch_up()
        old = self._tokens.get(name)
        if old is None or old.revoked:
            raise TokenInvalid(f"no active token named {name!r}; `telic token list` shows them")
        self.ledger.append(
            ACCESS_RUN, [draft(TokenRevoked(name=name, by=by), ts=self.clock.now_us())]
        )
        self._catch_up()

    def record_call(
        self, identity: str, method: str, path: str, status: int, run: str | None = None
    ) -> None:
        """Record a mutating request (``api.called``) with who made it."""
        self._ensure_run()
        payload = ApiCalled(identity=identity, method=method, path=path, status=status, run=run)
        self.ledger.append(ACCESS_RUN, [draft(payload, ts=self.clock.now_us())])
