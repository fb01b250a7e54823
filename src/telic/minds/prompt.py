"""What a model mind says and how it reads the answer, whatever the provider.

- :func:`proposal_schema`: the JSON schema of a proposal, offered as the ``propose`` tool or
  as a response format;
- :func:`render_view`: the user message, built from the :class:`~telic.minds.View` only
  (deterministic, so the same view gives the same request digest);
- :func:`read_proposal`: a reply's candidate (tool arguments or text) turned into a
  :class:`~telic.proposal.Proposal`, or an :class:`Unusable` saying what to fix.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

import orjson
from pydantic import ValidationError

from telic.canonical import encode, hex_digest
from telic.minds.base import View
from telic.proposal import Proposal

__all__ = [
    "PROPOSE_TOOL",
    "Unusable",
    "as_list",
    "as_map",
    "proposal_schema",
    "read_proposal",
    "render_view",
    "request_digest",
    "view_priority",
]

PROPOSE_TOOL: Final = "propose"
"""The name of the function a model calls to answer."""
PROPOSE_DESCRIPTION: Final = "Make your one proposal for this turn (see the system prompt)."
_MAX_OBSERVATION_CHARS: Final = 4000


class Unusable(Exception):
    """A reply that is not a valid proposal; ``problem`` is told to the model to repair it."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@cache
def _schema() -> str:
    schema = Proposal.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})
    props: dict[str, Any] = schema["properties"]
    props.pop("model_calls", None)
    for name in ("resource", "cost"):  # optional: say so plainly for small models
        props[name].pop("default", None)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref: Any = node.get("$ref")  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
            if isinstance(ref, str):
                return inline(defs[ref.rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}  # pyright: ignore[reportUnknownVariableType]
        if isinstance(node, list):
            return [inline(v) for v in node]  # pyright: ignore[reportUnknownVariableType]
        return node

    inlined: dict[str, Any] = inline(schema)
    inlined.pop("title", None)
    inlined.pop("description", None)
    inlined["required"] = ["action", "args", "confidence", "reason"]
    return json.dumps(inlined, sort_keys=True)


def proposal_schema() -> dict[str, Any]:
    """The JSON schema of a proposal as a model should produce it (a fresh copy)."""
    result: dict[str, Any] = json.loads(_schema())
    return result


def request_digest(request: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the request's canonical encoding: what replay looks up."""
    return hex_digest(encode(request))


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _clip(text: str, limit: int = _MAX_OBSERVATION_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty list (replies are read defensively)."""
    return value if isinstance(value, list) else []  # pyright: ignore[reportUnknownVariableType]


def as_map(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}  # pyright: ignore[reportUnknownVariableType]


def view_priority(view: View) -> int:
    """The agent's priority as declared at boot (0 when not declared)."""
    for agent in view.state.roster:
        if agent.name == view.agent:
            return agent.priority
    return 0


def render_view(view: View) -> str:
    """The user message for ``view``: goal, who the agent is, budget, tools, state, observations."""
    parts = [
        f"# Goal\n{view.goal}",
        f"# You\nagent: {view.agent}\nrole: {view.role}\ntick: {view.tick}",
    ]
    if view.question:
        parts.append(f"# Your question (you are an explorer)\n{view.question}")
    budget = view.budget_left
    if budget:
        currency = view.state.currency
        parts.append(f"# Budget left (cost in {currency})\n{_json(budget)}")
    if view.tools:
        lines = [
            '# Tools you may call (action "tool", args {"tool": name, "args": {...}})',
        ]
        for t in view.tools:
            flag = " [high impact: needs approval]" if t.high_impact else ""
            desc = f": {t.description}" if t.description else ""
            lines.append(f"- {t.name}{flag}{desc}\n  args schema: {_json(dict(t.schema))}")
        parts.append("\n".join(lines))
    else:
        parts.append("# Tools\nNone: you cannot use the tool action.")
    others = [f"{a.name} ({a.role})" for a in view.state.roster if a.name != view.agent]
    if others:
        parts.append("# Other agents\n" + ", ".join(others))
    parts.append(f"# Plan so far\n{_json(dict(view.plan))}")
    parts.append(f"# Beliefs of the run\n{_json(dict(view.beliefs))}")
    parts.append(f"# Your memory\n{_json(dict(view.memory))}")
    observations = view.observations
    if observations:
        lines = ["# Your recent observations (cite their seq as evidence)"]
        for obs in observations:
            content = _clip(_json(obs.content))
            lines.append(f"- seq {obs.seq} [{obs.source}]: {content}")
        parts.append("\n".join(lines))
    else:
        parts.append("# Your recent observations\nNone yet.")
    parts.append("# Your turn\nMake exactly one proposal.")
    return "\n\n".join(parts)


_FENCE = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


def _json_in_text(text: str) -> Any:
    """The JSON object in a text reply: the whole text, a fenced block, or the outer braces."""
    candidates = [text.strip()]
    fenced = _FENCE.search(text)
    if fenced:
        candidates.append(fenced.group(1))
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for c in candidates:
        try:
            return json.loads(c)
        except ValueError:
            continue
    if start < 0:
        raise Unusable(
            f"the reply is prose, not a proposal; call the `{PROPOSE_TOOL}` function "
            "(or answer with one JSON object) with your proposal"
        )
    raise Unusable("the reply's JSON is not valid; answer with one well-formed JSON object")


def read_proposal(candidate: str | Mapping[str, Any] | None, text: str) -> Proposal:
    """Validate a reply: ``candidate`` is the ``propose`` call's arguments (a JSON string or
    an object) or None when the model wrote ``text`` instead."""
    data: Any
    if candidate is None:
        if not text.strip():
            raise Unusable(f"the reply is empty; call the `{PROPOSE_TOOL}` function")
        data = _json_in_text(text)
    elif isinstance(candidate, str):
        try:
            data = json.loads(candidate)
        except ValueError as exc:
            raise Unusable(
                f"the `{PROPOSE_TOOL}` arguments are not valid JSON ({exc}); send one JSON object"
            ) from None
    else:
        data = copy.deepcopy(dict(candidate))
    if not isinstance(data, dict):
        raise Unusable(f"a proposal is a JSON object, got {type(data).__name__}")
    if "model_calls" in data:
        raise Unusable("`model_calls` is not a proposal field; leave it out")
    try:
        return Proposal.model_validate(data)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(proposal)'}: {e['msg']}" for e in exc.errors()[:8]
        )
        raise Unusable(f"the proposal does not match the schema: {detail}") from None
