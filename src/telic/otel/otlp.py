"""OTLP/HTTP with protobuf, encoded straight from telic's spans: the fast path of the exporter.

The SDK's encoder walks ``ReadableSpan`` objects field by field in Python (about a hundred
microseconds a span on the benchmark machine), which alone would cost a no-op swarm a third of
its throughput. telic's spans repeat the same attributes over and over (operation, agent, run,
verdict), so this encoder writes the protobuf wire format of ``ExportTraceServiceRequest``
directly and memoises every encoded attribute: a span is mostly a join of cached bytes. The
messages are the ones of ``opentelemetry-proto`` (the tests decode them with it); only the
encoding is done here. :class:`OtlpHttpSink` posts them with a keep-alive connection.
"""

from __future__ import annotations

import http.client
import logging
import os
import struct
import urllib.parse
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.resources import Resource

from telic.otel.convert import SCOPE
from telic.otel.spans import AttributeValue, SpanData

__all__ = ["OtlpHttpSink", "encode_request", "parse_headers"]

log = logging.getLogger("telic.otel")

_pack_u64 = struct.Struct("<Q").pack
_pack_f64 = struct.Struct("<d").pack
_MASK64 = (1 << 64) - 1
_KIND = {"internal": b"\x30\x01", "client": b"\x30\x03"}  # Span.SpanKind
_MEMO_LIMIT = 200_000


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: AttributeValue) -> bytes:
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, tuple):  # AnyValue.array_value: ArrayValue{values}
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(v)) for v in value]))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & _MASK64)
    return b"\x21" + _pack_f64(value)


def _key_value(key: str, value: AttributeValue) -> bytes:
    """A ``KeyValue`` message (without the field tag of where it goes)."""
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))


_UNIQUE_KEYS = frozenset(
    {
        "telic.seq",
        "telic.proposal.seq",
        "gen_ai.tool.call.id",
        "telic.model.request_digest",
        "gen_ai.response.id",
    }
)
"""Attributes whose value differs on every span: encoded each time, never memoised."""

_pack_times = struct.Struct("<BQBQ").pack  # Span.start_time_unix_nano, Span.end_time_unix_nano


