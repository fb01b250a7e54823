"""OpenTelemetry GenAI spans: the reference run through the SDK's in-memory exporter (the span
tree and its attributes against the conventions), a real OTLP/HTTP receiver on loopback that
decodes the protobuf requests with ``opentelemetry-proto``, live and after-the-fact exports
giving the same ids, and a processor that never blocks the kernel."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import (  # pyright: ignore[reportMissingTypeStubs]
    gen_ai_attributes as gen_ai,
)
from opentelemetry.semconv.attributes import error_attributes

from telic.clock import SystemClock, VirtualClock
from telic.demo import DEFAULT_SEED, build
from telic.errors import ConfigError
from telic.events import EventKernel
from telic.kernel import AgentSpec, Budget, Kernel, RunConfig
from telic.kinds import (
    AgentRecord,
    ModelCalled,
    Payload,
    ProposalMade,
    RunBooted,
    TickCompleted,
    TickStarted,
)
from telic.ledger import BaseLedger, open_ledger
from telic.minds import Limits, model_mind
from telic.minds.base import FunctionMind, View
from telic.minds.testing import ModelServer, Reply
from telic.otel import (
    OtelExportProcess,
    OtelProcessor,
    OtlpHttpSink,
    SpanBuilder,
    SpanData,
    SpanEvent,
    SpanRole,
    default_resource,
    live_processor,
    run_spans,
    span_id,
    trace_id,
)
from telic.otel.ids import run_key
from telic.otel.otlp import _Encoder  # pyright: ignore[reportPrivateUsage]
from telic.policy import Policy
from telic.proposal import Proposal
from telic.transition import Transition, draft

ROOT = Path(__file__).resolve().parents[2]


def _reference(exporter: Any, *, capture_content: bool = False) -> tuple[BaseLedger, str]:
    """The reference run, live, with an OtelProcessor on the event kernel."""
    ledger = open_ledger("memory://")
    clock = VirtualClock()
    processor = OtelProcessor(exporter, capture_content=capture_content)

    async def main() -> str:
        async with EventKernel(ledger, clock=clock, processors=[processor]) as events:
            config, _ = build(DEFAULT_SEED)
            kernel = Kernel(ledger, clock=clock, publish=events.publish)
            result = await kernel.run(config)
            return result.run_id

    run_id = clock.run(main())
    return ledger, run_id


def _by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans if s.context is not None}


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_the_reference_run_gives_the_genai_span_tree() -> None:
    exporter = InMemorySpanExporter()
    ledger, run_id = _reference(exporter)
    spans = list(exporter.get_finished_spans())
    by_id = _by_id(spans)
    transitions = list(ledger.read(run_id))

    # one trace, one root: the run, as invoke_agent
    assert {s.context.trace_id for s in spans if s.context} == {trace_id(run_id)}
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1
    root = roots[0]
    assert root.context is not None
    assert root.name == "invoke_agent telic"
    assert _attrs(root)[gen_ai.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert _attrs(root)[gen_ai.GEN_AI_CONVERSATION_ID] == run_id
    assert _attrs(root)["telic.run.status"] == "completed"

    # one turn span per agent and tick that proposed, each a child of the run
    turns = [s for s in spans if s.name.startswith("invoke_agent ") and s is not root]
    proposals = [t for t in transitions if t.kind == "proposal.made"]
    assert len(turns) == len({(t.tick, t.agent) for t in proposals})
    for s in turns:
        assert s.parent is not None and s.parent.span_id == root.context.span_id
        a = _attrs(s)
        assert a[gen_ai.GEN_AI_OPERATION_NAME] == "invoke_agent"
        assert s.name == f"invoke_agent {a[gen_ai.GEN_AI_AGENT_NAME]}"
        assert a["telic.proposal.verdict"] in ("accepted", "rejected")

    # one execute_tool span per tool call, child of its agent's turn, with the call id
    started = [t for t in transitions if t.kind == "tool.started"]
    tools = [s for s in spans if s.name.startswith("execute_tool ")]
    assert len(tools) == len(started)
    for t in started:
        s = by_id[span_id(run_key(run_id), t.seq, SpanRole.TOOL)]
        a = _attrs(s)
        assert s.name == f"execute_tool {t.data['tool']}"
        assert a[gen_ai.GEN_AI_OPERATION_NAME] == "execute_tool"
        assert a[gen_ai.GEN_AI_TOOL_NAME] == t.data["tool"]
        assert a[gen_ai.GEN_AI_TOOL_CALL_ID] == t.data["call_id"]
        assert s.parent is not None
        assert _attrs(by_id[s.parent.span_id])[gen_ai.GEN_AI_AGENT_NAME] == t.agent
        assert gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS not in a  # content capture is off
    timed_out = [s for s in tools if _attrs(s).get(error_attributes.ERROR_TYPE) == "timeout"]
    assert len(timed_out) == 1 and not timed_out[0].status.is_ok

    # verdicts as span events
    events = {(e.name, (e.attributes or {}).get("telic.check")) for s in spans for e in s.events}
    assert ("proposal.rejected", "conflict") in events
    assert ("proposal.rejected", "confidence") in events
    assert ("proposal.rejected", "grounding") in events
    names = {name for name, _ in events}
    assert {"conflict.detected", "conflict.resolved", "hallucination.detected"} <= names
    assert {"state.restored", "exploration.spawned", "agent.restarted"} <= names


def test_content_is_captured_only_on_request() -> None:
    exporter = InMemorySpanExporter()
    _reference(exporter, capture_content=True)
    tools = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool ")]
    assert all(gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS in _attrs(s) for s in tools)
    done = [s for s in tools if s.status.is_ok]
    assert all(gen_ai.GEN_AI_TOOL_CALL_RESULT in _attrs(s) for s in done)


def test_exporting_after_the_fact_gives_the_live_ids() -> None:
    exporter = InMemorySpanExporter()
    ledger, run_id = _reference(exporter)
    live = {
        (s.context.span_id, s.parent.span_id if s.parent else 0, s.name)
        for s in exporter.get_finished_spans()
        if s.context
    }
    later = {(s.span_id, s.parent_id, s.name) for s in run_spans(ledger, run_id)}
    assert live == later


def _model_run() -> list[Transition]:
    """A run with a model call, recorded as the kernel records a mind's call."""
    ledger = open_ledger("memory://")
    ledger.create_run("r-chat")
    t0 = 1_700_000_000_000_000
    payloads: list[tuple[Payload, str | None]] = [
        (RunBooted(goal="g", agents=(AgentRecord(name="a", role="r"),), budget={}), None),
        (TickStarted(tick=1), None),
        (
            ModelCalled(
                agent="a",
                model="openai:gpt-4.1-mini",
                request_digest="d1",
                response={"text": "hi"},
                input_tokens=120,
                output_tokens=30,
                latency_ms=250.0,
                cost=0.0004,
            ),
            "a",
        ),
        (ProposalMade(agent="a", action="finish", confidence=0.9), "a"),
        (TickCompleted(tick=1, progress=1.0, delta=1.0, valid=True, state_hash="x"), None),
    ]
    drafts = [
        draft(p, ts=t0 + i * 1000, tick=1 if i else 0, agent=agent)
        for i, (p, agent) in enumerate(payloads)
    ]
    return list(ledger.append("r-chat", drafts))


