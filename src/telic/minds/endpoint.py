"""One HTTP request to a model endpoint, described so that any process can send it.

A :class:`ModelMind <telic.minds.model.ModelMind>` sends through its own SDK client
(:meth:`Endpoint.post`). A mind whose requests are sent elsewhere (a Ray task on a node with
the resources its agent declares, :mod:`telic.cluster.model_calls`) hands its
:class:`Endpoint` and the request to a :class:`RemoteSend` instead: the endpoint is a small
frozen record (the provider, the API, the timeout) that pickles, and
:meth:`Endpoint.send_once` makes a client where it runs, sends, and closes it. Either way the
SDK's errors are mapped here, once: :class:`~telic.minds.scheduler.Retryable` for what may be
tried again (429, 408, 409, 5xx, a connection failure, an unreadable response),
:class:`~telic.errors.ProviderError` for what may not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from telic.errors import ProviderError
from telic.minds.providers import Provider, unreachable_hint
from telic.minds.scheduler import Retryable, parse_retry_after

__all__ = ["Api", "Endpoint", "RemoteSend", "Sent"]

Api = Literal["chat", "responses", "messages"]
"""OpenAI Chat Completions, OpenAI Responses, Anthropic Messages."""

_PATHS: dict[Api, str] = {
    "chat": "/chat/completions",
    "responses": "/responses",
    "messages": "/v1/messages",
}

_RETRY_STATUSES = frozenset({408, 409, 429})
"""Statuses worth retrying besides every 5xx."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one mind's requests go and how (picklable: no client, no connection)."""

    provider: Provider
    """Base URL and key (a client made elsewhere is made from these)."""
    name: str
    """The mind's model string, for error messages."""
    api: Api
    timeout_s: float
    """The client's own timeout (the scheduler's per-try timeout, plus a margin)."""

    @property
    def base_url(self) -> str:
        return self.provider.base_url

    def client(self) -> Any:
        """A new SDK client for this endpoint (close it when done)."""
        if self.provider.wire == "anthropic":
            return self.provider.anthropic_client(timeout_s=self.timeout_s)
        return self.provider.openai_client(timeout_s=self.timeout_s)

    async def send_once(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request`` with a client made for it (the way another process sends)."""
        client = self.client()
        try:
            return await self.post(client, request)
        finally:
            await client.close()

    async def post(self, client: Any, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request`` with the SDK client's low-level ``post`` and map the SDK's errors.

        ``post`` is the SDKs' documented way to send a prepared body: the request is already
        plain JSON, so the per-call parameter transform (milliseconds on a large tool schema)
        is skipped, while auth, base URL, errors and the typed response stay the SDK's own.
        Both official SDKs share the error classes used here.
        """
        sdk, cast_to = _sdk(self.api)
        where = str(getattr(client, "base_url", self.base_url))
        try:
            response: Any = await client.post(
                _PATHS[self.api], body=request, cast_to=cast_to, options={"timeout": self.timeout_s}
            )
        except sdk.APIStatusError as exc:
            status: int = exc.status_code
            reason = f"HTTP {status} from {where}: {exc.message}"
            if status in _RETRY_STATUSES or status >= 500:
                raise Retryable(
                    reason, retry_after=parse_retry_after(exc.response.headers), status=status
                ) from None
            raise ProviderError(f"{self.name}: {reason}") from None
        except sdk.APIConnectionError as exc:
            hint = unreachable_hint(self.provider)
            raise Retryable(f"cannot reach {where} ({hint}): {exc}") from None
        except (sdk.APIResponseValidationError, ValueError) as exc:
            raise Retryable(f"unreadable response from {where}: {exc}") from None
        if not hasattr(response, "model_dump"):
            raise Retryable(f"unreadable response from {where}: {response!r:.200}")
        result: dict[str, Any] = response.model_dump(mode="json", exclude_none=True)
        return result


def _sdk(api: Api) -> tuple[Any, type[Any]]:
    """The SDK module (for its error classes) and the response type of ``api``."""
    if api == "messages":
        import anthropic
        from anthropic.types import Message

        return anthropic, Message
    import openai

    if api == "responses":
        from openai.types.responses import Response

        return openai, Response
    from openai.types.chat import ChatCompletion

    return openai, ChatCompletion


@dataclass(frozen=True, slots=True)
class Sent:
    """What a remote send returns: the response, and where it was sent from."""

    response: dict[str, Any]
    node: str | None = None
    """The cluster node that sent it (recorded on the ``model.called``)."""


class RemoteSend(Protocol):
    """Sends one request from somewhere else (one try: the scheduler around it retries).

    Raises :class:`~telic.minds.scheduler.Retryable` (with its ``node`` when known) for a
    try that may be repeated, :class:`~telic.errors.ProviderError` for one that may not."""

    async def __call__(self, endpoint: Endpoint, request: dict[str, Any]) -> Sent: ...
