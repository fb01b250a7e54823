"""The transition: telic's one primitive, and how it is chained.

A :class:`Transition` is immutable. Its hash is ``sha256(prev_hash || body)`` where ``body``
is the canonical JSON of every field but the run id and the hashes::

    {"agent":..,"causes":[..],"kind":..,"payload":{..},"seq":..,"tick":..,"ts":..,"v":1}

The run id is where a transition lives, not what it says, so two runs with the same content
have the same chain, and a fork's chain continues from its parent's hash at the fork point.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import orjson
from pydantic import ValidationError

from telic.canonical import digest, encode_validated
from telic.errors import PayloadInvalid
from telic.kinds import Payload, payload_model

__all__ = [
    "SCHEMA_VERSION",
    "Draft",
    "Transition",
    "chain_hash",
    "draft",
    "encode_payload",
    "record_body",
]

SCHEMA_VERSION = 1
"""Version of the record layout; stored in every transition as ``v``."""

# orjson embeds already-canonical payload bytes as they are (the stubs do not declare it).
_fragment: Final[Callable[[bytes], Any]] = orjson.Fragment  # pyright: ignore[reportAttributeAccessIssue,reportUnknownMemberType]


class Draft(NamedTuple):
    """A transition before the ledger gives it a sequence number and a hash."""

    kind: str
    payload: bytes
    """Canonical JSON of the payload (see :func:`encode_payload`)."""
    ts: int
    """Wall-clock time in microseconds since the Unix epoch (from the injected clock)."""
    tick: int = 0
    agent: str | None = None
    causes: tuple[int, ...] = ()
    data: dict[str, Any] | None = None
    """The payload as JSON when it comes from a validated model (set by :func:`draft` and the
    kernel): the ledger then trusts it instead of decoding and validating ``payload`` again.
    Leave it None for payload bytes of any other origin."""


def encode_payload(payload: Payload) -> bytes:
    """The canonical bytes of a payload."""
    # The model refused NaN and infinities when it was built: no need to walk for them.
    return encode_validated(payload.model_dump(mode="json"))


def draft(
    payload: Payload,
    *,
    ts: int,
    tick: int = 0,
    agent: str | None = None,
    causes: tuple[int, ...] = (),
) -> Draft:
    """Prepare ``payload`` for appending."""
    data = payload.model_dump(mode="json")
    return Draft(payload.kind, encode_validated(data), ts, tick, agent, causes, data)


def record_body(
    seq: int,
    tick: int,
    agent: str | None,
    kind: str,
    causes: tuple[int, ...] | list[int],
    ts: int,
    v: int,
    payload: bytes,
) -> bytes:
    """The canonical bytes that are hashed for one transition."""
    return orjson.dumps(
        {
            "agent": agent,
            "causes": causes,
            "kind": kind,
            "payload": _fragment(payload),
            "seq": seq,
            "tick": tick,
            "ts": ts,
            "v": v,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def chain_hash(prev: bytes, body: bytes) -> bytes:
    return digest(prev + body)


class Transition(NamedTuple):
    """One committed, hash-chained record of a run's ledger."""

    run: str
    """The run (branch) this transition was written to."""
    seq: int
    """Position in the run, from 1, without gaps."""
    tick: int
    """The tick it belongs to (0 before the first tick)."""
    agent: str | None
    """The agent it concerns, or None for the kernel itself."""
    kind: str
    """A kind of :data:`telic.kinds.CATALOGUE`."""
    causes: tuple[int, ...]
    """Sequence numbers this transition derives from (provenance)."""
    ts: int
    """Wall-clock timestamp, microseconds since the Unix epoch."""
    v: int
    """Schema version."""
    data: dict[str, Any]
    """The payload as JSON; :attr:`payload` gives the typed model."""
    prev_hash: bytes
    """Hash of the previous transition (32 zero bytes for the first)."""
    hash: bytes
    """This transition's chain hash."""

    @property
    def payload(self) -> Payload:
        """The typed payload model for :attr:`kind` (validated on access)."""
        model = payload_model(self.kind)
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise PayloadInvalid(self.kind, str(exc)) from None

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()

    @property
    def time(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.ts / 1e6, tz=_dt.UTC)

    def to_json(self) -> dict[str, Any]:
        """The transition as a JSON object (the ``--json`` line format of ``telic trace``)."""
        return {
            "run": self.run,
            "seq": self.seq,
            "tick": self.tick,
            "agent": self.agent,
            "kind": self.kind,
            "payload": self.data,
            "causes": list(self.causes),
            "ts": self.time.isoformat().replace("+00:00", "Z"),
            "ts_us": self.ts,
            "v": self.v,
            "prev_hash": self.prev_hash.hex(),
            "hash": self.hash.hex(),
        }
