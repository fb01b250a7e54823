"""The OpenAI chat-completions adapter: OpenAI, vLLM, Ollama, llama.cpp, LM Studio.

Talks through the official SDK's ``AsyncOpenAI`` client (the ``openai`` extra). The proposal
schema is offered as a forced ``propose`` function; with ``structured="json"`` it is a
``json_schema`` response format instead, for servers without tool calling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from telic.minds.endpoint import Endpoint
from telic.minds.model import ModelMind, Reply, as_list, as_map
from telic.minds.prompt import PROPOSE_DESCRIPTION, PROPOSE_TOOL

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["OpenAIMind"]


class OpenAIMind(ModelMind):
    """A mind that asks an OpenAI-compatible chat-completions endpoint."""

    client: AsyncOpenAI

    def __init__(self, *args: Any, client: AsyncOpenAI | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owns_client = client is None
        self.client = client or self.provider.openai_client(
            timeout_s=self.scheduler.limits.timeout_s + 5
        )

    @property
    def base_url(self) -> str:
        return str(self.client.base_url)

    @property
    def limit_key(self) -> str:
        # OpenAI itself wants max_completion_tokens; other servers still read max_tokens.
        return "max_completion_tokens" if self.provider.name == "openai" else "max_tokens"

    def first_request(self, system: str, user: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
        }
        request[self.limit_key] = self.max_tokens
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.structured == "tool":
            request["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": PROPOSE_TOOL,
                        "description": PROPOSE_DESCRIPTION,
                        "parameters": self.schema(),
                    },
                }
            ]
            request["tool_choice"] = {"type": "function", "function": {"name": PROPOSE_TOOL}}
        else:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "proposal", "schema": self.schema()},
            }
        return request

    def repair_request(
        self, request: dict[str, Any], response: Mapping[str, Any], problem: str
    ) -> dict[str, Any]:
        message = _message(response)
        content: Any = message.get("content")
        tool_calls: list[dict[str, Any]] = []
        for i, tc in enumerate(as_list(message.get("tool_calls"))):
            fn = as_map(as_map(tc).get("function"))
            tool_calls.append(
                {
                    "id": as_map(tc).get("id") or f"call_{i}",
                    "type": "function",
                    "function": {"name": fn.get("name", ""), "arguments": fn.get("arguments", "")},
                }
            )
        assistant: dict[str, Any] = {"role": "assistant", "content": content or ""}
        if tool_calls:
            assistant["tool_calls"] = tool_calls
        messages = [*request["messages"], assistant]
        if tool_calls:
            messages.extend(
                {"role": "tool", "tool_call_id": tc["id"], "content": f"Error: {problem}"}
                for tc in tool_calls
            )
        else:
            messages.append({"role": "user", "content": f"Your reply could not be used: {problem}"})
        return {**request, "messages": messages}

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.provider, self.name, "chat", self.scheduler.limits.timeout_s + 5)

    def read(self, response: Mapping[str, Any]) -> Reply:
        message = _message(response)
        calls: list[tuple[str, str | Mapping[str, Any]]] = []
        for tc in as_list(message.get("tool_calls")):
            fn = as_map(as_map(tc).get("function"))
            calls.append((str(fn.get("name", "")), fn.get("arguments") or ""))
        legacy = as_map(message.get("function_call"))
        if legacy:
            calls.append((str(legacy.get("name", "")), legacy.get("arguments") or ""))
        content: Any = message.get("content")
        usage = as_map(response.get("usage"))
        choices = as_list(response.get("choices"))
        finish: Any = as_map(choices[0]).get("finish_reason") if choices else None
        return Reply(
            calls=tuple(calls),
            text=content if isinstance(content, str) else "",
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            truncated=finish == "length",
            cached_input_tokens=int(
                as_map(usage.get("prompt_tokens_details")).get("cached_tokens") or 0
            ),
            reasoning_tokens=int(
                as_map(usage.get("completion_tokens_details")).get("reasoning_tokens") or 0
            ),
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.close()


def _message(response: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = as_list(response.get("choices"))
    return as_map(as_map(choices[0]).get("message")) if choices else {}
