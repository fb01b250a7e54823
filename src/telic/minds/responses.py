"""The OpenAI Responses API adapter (``api="responses"``), for OpenAI and the servers that
speak it.

Talks through the official SDK's ``AsyncOpenAI`` client (the ``openai`` extra), posting to
``/responses``. The system prompt goes in ``instructions``; the proposal schema is offered
as a forced ``propose`` function, or with ``structured="json"`` as a ``json_schema`` text
format. A repair sends the model's output items back with a ``function_call_output`` (or a
user message) saying what was wrong. Usage names cached input and reasoning tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from telic.minds.endpoint import Endpoint
from telic.minds.model import Reply, as_list, as_map
from telic.minds.openai import OpenAIMind
from telic.minds.prompt import PROPOSE_DESCRIPTION, PROPOSE_TOOL

__all__ = ["ResponsesMind"]


class ResponsesMind(OpenAIMind):
    """A mind that asks an OpenAI Responses endpoint."""

    @property
    def limit_key(self) -> str:
        return "max_output_tokens"

    def first_request(self, system: str, user: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "instructions": system,
            "input": [{"role": "user", "content": user}],
            "max_output_tokens": self.max_tokens,
            "store": False,
        }
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.structured == "tool":
            request["tools"] = [
                {
                    "type": "function",
                    "name": PROPOSE_TOOL,
                    "description": PROPOSE_DESCRIPTION,
                    "parameters": self.schema(),
                    "strict": False,
                }
            ]
            request["tool_choice"] = {"type": "function", "name": PROPOSE_TOOL}
        else:
            request["text"] = {
                "format": {"type": "json_schema", "name": "proposal", "schema": self.schema()}
            }
        return request

    def repair_request(
        self, request: dict[str, Any], response: Mapping[str, Any], problem: str
    ) -> dict[str, Any]:
        items: list[Any] = []
        answers: list[dict[str, Any]] = []
        for i, raw in enumerate(as_list(response.get("output"))):
            item = as_map(raw)
            if item.get("type") == "function_call":
                call_id = item.get("call_id") or f"call_{i}"
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call_id,
                        "name": item.get("name", ""),
                        "arguments": item.get("arguments", ""),
                    }
                )
                answers.append(
                    {
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": f"Error: {problem}",
                    }
                )
            elif item.get("type") == "message":
                text = "".join(
                    str(as_map(c).get("text", ""))
                    for c in as_list(item.get("content"))
                    if as_map(c).get("type") == "output_text"
                )
                items.append({"role": "assistant", "content": text or "(no answer)"})
        if not answers:
            answers.append({"role": "user", "content": f"Your reply could not be used: {problem}"})
        return {**request, "input": [*request["input"], *items, *answers]}

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.provider, self.name, "responses", self.scheduler.limits.timeout_s + 5)

    def read(self, response: Mapping[str, Any]) -> Reply:
        calls: list[tuple[str, str | Mapping[str, Any]]] = []
        texts: list[str] = []
        for raw in as_list(response.get("output")):
            item = as_map(raw)
            if item.get("type") == "function_call":
                calls.append((str(item.get("name", "")), item.get("arguments") or ""))
            elif item.get("type") == "message":
                for c in as_list(item.get("content")):
                    part = as_map(c)
                    if part.get("type") == "output_text":
                        texts.append(str(part.get("text", "")))
        usage = as_map(response.get("usage"))
        incomplete = as_map(response.get("incomplete_details"))
        return Reply(
            calls=tuple(calls),
            text="".join(texts),
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            truncated=incomplete.get("reason") == "max_output_tokens",
            cached_input_tokens=int(
                as_map(usage.get("input_tokens_details")).get("cached_tokens") or 0
            ),
            reasoning_tokens=int(
                as_map(usage.get("output_tokens_details")).get("reasoning_tokens") or 0
            ),
        )
