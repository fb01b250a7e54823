"""Deterministic trace and span ids, derived from a run id and sequence numbers.

A run's trace id is a hash of its id; a span's id is a hash of the run id mixed with the
sequence number of the transition that opened the span and the span's role. The same history
therefore gives the same ids whether it is exported live or after the fact (``telic
export-otel``), by any process.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

__all__ = ["SpanRole", "run_key", "span_id", "trace_id"]

_MASK64 = (1 << 64) - 1
_SPREAD = 0x9E3779B97F4A7C15  # odd: multiplying by it is a bijection modulo 2**64


class SpanRole(IntEnum):
    """What a span stands for; part of its id, so two roles opened by one seq differ."""

    RUN = 1
    """A run segment: from ``run.booted`` or ``run.resumed`` to the run's end."""
    TURN = 2
    """An agent's turn in a tick."""
    CHAT = 3
    """A model call (``model.called``)."""
    TOOL = 4
    """A tool call, from ``tool.started`` to its outcome."""


def trace_id(run: str) -> int:
    """The 128-bit trace id of ``run`` (never zero)."""
    digest = hashlib.blake2b(b"telic/trace\0" + run.encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") or 1


def run_key(run: str) -> int:
    """A 64-bit key of ``run`` that :func:`span_id` mixes sequence numbers into."""
    digest = hashlib.blake2b(b"telic/span\0" + run.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def span_id(key: int, seq: int, role: SpanRole) -> int:
    """The 64-bit span id of the ``role`` span opened by transition ``seq`` (never zero).

    ``key`` is :func:`run_key` of the run. ``(seq, role)`` is multiplied by an odd constant
    modulo 2**64 (which spreads the bits) and XORed with the key: both steps are bijections,
    so two spans of one trace never share an id.
    """
    sid = ((((seq << 3) | role) * _SPREAD) & _MASK64) ^ key
    return sid or _MASK64
