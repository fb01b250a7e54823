"""Hand finished spans to any OpenTelemetry SDK exporter as ``ReadableSpan`` objects.

The spans are built from the ledger, not recorded through a ``Tracer``: their ids are
deterministic and their times are the transitions' timestamps, so they are made as the SDK's
read-only span records directly, without the SDK's context machinery. Any ``SpanExporter``
(OTLP over HTTP or gRPC, the console, the in-memory one of tests) takes them as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes import service_attributes

from telic.otel.spans import SpanData

__all__ = ["SCOPE", "default_resource", "to_readable"]

SCOPE = InstrumentationScope("telic", "0.1.0", "https://opentelemetry.io/schemas/1.37.0")
"""The instrumentation scope of every span telic exports."""

_KINDS = {"internal": trace_api.SpanKind.INTERNAL, "client": trace_api.SpanKind.CLIENT}
_SAMPLED = trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED)
_UNSET = trace_api.Status(trace_api.StatusCode.UNSET)


def default_resource(attributes: Mapping[str, str] | None = None) -> Resource:
    """The SDK's resource (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply), with
    ``service.name`` = telic when neither names the service, and ``attributes`` on top."""
    detected = Resource.create({})
    extra: dict[str, str] = {}
    name = detected.attributes.get(service_attributes.SERVICE_NAME)
    if not isinstance(name, str) or name.startswith("unknown_service"):
        extra[service_attributes.SERVICE_NAME] = "telic"
    extra.update(attributes or {})
    return detected.merge(Resource(extra))


def to_readable(spans: Iterable[SpanData], resource: Resource) -> list[ReadableSpan]:
    """The SDK's read-only spans for ``spans``, all under ``resource`` and telic's scope."""
    out: list[ReadableSpan] = []
    contexts: dict[tuple[int, int], trace_api.SpanContext] = {}
    for s in spans:
        context = trace_api.SpanContext(s.trace_id, s.span_id, False, _SAMPLED)
        parent = None
        if s.parent_id:
            key = (s.trace_id, s.parent_id)
            parent = contexts.get(key)
            if parent is None:
                parent = contexts[key] = trace_api.SpanContext(
                    s.trace_id, s.parent_id, False, _SAMPLED
                )
        status = (
            _UNSET if s.error is None else trace_api.Status(trace_api.StatusCode.ERROR, s.error)
        )
        out.append(
            ReadableSpan(
                name=s.name,
                context=context,
                parent=parent,
                resource=resource,
                attributes=s.attributes,
                events=[Event(e.name, e.attributes, e.time_ns) for e in s.events],
                kind=_KINDS[s.kind],
                status=status,
                start_time=s.start_ns,
                end_time=s.end_ns,
                instrumentation_scope=SCOPE,
            )
        )
    return out