def test_model_calls_are_chat_spans_with_usage() -> None:
    builder = SpanBuilder()
    spans = builder.feed(_model_run()) + builder.close()
    chat = next(s for s in spans if s.name.startswith("chat "))
    assert chat.name == "chat gpt-4.1-mini"
    assert chat.kind == "client"
    a = chat.attributes
    assert a[gen_ai.GEN_AI_OPERATION_NAME] == "chat"
    assert a[gen_ai.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[gen_ai.GEN_AI_REQUEST_MODEL] == "gpt-4.1-mini"
    assert a[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == 120
    assert a[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 30
    assert chat.end_ns - chat.start_ns == 250_000_000
    assert gen_ai.GEN_AI_OUTPUT_MESSAGES not in a
    turn = next(s for s in spans if s.name == "invoke_agent a")
    assert chat.parent_id == turn.span_id


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=30))
def test_spans_do_not_depend_on_how_the_history_is_batched(cuts: list[int]) -> None:
    history = _history()
    whole = SpanBuilder()
    expected = whole.feed(history) + whole.close()
    pieces = SpanBuilder()
    got: list[SpanData] = []
    i = 0
    for n in cuts:
        got += pieces.feed(history[i : i + n])
        i += n
    got += pieces.feed(history[i:]) + pieces.close()
    assert got == expected


_HISTORY: list[Transition] = []


def _history() -> list[Transition]:
    if not _HISTORY:
        ledger, run_id = _reference(InMemorySpanExporter())
        _HISTORY.extend(ledger.read(run_id))
    return _HISTORY


@given(st.text(min_size=1, max_size=20), st.sets(st.integers(1, 10**9), min_size=2, max_size=50))
def test_span_ids_never_collide_within_a_run(run: str, seqs: set[int]) -> None:
    key = run_key(run)
    ids = {span_id(key, s, role) for s in seqs for role in SpanRole}
    assert len(ids) == len(seqs) * len(SpanRole)
    assert 0 not in ids


# -- a real OTLP/HTTP endpoint ---------------------------------------------------------------


class _Receiver:
    """An OTLP/HTTP receiver on loopback decoding requests with opentelemetry-proto."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.encodings: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.content_types.append(self.headers["Content-Type"])
                outer.encodings.append(self.headers.get("Content-Encoding", "identity"))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.requests.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[Any]:
        return [
            (rs, span)
            for req in self.requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def _telic(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telic", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_demo_exports_live_to_an_otlp_receiver_and_export_otel_matches(
    receiver: _Receiver, tmp_path: Path
) -> None:
    db = str(tmp_path / "ref.db")
    proc = _telic(
        "demo", "--instant", "--db", db, "--out", str(tmp_path), "--otlp-endpoint", receiver.url
    )
    assert proc.returncode == 0, proc.stderr
    live = receiver.spans()
    assert receiver.content_types and set(receiver.content_types) == {"application/x-protobuf"}
    run_id = open_ledger(db).runs()[0].id
    expected = run_spans(open_ledger(db), run_id)
    assert len(live) == len(expected)
    resource = {kv.key: kv.value.string_value for kv in live[0][0].resource.attributes}
    assert resource["service.name"] == "telic"
    got = {(s.span_id.hex(), s.parent_span_id.hex(), s.name) for _, s in live}
    assert got == {
        (f"{s.span_id:016x}", f"{s.parent_id:016x}" if s.parent_id else "", s.name)
        for s in expected
    }
    assert {s.trace_id.hex() for _, s in live} == {f"{trace_id(run_id):032x}"}
    turn = next(s for _, s in live if s.name == "invoke_agent budgeter")
    attrs = {kv.key: kv.value for kv in turn.attributes}
    assert attrs[gen_ai.GEN_AI_AGENT_NAME].string_value == "budgeter"
    assert attrs["telic.tick"].int_value == 1
    rejected = [
        {kv.key: kv.value for kv in e.attributes}
        for _, s in live
        for e in s.events
        if e.name == "proposal.rejected"
    ]
    assert {r["telic.check"].string_value for r in rejected} >= {"conflict", "grounding"}
    assert all(r["telic.seq"].int_value > 0 for r in rejected)
    root = next(s for _, s in live if not s.parent_span_id)
    assert {e.name for e in root.events} >= {"conflict.detected", "state.restored"}
    assert all({kv.key for kv in e.attributes} >= {"telic.seq"} for e in root.events)

    # after the fact, through OTEL_EXPORTER_OTLP_ENDPOINT: the same spans again
    receiver.requests.clear()
    proc = _telic(
        "export-otel", run_id, "--db", db, env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
    )
    assert proc.returncode == 0, proc.stderr
    again = {(s.span_id.hex(), s.parent_span_id.hex(), s.name) for _, s in receiver.spans()}
    assert again == got


def test_export_otel_errors_are_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "ref.db")
    assert _telic("demo", "--instant", "--db", db, "--out", str(tmp_path)).returncode == 0
    run_id = open_ledger(db).runs()[0].id
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}
    proc = _telic("export-otel", run_id, "--db", db, env=env)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "no OTLP endpoint" in proc.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    proc = _telic(
        "export-otel", run_id, "--db", db, "--otlp-endpoint", f"http://127.0.0.1:{closed}"
    )
    assert proc.returncode == 1 and "did not accept" in proc.stderr
    proc = _telic("export-otel", run_id, "--db", db, "--json")
    assert proc.returncode == 0 and proc.stdout.count("\n") == len(
        run_spans(open_ledger(db), run_id)
    )


# -- never blocking the kernel ---------------------------------------------------------------


class _StuckExporter(InMemorySpanExporter):
    """An exporter whose export waits until released (an endpoint that hangs)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def export(self, spans: Any) -> SpanExportResult:
        self.entered.set()
        self.release.wait()
        return super().export(spans)


def test_a_hanging_exporter_drops_and_counts_instead_of_blocking() -> None:
    stuck = _StuckExporter()
    ledger = open_ledger("memory://")
    clock = VirtualClock()
    processor = OtelProcessor(stuck, max_queue=50, batch_size=1, interval_s=0.01)

    async def main() -> str:
        async with EventKernel(ledger, clock=clock, processors=[processor]) as events:
            config, _ = build(DEFAULT_SEED)
            result = await Kernel(ledger, clock=clock, publish=events.publish).run(config)
            assert stuck.entered.wait(30)  # the worker is stuck in export, the run went on
            stats = processor.stats
            assert stats.dropped > 0
            assert stats.queued <= 50
            stuck.release.set()
            return result.run_id

    run_id = clock.run(main())
    assert ledger.state_at(run_id)["status"] == "completed"
    assert processor.stats.dropped > 0


def test_an_endpoint_that_is_down_counts_failures(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    processor = OtelProcessor.for_endpoint(f"http://127.0.0.1:{closed}", timeout_s=1.0)
    ledger = open_ledger("memory://")
    clock = VirtualClock()

    async def main() -> str:
        async with EventKernel(ledger, clock=clock, processors=[processor]) as events:
            config, _ = build(DEFAULT_SEED)
            return (await Kernel(ledger, clock=clock, publish=events.publish).run(config)).run_id

    run_id = clock.run(main())
    assert ledger.state_at(run_id)["status"] == "completed"
    assert processor.stats.failed > 0 and processor.stats.exported == 0


def _run_reference(processor: OtelProcessor) -> str:
    ledger = open_ledger("memory://")
    clock = VirtualClock()

    async def main() -> str:
        async with EventKernel(ledger, clock=clock, processors=[processor]) as events:
            config, _ = build(DEFAULT_SEED)
            return (await Kernel(ledger, clock=clock, publish=events.publish).run(config)).run_id

    return clock.run(main())


def test_settings_only_the_sdk_exporter_has_send_through_it(
    receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compression (or TLS certificates, a credential provider) named in the standard
    variables: telic's fast path does not do them, so the SDK's exporter sends, gzipped."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    processor = OtelProcessor.for_endpoint()
    assert not isinstance(processor.sink, OtlpHttpSink)
    _run_reference(processor)
    assert processor.stats.failed == 0 and processor.stats.exported > 0
    assert set(receiver.encodings) == {"gzip"}
    assert len(receiver.spans()) == processor.stats.exported
    assert processor.stats.cpu_s > 0


def test_the_fast_path_takes_its_timeout_from_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds: an endpoint that accepts and never
    answers fails the export after it, and the spans are counted as failed."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "300")
        processor = OtelProcessor.for_endpoint(f"http://127.0.0.1:{listener.getsockname()[1]}")
        assert isinstance(processor.sink, OtlpHttpSink)
        _run_reference(processor)
        started = time.monotonic()
        processor.shutdown()  # the first batch times out; the rest are not waited on
        assert time.monotonic() - started < 5  # the default would be 10 s
        assert processor.stats.failed > 0 and processor.stats.exported == 0


_values = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=8), max_size=3).map(tuple),
)
_attributes = st.dictionaries(st.text(min_size=1, max_size=10), _values, max_size=6)


