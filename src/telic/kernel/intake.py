"""What minds and tools hand the kernel, checked before anything of it is recorded.

A :class:`~telic.proposal.Proposal` is validated when it is built, but not one built with
``model_construct`` (or changed behind pydantic's back), and pydantic accepts values the
canonical encoding refuses. So every proposal is validated again here against its kind's
schema, encoded once, and measured: refused are NaN and infinities, integers outside
``[-2**63, 2**64)``, lone surrogates, nesting deeper than :data:`MAX_DEPTH` and anything over
the ledger's payload limit. A refusal is recorded as ``proposal.rejected`` (check ``schema``);
the same limits turn a tool result into ``tool.failed``.

:data:`MAX_DEPTH` leaves a wide margin under the encoder's own limit (orjson refuses 255
levels): a payload's value sits a few levels deep in the run's state, and the state is encoded
whole for its hash and its snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import BaseModel, ValidationError

from telic.canonical import decode, encode, encode_validated
from telic.errors import MalformedOutput, NotCanonical, PayloadTooLarge
from telic.kernel.guard import safe_text
from telic.kinds import ModelCalled
from telic.proposal import Proposal

__all__ = [
    "MAX_DEPTH",
    "Admitted",
    "Refused",
    "admit",
    "admit_calls",
    "check_depth",
    "check_value",
    "encode_value",
]

MAX_DEPTH: Final = 64
"""The deepest nesting of arrays and objects a payload may have (the payload itself is 1)."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """A proposal fit to record: validated again, with its record encoded once."""

    proposal: Proposal
    json: dict[str, Any]
    """The proposal as JSON (what the checks read)."""
    made: dict[str, Any]
    """The ``proposal.made`` payload as JSON."""
    raw: bytes
    """Its canonical encoding."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A proposal the kernel cannot record, and why."""

    reason: str


def admit(proposal: object, agent: str, *, max_bytes: int) -> Admitted | Refused:
    """Validate ``proposal`` again and encode its ``proposal.made`` record for ``agent``."""
    if not isinstance(proposal, Proposal):
        got = type(proposal).__name__
        return Refused(str(MalformedOutput(f"the mind returned {got}, not a Proposal")))
    try:
        # model_validate's core, without its Python-level argument handling
        checked: Proposal = Proposal.__pydantic_validator__.validate_python(_fields(proposal))
    except ValidationError as exc:
        return Refused(safe_text(f"the proposal does not match its schema: {exc}", 2000))
    try:
        for c in checked.model_calls:
            encode_value(c.model_dump(mode="json"), what="model.called", max_bytes=max_bytes)
    except (NotCanonical, PayloadTooLarge) as exc:
        return Refused(safe_text(f"a model call it records cannot be recorded: {exc}", 2000))
    data = checked.__pydantic_serializer__.to_python(checked, mode="json")  # model_dump's core
    made = {**data, "agent": agent, "resource": checked.claimed_resource()}
    try:
        raw = encode_value(made, what="proposal.made", max_bytes=max_bytes, finite=True)
    except (NotCanonical, PayloadTooLarge) as exc:
        return Refused(safe_text(str(exc), 2000))
    return Admitted(checked, data, made, raw)


def admit_calls(calls: object, *, max_bytes: int) -> tuple[tuple[ModelCalled, ...], int]:
    """The model calls in ``calls`` (from a failed mind) fit to record, and how many were not."""
    if not isinstance(calls, (tuple, list)):
        return (), 0
    fit: list[ModelCalled] = []
    unfit = 0
    for call in calls:  # pyright: ignore[reportUnknownVariableType]
        try:
            checked = ModelCalled.model_validate(
                dict(call.__dict__) if isinstance(call, BaseModel) else call
            )
            encode_value(checked.model_dump(mode="json"), what="model.called", max_bytes=max_bytes)
        except (ValidationError, NotCanonical, PayloadTooLarge):
            unfit += 1
            continue
        fit.append(checked)
    return tuple(fit), unfit


def _fields(proposal: Proposal) -> dict[str, Any]:
    """The proposal's fields, nested models as plain dicts, so that all of it is validated
    (pydantic takes model instances as they are, however they were built)."""
    fields = dict(proposal.__dict__)
    for name in ("claims", "model_calls"):
        items: Any = fields.get(name)
        if items and isinstance(items, (tuple, list)):
            plain: list[Any] = [
                dict(item.__dict__) if isinstance(item, BaseModel) else item
                for item in items  # pyright: ignore[reportUnknownVariableType]
            ]
            fields[name] = tuple(plain)
    return fields


def encode_value(
    value: Any, *, what: str, max_bytes: int, depth: int = MAX_DEPTH, finite: bool = False
) -> bytes:
    """The canonical encoding of ``value``, or :class:`NotCanonical` / :class:`PayloadTooLarge`
    (``depth``: the nesting ``value`` may have; ``finite``: ``value`` is the JSON of a model
    that refused NaN and infinities, so that needs no second look)."""
    if finite:
        try:
            raw = encode_validated(value)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise NotCanonical(str(exc)) from None
    else:
        raw = encode(value)
    check_depth(raw, depth)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(what, len(raw), max_bytes)
    return raw


def check_value(value: Any, *, what: str, max_bytes: int) -> Any:
    """``value``, a field of a payload, as its JSON round trip (a tuple becomes a list), within
    the limits above."""
    return decode(encode_value(value, what=what, max_bytes=max_bytes, depth=MAX_DEPTH - 1))


def check_depth(raw: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse the value encoded as ``raw`` if it nests deeper than ``limit``."""
    # Nesting needs a bracket per level: few brackets (counted at C speed) need no walk.
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    stack: list[tuple[Any, int]] = [(decode(raw), 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise NotCanonical(f"nesting deeper than {limit} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
