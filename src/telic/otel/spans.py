"""Turn a run's transitions into spans that follow the OpenTelemetry GenAI conventions.

:class:`SpanBuilder` is a pure fold: fed the transitions of one or more runs in ledger order,
it returns the spans that those transitions finished. It reads no clock: a span's times are
its transitions' timestamps, and its ids come from :mod:`telic.otel.ids`, so the live
processor and ``telic export-otel`` give the same spans for the same history.

The tree of a run::

    invoke_agent telic                 one per run segment (boot or resume to the end)
    ├── invoke_agent <agent>           one per agent turn (an agent's proposal in a tick)
    │   ├── chat <model>               one per model call
    │   └── execute_tool <tool>        one per tool call, from tool.started to its outcome
    └── ...

Verdicts (rejections with their check, conflicts, hallucinations, restores, approvals,
exploration, budget and loop warnings, agent failures and restarts) are span events, on the
turn of the agent they concern when it is open, otherwise on the run segment. Prompts,
completions, tool arguments and results are recorded only with ``capture_content=True``.
Aggregating per turn keeps the span count at one per agent and tick (plus model and tool
calls), not one per transition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import orjson
from opentelemetry.semconv._incubating.attributes import (  # pyright: ignore[reportMissingTypeStubs]
    gen_ai_attributes as gen_ai,
)
from opentelemetry.semconv._incubating.attributes import (  # pyright: ignore[reportMissingTypeStubs]
    mcp_attributes as mcp,
)
from opentelemetry.semconv.attributes import error_attributes

from telic.otel.ids import SpanRole, run_key, span_id, trace_id
from telic.transition import Transition

__all__ = ["AttributeValue", "SpanBuilder", "SpanData", "SpanEvent"]

AttributeValue = str | bool | int | float | tuple[str, ...]
"""What an attribute may hold (OpenTelemetry's primitive values, and arrays of strings)."""

# semantic-conventions 0.6x marks the GenAI names deprecated: they moved to the GenAI
# conventions' own repository, unchanged. They are still the published constants.
_OP = gen_ai.GEN_AI_OPERATION_NAME
_OPS = gen_ai.GenAiOperationNameValues  # pyright: ignore[reportDeprecated]
_INVOKE_AGENT: str = _OPS.INVOKE_AGENT.value
_CHAT: str = _OPS.CHAT.value
_EXECUTE_TOOL: str = _OPS.EXECUTE_TOOL.value
_AGENT_NAME = gen_ai.GEN_AI_AGENT_NAME
_AGENT_ID = gen_ai.GEN_AI_AGENT_ID
_CONVERSATION = gen_ai.GEN_AI_CONVERSATION_ID
_ERROR_TYPE = error_attributes.ERROR_TYPE
_TOOLS_CALL: str = mcp.McpMethodNameValues.TOOLS_CALL.value  # pyright: ignore[reportDeprecated]
# Token counts of a model call: the record's field, and its attribute.
_USAGE = (
    ("input_tokens", gen_ai.GEN_AI_USAGE_INPUT_TOKENS),
    ("output_tokens", gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS),
    ("cached_input_tokens", gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
    ("cache_write_tokens", gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS),
    ("reasoning_tokens", gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
)

SWARM = "telic"
"""The agent name of a run segment span (the swarm as one agent)."""

# Kinds recorded as span events, and the payload fields each event carries.
_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "proposal.rejected": ("check", "reason", "proposal"),
    "conflict.detected": ("resource",),
    "conflict.resolved": ("resource", "policy", "winner", "why"),
    "hallucination.detected": ("proposal", "reason"),
    "state.restored": ("target", "tick", "reason"),
    "approval.requested": ("proposal", "tool"),
    "approval.granted": ("proposal", "by"),
    "approval.denied": ("proposal", "by", "reason"),
    "exploration.spawned": ("proposal", "explorer", "question", "confidence"),
    "budget.warning": ("dimension", "spent", "limit"),
    "budget.exhausted": ("dimension", "spent", "limit"),
    "loop.detected": ("pattern", "count"),
    "agent.spawned": ("agent", "role"),
    "agent.failed": ("agent", "error", "message"),
    "agent.restarted": ("agent", "attempt", "reason"),
    "agent.terminated": ("agent", "reason"),
    "supervisor.escalated": ("supervisor", "restarts", "reason"),
    "run.paused": ("reason",),
    "run.forked": ("parent", "at"),
}
_TURN = SpanRole.TURN
_ENDS = {"run.completed": "completed", "run.failed": "failed", "run.stopped": "stopped"}
_TOOL_ENDS = frozenset({"tool.completed", "tool.failed", "tool.timeout", "tool.unknown"})
_EFFECTS = frozenset({"memory.updated", "plan.updated", "belief.updated", "observation.recorded"})


class SpanEvent(NamedTuple):
    """A span event: a verdict or a lifecycle step at a point in time."""

    name: str
    time_ns: int
    attributes: dict[str, AttributeValue]


class SpanData(NamedTuple):
    """A finished span, before it is handed to an exporter (see :mod:`telic.otel.convert`)."""

    trace_id: int
    span_id: int
    parent_id: int
    """0 for the root span of a trace."""
    name: str
    kind: Literal["internal", "client"]
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    events: tuple[SpanEvent, ...]
    error: str | None
    """None when the span succeeded; otherwise the status description."""

    def to_json(self) -> dict[str, Any]:
        """The span as JSON (``telic export-otel --json``), ids in hex as OTLP/JSON has them."""
        return {
            "trace_id": f"{self.trace_id:032x}",
            "span_id": f"{self.span_id:016x}",
            "parent_span_id": f"{self.parent_id:016x}" if self.parent_id else None,
            "name": self.name,
            "kind": self.kind,
            "start_time_unix_nano": self.start_ns,
            "end_time_unix_nano": self.end_ns,
            "attributes": self.attributes,
            "events": [
                {"name": e.name, "time_unix_nano": e.time_ns, "attributes": e.attributes}
                for e in self.events
            ],
            "status": {"code": "error", "message": self.error} if self.error else {"code": "unset"},
        }


class _Open:
    """A span still being built."""

    __slots__ = ("attributes", "end", "error", "events", "kind", "name", "parent", "sid", "start")

    def __init__(
        self,
        name: str,
        sid: int,
        parent: int,
        start: int,
        attributes: dict[str, AttributeValue],
        kind: Literal["internal", "client"] = "internal",
    ) -> None:
        self.name = name
        self.sid = sid
        self.parent = parent
        self.start = start
        self.end = start
        self.attributes = attributes
        self.events: list[SpanEvent] | None = None  # most spans have none: made on demand
        self.error: str | None = None
        self.kind: Literal["internal", "client"] = kind


class _RunTrace:
    """What the builder holds for one run."""

    __slots__ = (
        "agents",
        "ended",
        "key",
        "last_ns",
        "run",
        "segment",
        "tick",
        "tools",
        "trace",
        "turns",
    )

    def __init__(self, run: str) -> None:
        self.run = run
        self.trace = trace_id(run)
        self.key = run_key(run)
        self.segment: _Open | None = None
        self.turns: dict[str, _Open] = {}
        self.tools: dict[str, _Open] = {}
        self.tick = 0
        self.last_ns = 0
        self.ended = False
        """The run ended: what follows (agents stopping) belongs to no segment."""
        self.agents: dict[str, tuple[str, dict[str, AttributeValue]]] = {}
        """By agent: its turn spans' name and the attributes every turn has (made once)."""


def _content(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _attr(value: Any) -> AttributeValue:
    if isinstance(value, str | bool | int | float):
        return value
    return _content(value)


def _failure_type(error: str) -> str:
    """A low-cardinality ``error.type`` for a model attempt that got no HTTP answer (the
    message, with its URL and details, is the span's status description)."""
    if error.startswith("no response within"):
        return "timeout"
    if error.startswith("cannot reach"):
        return "connection_error"
    if error.startswith("unreadable response"):
        return "malformed_response"
    return "_OTHER"  # the conventions' fallback value


def _response_attributes(response: Any, attrs: dict[str, AttributeValue]) -> None:
    """``gen_ai.response.id``, ``.model`` and ``.finish_reasons`` from a provider's reply
    (Chat Completions, Anthropic Messages, the Responses API), when it has them."""
    if not isinstance(response, dict):
        return
    reply: dict[str, Any] = response  # pyright: ignore[reportUnknownVariableType]
    rid = reply.get("id")
    if isinstance(rid, str):
        attrs[gen_ai.GEN_AI_RESPONSE_ID] = rid
    model = reply.get("model")
    if isinstance(model, str):
        attrs[gen_ai.GEN_AI_RESPONSE_MODEL] = model
    reasons: list[str] = []
    choices = reply.get("choices")
    if isinstance(choices, list):
        for c in choices:  # pyright: ignore[reportUnknownVariableType]
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str):  # pyright: ignore[reportUnknownMemberType]
                reasons.append(c["finish_reason"])  # pyright: ignore[reportUnknownArgumentType]
    for key in ("stop_reason", "status"):  # Anthropic; the Responses API
        if isinstance(reply.get(key), str):
            reasons.append(reply[key])
    if reasons:
        attrs[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reasons)


class SpanBuilder:
    """Folds transitions into finished spans; see the module docstring.

    ``feed`` takes transitions in ledger order (several runs may interleave) and returns the
    spans they finished; ``close`` ends every open span at its run's last timestamp (a run
    that has not ended, when the exporter stops) and returns them.
    """

    def __init__(self, *, capture_content: bool = False) -> None:
        self.capture_content = capture_content
        self._runs: dict[str, _RunTrace] = {}

    def feed(self, transitions: Iterable[Transition]) -> list[SpanData]:
        done: list[SpanData] = []
        runs = self._runs
        for t in transitions:
            rt = runs.get(t.run)
            if rt is None:
                if t.kind.startswith("subscri"):  # the event kernel's own records
                    continue
                rt = runs[t.run] = _RunTrace(t.run)
            self._one(rt, t, done)
        return done

    def close(self) -> list[SpanData]:
        done: list[SpanData] = []
        for rt in self._runs.values():
            self._end_segment(rt, rt.last_ns, None, done)
        self._runs.clear()
        return done

    # -- one transition --------------------------------------------------------------------

    def _one(self, rt: _RunTrace, t: Transition, done: list[SpanData]) -> None:
        kind = t.kind
        ns = t.ts * 1000
        rt.last_ns = ns
        data = t.data
        if kind == "proposal.made" or kind == "model.called" or kind == "model.failed":
            turn = rt.turns.get(data["agent"])
            if turn is None:
                turn = self._open_turn(rt, t, ns, data["agent"])
            turn.end = ns
            if kind != "proposal.made":
                chat = self._chat(rt, t, ns, turn.sid, data)
                done.append(chat)
                a = turn.attributes
                a[gen_ai.GEN_AI_PROVIDER_NAME] = chat.attributes[gen_ai.GEN_AI_PROVIDER_NAME]
                a[gen_ai.GEN_AI_REQUEST_MODEL] = chat.attributes[gen_ai.GEN_AI_REQUEST_MODEL]
            else:
                a = turn.attributes
                a["telic.proposal.seq"] = t.seq
                a["telic.proposal.action"] = data["action"]
                a["telic.proposal.confidence"] = data["confidence"]
                if self.capture_content:
                    a["telic.proposal.args"] = _content(data["args"])
                    a["telic.proposal.reason"] = data.get("reason", "")
            return
        if kind == "proposal.accepted":
            turn = rt.turns.get(data["agent"])
            if turn is not None:
                turn.end = ns
                turn.attributes["telic.proposal.verdict"] = "accepted"
            return
        if kind in _EFFECTS:  # an accepted proposal's effect extends the agent's turn
            turn = rt.turns.get(data["agent"])
            if turn is not None:
                turn.end = ns
            return
        if kind == "tool.started":
            self._tool_started(rt, t, ns, data)
            return
        if kind in _TOOL_ENDS:
            self._tool_ended(rt, t, ns, data, done)
            return
        if kind == "tick.started":
            rt.tick = data["tick"]
            if rt.segment is None:
                self._open_segment(rt, t, ns)
            return
        if kind == "tick.completed":
            self._end_turns(rt, done)
            return
        fields = _EVENT_FIELDS.get(kind)
        if fields is not None:
            self._event(rt, t, ns, kind, fields, data)
            return
        if kind == "run.booted" or kind == "run.resumed":
            self._end_segment(rt, ns, None, done)
            rt.ended = False
            self._open_segment(rt, t, ns)
            return
        end = _ENDS.get(kind)
        if end is not None:
            seg = rt.segment
            if seg is not None:
                seg.attributes["telic.run.status"] = end
                seg.attributes["telic.run.reason"] = data["reason"]
            self._end_segment(rt, ns, data["reason"] if end != "completed" else None, done)
            rt.ended = True
            return
        # Effects of an accepted proposal (memory, plan, beliefs, messages, observations,
        # artifacts) extend the agent's turn.
        agent = t.agent
        if agent is not None:
            turn = rt.turns.get(agent)
            if turn is not None:
                turn.end = ns
        elif rt.segment is None and not rt.ended:
            self._open_segment(rt, t, ns)

    # -- spans -----------------------------------------------------------------------------

    def _open_segment(self, rt: _RunTrace, t: Transition, ns: int) -> _Open:
        attrs: dict[str, AttributeValue] = {
            _OP: _INVOKE_AGENT,
            _AGENT_NAME: SWARM,
            _AGENT_ID: rt.run,
            _CONVERSATION: rt.run,
            "telic.run.id": rt.run,
            "telic.run.opened_by": t.kind,
            "telic.seq": t.seq,
        }
        if t.kind == "run.booted":
            data = t.data
            attrs["telic.run.agents"] = len(data["agents"])
            if self.capture_content:
                attrs["telic.run.goal"] = data["goal"]
        seg = rt.segment = _Open(
            f"{_INVOKE_AGENT} {SWARM}", span_id(rt.key, t.seq, SpanRole.RUN), 0, ns, attrs
        )
        return seg

    def _segment(self, rt: _RunTrace, t: Transition, ns: int) -> _Open:
        seg = rt.segment
        return seg if seg is not None else self._open_segment(rt, t, ns)

    def _end_segment(self, rt: _RunTrace, ns: int, error: str | None, done: list[SpanData]) -> None:
        self._end_turns(rt, done)
        for call in rt.tools.values():
            call.end = ns
            call.error = "the run ended before the tool call did"
            call.attributes[_ERROR_TYPE] = "incomplete"
            done.append(self._finish(rt, call))
        rt.tools.clear()
        seg = rt.segment
        if seg is not None:
            seg.end = ns
            seg.error = error
            done.append(self._finish(rt, seg))
            rt.segment = None

    def _open_turn(self, rt: _RunTrace, t: Transition, ns: int, agent: str) -> _Open:
        seg = rt.segment
        if seg is None:
            seg = self._open_segment(rt, t, ns)
        names = rt.agents.get(agent)
        if names is None:
            names = rt.agents[agent] = (
                f"{_INVOKE_AGENT} {agent}",
                {
                    _OP: _INVOKE_AGENT,
                    _AGENT_NAME: agent,
                    _AGENT_ID: f"{rt.run}/{agent}",
                    _CONVERSATION: rt.run,
                },
            )
        attrs = names[1].copy()
        attrs["telic.tick"] = t.tick
        turn = _Open(names[0], span_id(rt.key, t.seq, _TURN), seg.sid, ns, attrs)
        rt.turns[agent] = turn
        return turn

    def _end_turns(self, rt: _RunTrace, done: list[SpanData]) -> None:
        if rt.turns:
            finish = self._finish
            done.extend(finish(rt, turn) for turn in rt.turns.values())
            rt.turns.clear()

    def _chat(
        self, rt: _RunTrace, t: Transition, ns: int, parent: int, data: dict[str, Any]
    ) -> SpanData:
        """A ``chat`` span for a model call: an answer (``model.called``) or a try that got
        none (``model.failed``: a 429, a 5xx, a timeout, a reset), each an attempt."""
        model: str = data["model"]
        provider, sep, name = model.partition(":")
        if not sep:
            provider, name = "unknown", model
        attrs: dict[str, AttributeValue] = {
            _OP: _CHAT,
            gen_ai.GEN_AI_PROVIDER_NAME: provider,
            gen_ai.GEN_AI_REQUEST_MODEL: name,
            _CONVERSATION: rt.run,
            "telic.model.attempt": data["attempt"],
            "telic.model.request_digest": data["request_digest"],
        }
        if t.kind == "model.failed":
            status = data.get("status")
            error: str | None = data["error"]
            attrs[_ERROR_TYPE] = str(status) if status is not None else _failure_type(data["error"])
            if data.get("retry_after_s") is not None:
                attrs["telic.model.retry_after_s"] = data["retry_after_s"]
            if data.get("wait_s") is not None:
                attrs["telic.model.wait_s"] = data["wait_s"]
        else:
            for field, key in _USAGE:
                value = data.get(field)
                if value is not None:
                    attrs[key] = value
            attrs["telic.model.cost"] = data["cost"]
            if "currency" in data:
                attrs["telic.model.currency"] = data["currency"]
                attrs["telic.model.cost_known"] = data["cost_known"]
            attrs["telic.model.retries"] = data.get("retries", 0)
            _response_attributes(data["response"], attrs)
            error = data.get("error")
            if error is not None:
                attrs[_ERROR_TYPE] = "malformed_output"
            if self.capture_content:
                attrs[gen_ai.GEN_AI_OUTPUT_MESSAGES] = _content(data["response"])
        latency_ns = int(float(data["latency_ms"]) * 1_000_000)
        return SpanData(
            rt.trace,
            span_id(rt.key, t.seq, SpanRole.CHAT),
            parent,
            f"{_CHAT} {name}",
            "client",
            ns - latency_ns,
            ns,
            attrs,
            (),
            error,
        )

    def _tool_started(self, rt: _RunTrace, t: Transition, ns: int, data: dict[str, Any]) -> None:
        agent: str = data["agent"]
        turn = rt.turns.get(agent)
        if turn is not None:
            turn.end = ns
            parent = turn.sid
        else:
            parent = self._segment(rt, t, ns).sid
        name: str = data["tool"]
        attrs: dict[str, AttributeValue] = {
            _OP: _EXECUTE_TOOL,
            gen_ai.GEN_AI_TOOL_NAME: name,
            gen_ai.GEN_AI_TOOL_CALL_ID: data["call_id"],
            gen_ai.GEN_AI_TOOL_TYPE: "function",
            _AGENT_NAME: agent,
            "telic.tool.attempt": data.get("attempt", 1),
            "telic.tool.idempotent": data.get("idempotent", False),
        }
        source: str = data.get("source", "")
        if source:
            attrs["telic.tool.source"] = source
            if source.startswith("mcp:"):  # a tools/call of an MCP server
                attrs[mcp.MCP_METHOD_NAME] = _TOOLS_CALL
        version: str = data.get("version", "")
        if version:
            attrs["telic.tool.version"] = version
        if self.capture_content:
            attrs[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS] = _content(data["args"])
        previous = rt.tools.pop(data["call_id"], None)
        if previous is not None:  # a retry: the earlier attempt ended where this one starts
            previous.end = ns
            previous.error = previous.error or "retried"
        rt.tools[data["call_id"]] = _Open(
            f"{_EXECUTE_TOOL} {name}", span_id(rt.key, t.seq, SpanRole.TOOL), parent, ns, attrs
        )

    def _tool_ended(
        self, rt: _RunTrace, t: Transition, ns: int, data: dict[str, Any], done: list[SpanData]
    ) -> None:
        call = rt.tools.pop(data["call_id"], None)
        if call is None:
            return  # started before the builder saw the run
        call.end = ns
        kind = t.kind
        if kind == "tool.completed":
            if self.capture_content:
                call.attributes[gen_ai.GEN_AI_TOOL_CALL_RESULT] = _content(data["result"])
        elif kind == "tool.failed":
            call.attributes[_ERROR_TYPE] = data["error"]
            call.error = data["message"] or data["error"]
        elif kind == "tool.timeout":
            call.attributes[_ERROR_TYPE] = "timeout"
            call.error = f"no result within {data['timeout_s']:g} s"
        else:
            call.attributes[_ERROR_TYPE] = "unknown_outcome"
            call.error = "started before a crash with no recorded result"
        done.append(self._finish(rt, call))
        turn = rt.turns.get(data["agent"])
        if turn is not None:
            turn.end = ns

    def _event(
        self,
        rt: _RunTrace,
        t: Transition,
        ns: int,
        kind: str,
        fields: tuple[str, ...],
        data: dict[str, Any],
    ) -> None:
        if rt.ended and rt.segment is None:
            return
        attrs: dict[str, AttributeValue] = {"telic.seq": t.seq}
        for f in fields:
            v = data.get(f)
            if v is not None:
                attrs[f"telic.{f}"] = _attr(v)
        agent = t.agent
        target = rt.turns.get(agent) if agent is not None else None
        if target is None:
            target = self._segment(rt, t, ns)
        else:
            target.end = ns
            if kind == "proposal.rejected":
                target.attributes["telic.proposal.verdict"] = "rejected"
                target.attributes["telic.proposal.check"] = data["check"]
        if target.events is None:
            target.events = []
        target.events.append(SpanEvent(kind, ns, attrs))

    def _finish(self, rt: _RunTrace, s: _Open) -> SpanData:
        return SpanData(
            rt.trace,
            s.sid,
            s.parent,
            s.name,
            s.kind,
            s.start,
            s.end,
            s.attributes,
            tuple(s.events) if s.events else (),
            s.error,
        )