def _decoded(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_decoded(v) for v in value.array_value.values)
    return getattr(value, kind)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_attributes, _attributes, st.booleans()), min_size=1, max_size=5))
def test_the_otlp_encoder_round_trips_through_opentelemetry_proto(
    rows: list[tuple[dict[str, Any], dict[str, Any], bool]],
) -> None:
    spans = [
        SpanData(
            trace_id=(1 << 127) + i,
            span_id=i + 1,
            parent_id=0 if i == 0 else 1,
            name=f"span {i}",
            kind="client" if failed else "internal",
            start_ns=1_700_000_000_000_000_000 + i,
            end_ns=1_700_000_000_000_000_500 + i,
            attributes=attrs,
            events=(SpanEvent("an.event", 1_700_000_000_000_000_100, event_attrs),),
            error="it failed" if failed else None,
        )
        for i, (attrs, event_attrs, failed) in enumerate(rows)
    ]
    encoder = _Encoder(default_resource())
    for _ in range(2):  # the second pass is served from the memo
        req = ExportTraceServiceRequest.FromString(encoder.request(spans))
        got = req.resource_spans[0].scope_spans[0].spans
        assert len(got) == len(spans)
        for s, g in zip(spans, got, strict=True):
            assert int.from_bytes(g.trace_id, "big") == s.trace_id
            assert int.from_bytes(g.span_id, "big") == s.span_id
            assert g.name == s.name and g.start_time_unix_nano == s.start_ns
            assert {kv.key: _decoded(kv.value) for kv in g.attributes} == s.attributes
            assert {kv.key: _decoded(kv.value) for kv in g.events[0].attributes} == (
                s.events[0].attributes
            )
            assert (g.status.code == 2) == (s.error is not None)
            assert g.kind == (3 if s.kind == "client" else 1)