class _Encoder:
    """Encodes spans, memoising attributes, names and per-trace and per-parent prefixes."""

    def __init__(self, resource: Resource) -> None:
        res_attrs = b"".join(
            _field(b"\x0a", _key_value(k, v))
            for k, v in resource.attributes.items()
            if isinstance(v, str | bool | int | float)
        )
        scope = _field(b"\x0a", (SCOPE.name or "telic").encode()) + _field(
            b"\x12", (SCOPE.version or "").encode()
        )
        self._resource = _field(b"\x0a", res_attrs)  # ResourceSpans.resource
        self._scope = _field(b"\x0a", scope)  # ScopeSpans.scope
        self._scope_schema = _field(b"\x1a", (SCOPE.schema_url or "").encode())
        # One memo per field an attribute goes in (Span.attributes, Span.Event.attributes):
        # the cached bytes include the field's tag.
        self._attrs: dict[tuple[str, type, AttributeValue], bytes] = {}
        self._event_attrs: dict[tuple[str, type, AttributeValue], bytes] = {}
        self._traces: dict[int, bytes] = {}
        self._parents: dict[int, bytes] = {}
        self._names: dict[tuple[str, str], bytes] = {}
        self._int_keys: dict[str, bytes] = {}

    def _attr(self, tag: bytes, key: str, value: AttributeValue) -> bytes:
        if key in _UNIQUE_KEYS:
            if isinstance(value, int) and not isinstance(value, bool):
                # KeyValue{key, AnyValue{int_value}}: the key's bytes are cached, the value's
                # varint is at most 10 bytes, so the AnyValue's length is one byte.
                head = self._int_keys.get(key)
                if head is None:
                    head = self._int_keys[key] = _field(b"\x0a", key.encode()) + b"\x12"
                v = _varint(value & _MASK64)
                kv = head + bytes((len(v) + 1,)) + b"\x18" + v
                return tag + _varint(len(kv)) + kv
            return _field(tag, _key_value(key, value))
        memos = self._attrs if tag == b"\x4a" else self._event_attrs
        memo = (key, value.__class__, value)
        got = memos.get(memo)
        if got is None:
            if len(memos) >= _MEMO_LIMIT:
                memos.clear()
            got = memos[memo] = _field(tag, _key_value(key, value))
        return got

    def span(self, s: SpanData) -> bytes:
        trace = self._traces.get(s.trace_id)
        if trace is None:
            if len(self._traces) >= _MEMO_LIMIT:
                self._traces.clear()
            trace = self._traces[s.trace_id] = b"\x0a\x10" + s.trace_id.to_bytes(16, "big")
        parent = b""
        if s.parent_id:
            parent = self._parents.get(s.parent_id)
            if parent is None:
                if len(self._parents) >= _MEMO_LIMIT:
                    self._parents.clear()
                parent = self._parents[s.parent_id] = b"\x22\x08" + s.parent_id.to_bytes(8, "big")
        named = self._names.get((s.name, s.kind))
        if named is None:
            if len(self._names) >= _MEMO_LIMIT:
                self._names.clear()
            named = self._names[(s.name, s.kind)] = _field(b"\x2a", s.name.encode()) + _KIND[s.kind]
        attr = self._attr
        memo = self._attrs
        parts = [
            trace,
            b"\x12\x08",
            s.span_id.to_bytes(8, "big"),
            parent,
            named,
            _pack_times(0x39, s.start_ns, 0x41, s.end_ns),
            *[
                memo.get((k, v.__class__, v)) or attr(b"\x4a", k, v)
                for k, v in s.attributes.items()
            ],
        ]
        for e in s.events:
            body = (
                b"\x09"
                + _pack_u64(e.time_ns)
                + _field(b"\x12", e.name.encode())
                + b"".join([attr(b"\x1a", k, v) for k, v in e.attributes.items()])
            )
            parts.append(_field(b"\x5a", body))
        if s.error is not None:
            parts.append(_field(b"\x7a", _field(b"\x12", s.error.encode()) + b"\x18\x02"))
        return _field(b"\x12", b"".join(parts))  # ScopeSpans.spans

    def request(self, spans: Sequence[SpanData]) -> bytes:
        span = self.span
        scope_spans = _field(
            b"\x12", self._scope + b"".join([span(s) for s in spans]) + self._scope_schema
        )
        return _field(b"\x0a", self._resource + scope_spans)


def encode_request(spans: Sequence[SpanData], resource: Resource) -> bytes:
    """The protobuf bytes of an ``ExportTraceServiceRequest`` holding ``spans``."""
    return _Encoder(resource).request(spans)


def parse_headers(text: str) -> dict[str, str]:
    """``key=value,key2=value2`` (URL-encoded, as OTEL_EXPORTER_OTLP_HEADERS has them)."""
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return out


class OtlpHttpSink:
    """Posts spans to an OTLP/HTTP traces URL as protobuf; one keep-alive connection.

    ``export`` returns False (and logs once per failure streak) when the endpoint refuses,
    errs or times out after ``timeout_s``; it does not retry: the processor counts the spans
    as failed and goes on with the next batch.
    """

    def __init__(
        self,
        url: str,
        resource: Resource,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            from telic.errors import ConfigError

            raise ConfigError(f"OTLP endpoint {url!r} is not an http(s) URL")
        self.url = url
        self.resource = resource
        """The resource every request carries."""
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path or "/"
        env = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or os.environ.get(
            "OTEL_EXPORTER_OTLP_HEADERS", ""
        )
        self._headers = {
            **parse_headers(env),
            **dict(headers or {}),
            "Content-Type": "application/x-protobuf",
        }
        self._timeout_s = timeout_s
        self._encoder = _Encoder(resource)
        self._conn: http.client.HTTPConnection | None = None
        self._failing = False

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout_s)
        return self._conn

    def export(self, spans: Sequence[SpanData]) -> bool:
        body = self._encoder.request(spans)
        try:
            conn = self._connection()
            conn.request("POST", self._path, body, self._headers)
            response = conn.getresponse()
            response.read()
            ok = 200 <= response.status < 300
            problem = f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            ok, problem = False, f"{type(exc).__name__}: {exc}"
        if not ok and not self._failing:
            log.warning("OTLP export to %s failed (%s); spans are dropped", self.url, problem)
        self._failing = not ok
        return ok

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
