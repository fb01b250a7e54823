"""The OpenTelemetry processor of the event kernel: spans out, never slowing the kernel.

``on_event`` only appends the committed transition to a bounded queue (a ``deque``, whose
``append`` is atomic): no span is built and nothing is encoded on the kernel's commit path. A
worker thread that the processor owns wakes every ``interval_s`` (or when a batch is waiting),
folds the queued transitions into spans with :class:`~telic.otel.spans.SpanBuilder`, and
hands them in batches to the exporter. When the exporter is slow or its endpoint is down, the
queue fills and further transitions are dropped and counted (:attr:`OtelStats.dropped`);
publishing never waits. ``shutdown`` (called by ``EventKernel.aclose``) stops the worker,
ends the spans still open and exports what is left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from telic.errors import ConfigError
from telic.events.event import Event
from telic.otel.convert import default_resource, to_readable
from telic.otel.endpoint import (
    capture_content_from_env,
    otlp_exporter,
    resolve_traces_url,
    sdk_only_settings,
    timeout_from_env,
)
from telic.otel.otlp import OtlpHttpSink
from telic.otel.spans import SpanBuilder, SpanData
from telic.transition import Transition

__all__ = ["OtelProcessor", "OtelStats", "SpanSink", "endpoint_sink", "send_batches"]

log = logging.getLogger("telic.otel")


@runtime_checkable
class SpanSink(Protocol):
    """Where finished spans go: :class:`~telic.otel.otlp.OtlpHttpSink`, or any SDK
    ``SpanExporter`` (wrapped by the processor)."""

    def export(self, spans: Sequence[SpanData]) -> bool: ...

    def close(self) -> None: ...


class _SdkSink:
    """An OpenTelemetry SDK ``SpanExporter`` behind the :class:`SpanSink` protocol."""

    def __init__(self, exporter: SpanExporter, resource: Resource) -> None:
        self.exporter = exporter
        self.resource = resource

    def export(self, spans: Sequence[SpanData]) -> bool:
        return self.exporter.export(to_readable(spans, self.resource)) is SpanExportResult.SUCCESS

    def close(self) -> None:
        self.exporter.shutdown()


def endpoint_sink(endpoint: str | None, timeout_s: float | None) -> _SdkSink | OtlpHttpSink:
    """The sink that posts to ``endpoint`` (or the one the ``OTEL_EXPORTER_OTLP_*`` variables
    name): telic's own encoder, or the SDK's ``OTLPSpanExporter`` when the environment asks
    for what only it does (:data:`~telic.otel.endpoint.SDK_ONLY_VARIABLES`)."""
    resource = default_resource()
    if sdk_only_settings():
        return _SdkSink(otlp_exporter(endpoint, timeout_s=timeout_s), resource)
    timeout = timeout_s if timeout_s is not None else timeout_from_env()
    return OtlpHttpSink(resolve_traces_url(endpoint), resource, timeout_s=timeout)


@dataclass(frozen=True, slots=True)
class OtelStats:
    """What an :class:`OtelProcessor` has done so far."""

    queued: int
    """Transitions waiting for the worker."""
    dropped: int
    """Transitions dropped because the queue was full (their spans are incomplete)."""
    exported: int
    """Spans the exporter accepted."""
    failed: int
    """Spans in batches the exporter refused or failed on."""
    cpu_s: float = 0.0
    """CPU seconds spent building, encoding and sending spans (in whichever thread drained:
    the worker, or the caller of ``force_flush`` and ``shutdown``)."""


def send_batches(
    sink: SpanSink, spans: Sequence[SpanData], size: int, *, closing: bool, failing: bool
) -> tuple[int, int]:
    """Send ``spans`` to ``sink`` in batches of ``size``; returns how many were exported and
    how many failed (logged, counted, never raised). Shutting down (``closing``) with a sink
    that fails, or already ``failing``, the rest is counted as failed rather than waited on
    batch by batch."""
    exported = failed = 0
    for i in range(0, len(spans), size):
        chunk = spans[i : i + size]
        if closing and (failing or failed):
            failed += len(chunk)
            continue
        try:
            ok = sink.export(chunk)
        except Exception:
            log.exception("exporting %d spans failed", len(chunk))
            ok = False
        if ok:
            exported += len(chunk)
        else:
            failed += len(chunk)
    return exported, failed


class OtelProcessor:
    """An :class:`~telic.events.EventProcessor` that exports a run's spans.

    ``exporter`` is any OpenTelemetry ``SpanExporter`` (the in-memory one, the console, the
    SDK's OTLP exporters) or a :class:`SpanSink`; :meth:`for_endpoint` makes one that posts
    OTLP/HTTP protobuf with telic's own encoder (much cheaper per span). ``capture_content``
    records prompts, completions, tool arguments and results (off by default, as the GenAI
    conventions ask). ``max_queue`` bounds the
    transitions waiting for the worker; ``batch_size`` is the most spans per export call.
    """

    def __init__(
        self,
        exporter: SpanExporter | SpanSink,
        *,
        capture_content: bool = False,
        resource: Resource | None = None,
        resource_attributes: Mapping[str, str] | None = None,
        max_queue: int = 200_000,
        batch_size: int = 1024,
        interval_s: float = 0.5,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or not interval_s > 0:
            raise ConfigError("OtelProcessor: max_queue, batch_size and interval_s must be > 0")
        self.resource = resource or default_resource(resource_attributes)
        self.sink: SpanSink = (
            _SdkSink(exporter, self.resource) if isinstance(exporter, SpanExporter) else exporter
        )
        self._builder = SpanBuilder(capture_content=capture_content)
        self._queue: deque[Transition] = deque()
        self._max_queue = max_queue
        self._wake_at = min(max_queue, batch_size * 4)
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one drain at a time: the builder is not thread-safe
        self._stopping = False
        self._closed = False
        self._worker: threading.Thread | None = None
        self._dropped = 0
        self._exported = 0
        self._failed = 0
        self._cpu_s = 0.0

    @classmethod
    def for_endpoint(
        cls,
        endpoint: str | None = None,
        *,
        capture_content: bool | None = None,
        timeout_s: float | None = None,
        max_queue: int = 200_000,
        batch_size: int = 1024,
        interval_s: float = 0.5,
    ) -> OtelProcessor:
        """A processor that posts to the OTLP/HTTP ``endpoint`` (a base URL or the traces
        URL), or to the one the standard ``OTEL_EXPORTER_OTLP_*`` variables name, with their
        headers and timeout. ``capture_content`` defaults to
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.

        Spans are encoded by telic's own encoder (:mod:`telic.otel.otlp`, several times
        cheaper a span than the SDK's); when the environment asks for what only the SDK's
        ``OTLPSpanExporter`` does (compression, TLS certificates, a credential provider:
        :data:`~telic.otel.endpoint.SDK_ONLY_VARIABLES`), that exporter is used instead."""
        sink = endpoint_sink(endpoint, timeout_s)
        capture = capture_content_from_env() if capture_content is None else capture_content
        return cls(
            sink,
            capture_content=capture,
            resource=sink.resource,
            max_queue=max_queue,
            batch_size=batch_size,
            interval_s=interval_s,
        )

    @property
    def stats(self) -> OtelStats:
        return OtelStats(len(self._queue), self._dropped, self._exported, self._failed, self._cpu_s)

    # -- the event kernel's side -----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        queue = self._queue
        if len(queue) >= self._max_queue or self._closed:
            self._dropped += 1
            return
        queue.append(event.transition)
        if self._worker is None:
            self._start()
        elif len(queue) == self._wake_at:
            self._wake.set()

    def shutdown(self) -> None:
        """Stop the worker, end open spans, export what is left, shut the exporter down."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            self._worker.join()
        with self._lock:
            self._drain()
            c0 = time.thread_time()
            self._export(self._builder.close())
            self._cpu_s += time.thread_time() - c0
        self.sink.close()

    def force_flush(self) -> OtelStats:
        """Export everything queued so far (spans still open stay open); return the stats."""
        with self._lock:
            self._drain()
        return self.stats

    # -- the worker ------------------------------------------------------------------------

    def _start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="telic-otel", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            with self._lock:
                self._drain()

    def _drain(self) -> None:
        queue = self._queue
        if not queue:
            return
        c0 = time.thread_time()
        while queue:
            n = min(len(queue), self._batch_size * 4)
            popleft = queue.popleft
            batch = [popleft() for _ in range(n)]
            self._export(self._builder.feed(batch))
        self._cpu_s += time.thread_time() - c0

    def _export(self, spans: list[SpanData]) -> None:
        exported, failed = send_batches(
            self.sink, spans, self._batch_size, closing=self._closed, failing=self._failed > 0
        )
        self._exported += exported
        self._failed += failed