def test_serve_exports_the_runs_it_follows_to_an_otlp_endpoint(
    receiver: _Receiver, tmp_path: Path
) -> None:
    """``telic serve --otlp-endpoint``: a run another process writes to the server's ledger
    reaches the receiver live, with the ids an after-the-fact export gives."""
    import httpx

    db = str(tmp_path / "served.db")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "telic", "serve", "--db", db, "--port", str(port)]
    with (
        (tmp_path / "serve.log").open("wb") as log,
        subprocess.Popen(
            [*cmd, "--otlp-endpoint", receiver.url], cwd=tmp_path, stdout=log, stderr=log
        ) as server,
    ):
        try:
            deadline = time.monotonic() + 60
            while not _answers(url + "/health", httpx):
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            proc = _telic("demo", "--instant", "--db", db, "--out", str(tmp_path))
            assert proc.returncode == 0, proc.stderr
            run_id = open_ledger(db).runs()[0].id
            expected = run_spans(open_ledger(db), run_id)
            want = {f"{s.span_id:016x}" for s in expected}
            deadline = time.monotonic() + 120
            while {s.span_id.hex() for _, s in receiver.spans()} < want:
                assert server.poll() is None, "telic serve exited"
                assert time.monotonic() < deadline, "the server's spans never all arrived"
                time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(30)
    assert {s.trace_id.hex() for _, s in receiver.spans()} == {f"{trace_id(run_id):032x}"}


