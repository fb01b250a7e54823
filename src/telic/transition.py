"""The transition: telic's one primitive, and how it is chained.

A :class:`Transition` is immutable. Its hash is ``sha256(prev_hash || body)`` where ``body``
is the canonical JSON of every field but the run id and the hashes::

    {"agent":..,"causes":[..],"kind":..,"payload":{..},"seq":..,"tick":..,"ts":..,"v":1}

The run id is where a transition lives, not what it says, so two runs with the same content
have the same chain, and a fork's chain continues from its parent's hash at the fork point.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Final, NamedTuple, NoReturn

import orjson
from pydantic import ValidationError

from telic.canonical import digest, encode_validated
from telic.errors import PayloadInvalid, RecordInvalid
from telic.kinds import Payload, payload_model

__all__ = [
    "INT_MAX",
    "INT_MIN",
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


_BODY: Final = b'{"agent":%b,"causes":%b,"kind":%b,"payload":%b,"seq":%d,"tick":%d,"ts":%d,"v":%d}'
"""The hashed body with its keys in sorted order: ``%d`` prints exactly what orjson would for
an ``int``, and :func:`record_body` lets nothing else reach it."""

INT_MIN: Final = -(1 << 63)
INT_MAX: Final = (1 << 63) - 1
"""The range of a record's integers: what SQLite and PostgreSQL store (signed 64 bits)."""


def record_body(
    seq: int,
    tick: int,
    agent: str | None,
    kind: str,
    causes: tuple[int, ...],
    ts: int,
    v: int,
    payload: bytes,
) -> bytes:
    """The canonical bytes that are hashed for one transition: the one encoder of the record.

    The transition, every ledger backend (append) and ``verify`` call it, so what is hashed
    on write is what is checked on read. Refuses, with :class:`RecordInvalid`, anything it
    could not encode exactly: a ``seq``, ``tick``, ``ts`` or ``v`` that is not an ``int``
    (``1.5``, ``True``, ``"1"``) or outside signed 64 bits; causes that are not a tuple of such
    integers; an ``agent`` that is not a string or None; a ``kind`` that is not a string; a
    ``payload`` that is not bytes; strings that are not valid Unicode (lone surrogates).
    ``payload`` is embedded as it is: it is already canonical (see docs/ledger.md).
    """
    if not (
        type(seq) is int
        and type(tick) is int
        and type(ts) is int
        and type(v) is int
        and type(causes) is tuple
        and type(kind) is str
        and type(payload) is bytes
        and (agent is None or type(agent) is str)
        # literals, not INT_MIN/INT_MAX: this runs for every record written and verified
        and -9223372036854775808 <= seq <= 9223372036854775807
        and -9223372036854775808 <= tick <= 9223372036854775807
        and -9223372036854775808 <= ts <= 9223372036854775807
        and -9223372036854775808 <= v <= 9223372036854775807
    ):
        _refuse(seq, tick, agent, kind, causes, ts, v, payload)
    for c in causes:
        if type(c) is not int or not -9223372036854775808 <= c <= 9223372036854775807:
            raise RecordInvalid("causes", f"holds {c!r:.80}: {_not_int(c)}")
    dumps = orjson.dumps
    try:
        return _BODY % (dumps(agent), dumps(causes), dumps(kind), payload, seq, tick, ts, v)
    except orjson.JSONEncodeError as exc:  # a lone surrogate in the agent or the kind
        field = "kind" if _unencodable(kind) else "agent"
        raise RecordInvalid(field, f"is not valid Unicode ({exc})") from None


def _refuse(
    seq: object,
    tick: object,
    agent: object,
    kind: object,
    causes: object,
    ts: object,
    v: object,
    payload: object,
) -> NoReturn:
    """Raise :class:`RecordInvalid` for the first field :func:`record_body` cannot encode."""
    for name, value in (("seq", seq), ("tick", tick), ("ts", ts), ("v", v)):
        if type(value) is not int or not INT_MIN <= value <= INT_MAX:
            raise RecordInvalid(name, _not_int(value))
    if type(causes) is not tuple:
        raise RecordInvalid("causes", f"must be a tuple of integers, not {causes!r:.80}")
    if agent is not None and type(agent) is not str:
        raise RecordInvalid("agent", f"must be a string or None, not {agent!r:.80}")
    if type(kind) is not str:
        raise RecordInvalid("kind", f"must be a string, not {kind!r:.80}")
    raise RecordInvalid("payload", f"must be canonical JSON bytes, not {type(payload).__name__}")


def _unencodable(text: str) -> bool:
    try:
        orjson.dumps(text)
    except orjson.JSONEncodeError:
        return True
    return False


def _not_int(value: object) -> str:
    if type(value) is int:
        return f"is {value}, outside signed 64 bits"
    return f"must be an integer, not {type(value).__name__} {value!r:.80}"


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
