"""OTLP over HTTP: the exporter for ``--otlp-endpoint`` and the standard environment."""

from __future__ import annotations

import os

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

__all__ = [
    "CAPTURE_CONTENT_VARIABLE",
    "ENDPOINT_VARIABLES",
    "SDK_ONLY_VARIABLES",
    "capture_content_from_env",
    "endpoint_configured",
    "otlp_exporter",
    "resolve_traces_url",
    "sdk_only_settings",
    "timeout_from_env",
    "traces_url",
]

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""The standard variables that name an OTLP endpoint (the first is the traces URL itself,
the second a base URL that ``/v1/traces`` is appended to)."""

CAPTURE_CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Set to ``true`` to capture prompts, completions and tool arguments (as ``--capture-content``)."""


def traces_url(endpoint: str) -> str:
    """The traces URL of an OTLP/HTTP ``endpoint`` given as a base (``http://host:4318``) or
    as the traces URL itself (``.../v1/traces``)."""
    endpoint = endpoint.strip()
    if endpoint.rstrip("/").endswith("/v1/traces"):
        return endpoint.rstrip("/")
    return endpoint.rstrip("/") + "/v1/traces"


def endpoint_configured(endpoint: str | None = None) -> bool:
    """True when ``endpoint`` is given or one of :data:`ENDPOINT_VARIABLES` is set."""
    return bool(endpoint) or any(os.environ.get(v) for v in ENDPOINT_VARIABLES)


def capture_content_from_env() -> bool:
    return os.environ.get(CAPTURE_CONTENT_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def resolve_traces_url(endpoint: str | None = None) -> str:
    """The traces URL for ``endpoint``, else from the standard variables, else the
    conventional local collector (``http://localhost:4318/v1/traces``)."""
    if endpoint:
        return traces_url(endpoint)
    traces = os.environ.get(ENDPOINT_VARIABLES[0], "").strip()
    if traces:
        return traces
    base = os.environ.get(ENDPOINT_VARIABLES[1], "").strip()
    return traces_url(base or "http://localhost:4318")


SDK_ONLY_VARIABLES = (
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
)
"""Settings only the SDK's ``OTLPSpanExporter`` honours (compression, TLS certificates and
keys, a credential provider): when one is set, telic exports through the SDK's exporter."""


def sdk_only_settings() -> list[str]:
    """The variables of :data:`SDK_ONLY_VARIABLES` that are set."""
    return [v for v in SDK_ONLY_VARIABLES if os.environ.get(v, "").strip()]


def timeout_from_env(default: float = 10.0) -> float:
    """OTEL_EXPORTER_OTLP_TRACES_TIMEOUT or OTEL_EXPORTER_OTLP_TIMEOUT (milliseconds, as the
    specification says), in seconds; ``default`` when neither is set or readable."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        text = os.environ.get(name, "").strip()
        if text:
            try:
                value = float(text) / 1000
            except ValueError:
                continue
            if value > 0:
                return value
    return default


def otlp_exporter(
    endpoint: str | None = None, *, timeout_s: float | None = None
) -> OTLPSpanExporter:
    """The SDK's OTLP/HTTP (protobuf) span exporter for ``endpoint``, or for the standard
    environment variables (endpoint, headers, timeout, compression) when it is None."""
    url = traces_url(endpoint) if endpoint else None
    return OTLPSpanExporter(endpoint=url, timeout=timeout_s)