def _answers(url: str, httpx: Any) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_model_run_gives_chat_spans_for_each_attempt_with_usage_and_response() -> None:
    """Model minds against the project's local model server, which fails three times first
    (no answer in time, a 503, a 429 with Retry-After) and answers with cached and reasoning tokens: each attempt
    is a ``chat`` span under the agent's turn; the answer's carries the usage the
    conventions name, the response's id, model and finish reasons; the turn names the
    provider and model."""
    exporter = InMemorySpanExporter()
    with ModelServer() as server:
        server.script(
            Reply.hang(),
            Reply.error(503),
            Reply.error(429, retry_after=0.01),
            Reply.propose(
                {"action": "finish", "args": {"result": "ok"}, "confidence": 0.9},
                input_tokens=1000,
                output_tokens=200,
                cached_tokens=600,
                reasoning_tokens=150,
            ),
        )

        async def main() -> str:
            mind = model_mind(
                "openai:gpt-4.1-mini",
                base_url=server.openai_url,
                scheduler=Limits(backoff_s=0.01, max_retries=3, timeout_s=0.5),
            )
            ledger = open_ledger("memory://")
            processor = OtelProcessor(exporter)
            async with EventKernel(ledger, processors=[processor]) as events:
                config = RunConfig(goal="g", agents=[AgentSpec("planner", "planner", mind)])
                result = await Kernel(ledger, publish=events.publish).run(config, max_ticks=3)
            await mind.aclose()
            return result.run_id

        asyncio.run(main())
    spans = list(exporter.get_finished_spans())
    chats = sorted(
        (s for s in spans if s.name == "chat gpt-4.1-mini"), key=lambda s: s.start_time or 0
    )
    assert len(chats) == len(server.requests) == 4
    hung, failed, limited, answer = (_attrs(s) for s in chats)
    assert hung[error_attributes.ERROR_TYPE] == "timeout"
    assert failed[error_attributes.ERROR_TYPE] == "503"
    assert limited[error_attributes.ERROR_TYPE] == "429"
    assert limited["telic.model.retry_after_s"] == pytest.approx(0.01)
    assert not any(c.status.is_ok for c in chats[:3]) and chats[3].status.is_ok
    assert error_attributes.ERROR_TYPE not in answer
    assert answer[gen_ai.GEN_AI_PROVIDER_NAME] == "openai"
    assert answer[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert answer[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 200
    assert answer[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 600
    assert answer[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 150
    assert answer["telic.model.retries"] == 3
    assert answer[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert isinstance(answer[gen_ai.GEN_AI_RESPONSE_ID], str)
    assert answer[gen_ai.GEN_AI_RESPONSE_MODEL] == "gpt-4.1-mini"
    turn = next(s for s in spans if s.name == "invoke_agent planner")
    assert {c.parent.span_id for c in chats if c.parent} == {turn.context.span_id}  # type: ignore[union-attr]
    assert _attrs(turn)[gen_ai.GEN_AI_PROVIDER_NAME] == "openai"
    assert _attrs(turn)[gen_ai.GEN_AI_REQUEST_MODEL] == "gpt-4.1-mini"


_MODEL_SPEC = """
goal = "Traced model calls"
model = "openai:gpt-4.1-mini"
[budget]
ticks = 3
[scheduler]
max_retries = 2
backoff_s = 0.01
[[agents]]
name = "planner"
role = "planner"
"""


def test_telic_run_exports_live_with_otlp_endpoint(tmp_path: Path, receiver: _Receiver) -> None:
    """``telic run SPEC --otlp-endpoint``: a model run against the local model server (a 503,
    then an answer) arrives at the receiver with a chat span per attempt under the turn."""
    spec = tmp_path / "spec.toml"
    spec.write_text(_MODEL_SPEC)
    db = str(tmp_path / "run.db")
    with ModelServer() as server:
        server.script(Reply.error(503))
        proc = _telic(
            "run", str(spec), "--db", db, "--out", str(tmp_path), "--otlp-endpoint", receiver.url,
            env={"OPENAI_BASE_URL": server.openai_url, "OPENAI_API_KEY": "test-key"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        requests = len(server.requests)
    spans = [span for _, span in receiver.spans()]
    chats = [s for s in spans if s.name == "chat gpt-4.1-mini"]
    assert len(chats) == requests == 2
    kinds = sorted(
        next(_decoded(kv.value) for kv in s.attributes if kv.key == error_attributes.ERROR_TYPE)
        if any(kv.key == error_attributes.ERROR_TYPE for kv in s.attributes)
        else "ok"
        for s in chats
    )
    assert kinds == ["503", "ok"]
    turn = next(s for s in spans if s.name == "invoke_agent planner")
    assert {s.parent_span_id for s in chats} == {turn.span_id}
    assert sum(s.name == "invoke_agent telic" for s in spans) == 1


# -- the exporter process --------------------------------------------------------------------


def _swarm(agents: int) -> RunConfig:
    return RunConfig(
        goal="export",
        agents=[AgentSpec(f"a{i}", "worker", FunctionMind(_remember)) for i in range(agents)],
        budget=Budget(ticks=20),
        policy=Policy(stall_ticks=0, verifier=None),
        return_condition=lambda s: False,
        progress=lambda s: 0.0,
    )


def _remember(view: View) -> Proposal:
    return Proposal(action="remember", args={"key": "step", "value": view.tick})


def _reference_on(db: str, processor: Any) -> str:
    ledger = open_ledger(db)
    clock = VirtualClock()

    async def main() -> str:
        async with EventKernel(ledger, clock=clock, processors=[processor]) as events:
            config, _ = build(DEFAULT_SEED)
            return (await Kernel(ledger, clock=clock, publish=events.publish).run(config)).run_id

    try:
        return clock.run(main())
    finally:
        ledger.close()


def _exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_exporter_process_sends_the_spans_export_otel_gives(
    receiver: _Receiver, tmp_path: Path
) -> None:
    db = str(tmp_path / "ref.db")
    processor = OtelExportProcess(db, receiver.url, interval_s=0.05)
    pid = processor.pid
    assert pid is not None and pid != os.getpid()
    run_id = _reference_on(db, processor)
    expected = run_spans(open_ledger(db), run_id)
    live = receiver.spans()
    assert {(s.span_id.hex(), s.parent_span_id.hex(), s.name) for _, s in live} == {
        (f"{s.span_id:016x}", f"{s.parent_id:016x}" if s.parent_id else "", s.name)
        for s in expected
    }
    assert len(live) == len(expected) == processor.stats.exported
    assert processor.stats.failed == processor.stats.dropped == 0
    assert processor.child_cpu_s > 0 and processor.restarts == 0
    assert processor.pid is None and _exited(pid)  # shut down with the event kernel


def test_the_exporter_process_counts_failures_when_the_endpoint_is_down(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    db = str(tmp_path / "down.db")
    processor = OtelExportProcess(db, f"http://127.0.0.1:{closed}", timeout_s=1.0)
    run_id = _reference_on(db, processor)
    assert open_ledger(db).state_at(run_id)["status"] == "completed"
    assert processor.stats.failed > 0 and processor.stats.exported == 0


def test_a_hanging_endpoint_slows_the_exporter_process_not_the_run(tmp_path: Path) -> None:
    """An endpoint that accepts connections and never answers: each export waits for its
    timeout in the child; the kernel's steps never wait on it, and shutdown ends."""
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(64)  # never accepted, never answered
        db = str(tmp_path / "hang.db")
        processor = OtelExportProcess(
            db, f"http://127.0.0.1:{hang.getsockname()[1]}", timeout_s=1.0, interval_s=0.01
        )
        ledger = open_ledger(db)

        async def main() -> int:
            async with EventKernel(ledger, processors=[processor]) as events:
                run = await Kernel(ledger, clock=SystemClock(), publish=events.publish).boot(
                    _swarm(20)
                )
                for _ in range(10):
                    await run.step()
                behind = processor.stats.queued
                await run.close()
                return behind

        behind = asyncio.run(main())
        ledger.close()
    assert behind > 0  # the run went on while the child waited on the endpoint
    assert processor.stats.exported == 0 and processor.stats.failed > 0


def test_a_dead_exporter_process_is_started_again_and_the_run_goes_on(
    receiver: _Receiver, tmp_path: Path
) -> None:
    db = str(tmp_path / "crash.db")
    processor = OtelExportProcess(db, receiver.url, interval_s=0.01)
    ledger = open_ledger(db)

    async def main() -> tuple[int, int]:
        async with EventKernel(ledger, processors=[processor]) as events:
            run = await Kernel(ledger, clock=SystemClock(), publish=events.publish).boot(_swarm(5))
            await run.step()
            before = processor.force_flush().exported
            first = processor.pid
            assert first is not None
            # it answered, so it has lowered its priority: the kernel gets the CPU first
            own = os.getpriority(os.PRIO_PROCESS, 0)
            assert os.getpriority(os.PRIO_PROCESS, first) == min(19, own + 5)
            os.kill(first, signal.SIGKILL)
            await run.step()  # the kernel does not notice
            processor.force_flush()  # finds the child dead: counts, starts another
            assert processor.restarts == 1 and processor.pid not in (None, first)
            for _ in range(3):
                await run.step()
            after = processor.force_flush().exported
            await run.close()
            return before, after

    before, after = asyncio.run(main())
    ledger.close()
    assert after > before > 0  # the new child exports what follows
    assert processor.stats.dropped > 0  # what the dead one had not finished, counted


def test_live_processor_uses_a_process_only_for_a_ledger_another_process_can_open(
    tmp_path: Path,
) -> None:
    in_memory = live_processor("http://127.0.0.1:4318", "memory://")
    assert isinstance(in_memory, OtelProcessor)
    in_memory.shutdown()
    with pytest.raises(ConfigError, match="in-memory"):
        OtelExportProcess("memory://", "http://127.0.0.1:4318")
    with pytest.raises(ConfigError, match="not an http"):
        OtelExportProcess(str(tmp_path / "x.db"), "ftp://nowhere")


def test_the_exporter_process_skips_and_counts_what_lags_past_max_lag(
    receiver: _Receiver, tmp_path: Path
) -> None:
    """Bounded: a step further than ``max_lag`` transitions behind a run's head reads only the
    last ``max_lag`` of them and counts the rest as dropped (no step happens by itself here:
    the interval is longer than the test)."""
    db = str(tmp_path / "lag.db")
    processor = OtelExportProcess(db, receiver.url, interval_s=3600, max_lag=10)
    ledger = open_ledger(db)

    async def main() -> int:
        async with EventKernel(ledger, processors=[processor]) as events:
            run = await Kernel(ledger, clock=SystemClock(), publish=events.publish).boot(_swarm(5))
            for _ in range(3):
                await run.step()
            head = ledger.run(run.id).head
            assert processor.stats.queued == head  # published, not handed over yet
            stats = processor.force_flush()
            assert stats.queued == 0 and stats.dropped == head - 10
            await run.close()
            return head

    head = asyncio.run(main())
    ledger.close()
    assert head > 10 and processor.stats.dropped == head - 10
