"""OpenTelemetry GenAI traces of runs (the ``telic[otel]`` extra).

- :class:`OtelExportProcess`: an event-kernel processor whose spans are built, encoded and
  exported by a child process that reads the ledger (what ``--otlp-endpoint`` uses).
- :class:`OtelProcessor`: an event-kernel processor that exports spans live from a thread of
  the kernel's process (``EventKernel(ledger, processors=[OtelProcessor(exporter)])``); any
  SDK ``SpanExporter`` plugs in.
- :func:`export_run`: the same spans for a run already in a ledger (``telic export-otel``).
- :class:`SpanBuilder`: the pure fold of transitions into spans both use, so both give the
  same trace and span ids.

See docs/integrations.md.
"""

from __future__ import annotations

try:
    import opentelemetry.sdk.trace  # pyright: ignore[reportUnusedImport]
    import opentelemetry.semconv  # noqa: F401  # pyright: ignore[reportUnusedImport]
except ImportError:  # pragma: no cover - exercised without the extra
    from telic.errors import MissingExtra

    raise MissingExtra("opentelemetry-sdk", "otel") from None

from telic.otel.convert import SCOPE, default_resource, to_readable
from telic.otel.endpoint import (
    CAPTURE_CONTENT_VARIABLE,
    ENDPOINT_VARIABLES,
    SDK_ONLY_VARIABLES,
    capture_content_from_env,
    endpoint_configured,
    otlp_exporter,
    resolve_traces_url,
    sdk_only_settings,
    timeout_from_env,
    traces_url,
)
from telic.otel.export import export_run, run_spans
from telic.otel.ids import SpanRole, span_id, trace_id
from telic.otel.otlp import OtlpHttpSink, encode_request
from telic.otel.processor import OtelProcessor, OtelStats, SpanSink
from telic.otel.spans import SpanBuilder, SpanData, SpanEvent
from telic.otel.worker import OtelExportProcess, live_processor

__all__ = [
    "CAPTURE_CONTENT_VARIABLE",
    "ENDPOINT_VARIABLES",
    "SCOPE",
    "SDK_ONLY_VARIABLES",
    "OtelExportProcess",
    "OtelProcessor",
    "OtelStats",
    "OtlpHttpSink",
    "SpanBuilder",
    "SpanData",
    "SpanEvent",
    "SpanRole",
    "SpanSink",
    "capture_content_from_env",
    "default_resource",
    "encode_request",
    "endpoint_configured",
    "export_run",
    "live_processor",
    "otlp_exporter",
    "resolve_traces_url",
    "run_spans",
    "sdk_only_settings",
    "span_id",
    "timeout_from_env",
    "to_readable",
    "trace_id",
    "traces_url",
]
