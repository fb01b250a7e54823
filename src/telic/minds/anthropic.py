"""The Anthropic messages adapter.

Talks through the official SDK's ``AsyncAnthropic`` client (the ``anthropic`` extra). The
proposal schema is offered as a forced ``propose`` tool; with ``structured="json"`` the
schema goes into the system prompt and the reply is read as one JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from telic.minds.endpoint import Endpoint
from telic.minds.model import ModelMind, Reply, as_list, as_map
from telic.minds.prompt import PROPOSE_DESCRIPTION, PROPOSE_TOOL

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = ["AnthropicMind"]


class AnthropicMind(ModelMind):
    """A mind that asks the Anthropic messages API."""

    client: AsyncAnthropic

    def __init__(self, *args: Any, client: AsyncAnthropic | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owns_client = client is None
        self.client = client or self.provider.anthropic_client(
            timeout_s=self.scheduler.limits.timeout_s + 5
        )

    @property
    def base_url(self) -> str:
        return str(self.client.base_url)

    def first_request(self, system: str, user: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": user}],
        }
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.structured == "tool":
            request["system"] = system
            request["tools"] = [
                {
                    "name": PROPOSE_TOOL,
                    "description": PROPOSE_DESCRIPTION,
                    "input_schema": self.schema(),
                }
            ]
            request["tool_choice"] = {"type": "tool", "name": PROPOSE_TOOL}
        else:
            schema = json.dumps(self.schema(), sort_keys=True)
            request["system"] = (
                f"{system}\nReply with one JSON object matching this JSON schema, and nothing "
                f"else:\n{schema}\n"
            )
        return request

    def repair_request(
        self, request: dict[str, Any], response: Mapping[str, Any], problem: str
    ) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = []
        uses: list[str] = []
        for i, item in enumerate(as_list(response.get("content"))):
            block = as_map(item)
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                blocks.append({"type": "text", "text": block["text"]})
            elif kind == "tool_use":
                use_id = block.get("id") or f"toolu_{i}"
                uses.append(use_id)
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": use_id,
                        "name": block.get("name", ""),
                        "input": block.get("input") or {},
                    }
                )
        if not blocks:
            blocks.append({"type": "text", "text": "(no answer)"})
        answer: Any
        if uses:
            answer = [
                {
                    "type": "tool_result",
                    "tool_use_id": use_id,
                    "content": f"Error: {problem}",
                    "is_error": True,
                }
                for use_id in uses
            ]
        else:
            answer = f"Your reply could not be used: {problem}"
        messages = [
            *request["messages"],
            {"role": "assistant", "content": blocks},
            {"role": "user", "content": answer},
        ]
        return {**request, "messages": messages}

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.provider, self.name, "messages", self.scheduler.limits.timeout_s + 5)

    def read(self, response: Mapping[str, Any]) -> Reply:
        calls: list[tuple[str, str | Mapping[str, Any]]] = []
        texts: list[str] = []
        for item in as_list(response.get("content")):
            block = as_map(item)
            kind = block.get("type")
            if kind == "tool_use":
                tool_input: Any = block.get("input")
                args: str | Mapping[str, Any] = (
                    tool_input if isinstance(tool_input, str) else as_map(tool_input)
                )
                calls.append((str(block.get("name", "")), args))
            elif kind == "text":
                texts.append(str(block.get("text", "")))
        usage = as_map(response.get("usage"))
        # Anthropic counts cache reads and writes apart from input_tokens; the record's
        # input is all of them, with the cached parts named (they are billed differently).
        read = int(usage.get("cache_read_input_tokens") or 0)
        written = int(usage.get("cache_creation_input_tokens") or 0)
        return Reply(
            calls=tuple(calls),
            text="".join(texts),
            input_tokens=int(usage.get("input_tokens") or 0) + read + written,
            output_tokens=int(usage.get("output_tokens") or 0),
            truncated=response.get("stop_reason") == "max_tokens",
            cached_input_tokens=read,
            cache_write_tokens=written,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.close()
