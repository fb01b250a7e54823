"""Export a run after the fact: the spans of its history, with the ids a live export gave."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from telic.ledger.base import Ledger
from telic.otel.convert import default_resource, to_readable
from telic.otel.spans import SpanBuilder, SpanData

__all__ = ["export_run", "run_spans"]


def run_spans(ledger: Ledger, run: str, *, capture_content: bool = False) -> list[SpanData]:
    """Every span of ``run``'s history; spans still open at the head end there."""
    builder = SpanBuilder(capture_content=capture_content)
    spans = builder.feed(ledger.read(run))
    spans.extend(builder.close())
    return spans


def export_run(
    ledger: Ledger,
    run: str,
    exporter: SpanExporter,
    *,
    capture_content: bool = False,
    resource: Resource | None = None,
    batch_size: int = 1024,
) -> int:
    """Export the spans of ``run`` to ``exporter``; return how many it accepted."""
    spans = run_spans(ledger, run, capture_content=capture_content)
    res = resource or default_resource()
    accepted = 0
    for i in range(0, len(spans), batch_size):
        chunk = spans[i : i + batch_size]
        if exporter.export(to_readable(chunk, res)) is SpanExportResult.SUCCESS:
            accepted += len(chunk)
    return accepted
