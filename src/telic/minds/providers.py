"""Providers: how to get an authenticated SDK client for a model string.

A provider knows where a model lives and how to authenticate; it knows nothing about
proposals (that is the adapter's job, :mod:`telic.minds.openai` and
:mod:`telic.minds.anthropic`). Model strings are ``<provider>:<model>``:

==============  =================  ===============================  ===================
prefix          wire format        default base URL                 key
==============  =================  ===============================  ===================
``openai``      OpenAI chat        https://api.openai.com/v1        ``OPENAI_API_KEY``
``anthropic``   Anthropic messages https://api.anthropic.com        ``ANTHROPIC_API_KEY``
``ollama``      OpenAI chat        http://localhost:11434/v1        none
``vllm``        OpenAI chat        http://localhost:8000/v1         ``VLLM_API_KEY``, optional
``lmstudio``    OpenAI chat        http://localhost:1234/v1         none
``llamacpp``    OpenAI chat        http://localhost:8080/v1         none
==============  =================  ===============================  ===================

Each preset's base URL can be overridden with ``base_url=`` or its environment variable
(``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``, ``OLLAMA_BASE_URL``, ...); for Ollama, its own
``OLLAMA_HOST`` (``127.0.0.1:11434``, ``http://box:11434``, ``0.0.0.0``) works too. A URL is
accepted with or without the API's ``/v1``: OpenAI-compatible URLs get it added when they
have no path, Anthropic URLs have it removed (the SDK adds it).

:func:`check_endpoint` tries a connection (no request, nothing spent) so that a run can say
``cannot reach http://127.0.0.1:11434/v1 (is Ollama running? ...)`` before it starts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from telic.errors import EndpointUnreachable, MissingCredentials, MissingExtra, UnknownProvider

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from openai import AsyncOpenAI

__all__ = [
    "PRESETS",
    "Preset",
    "Provider",
    "WireFormat",
    "check_endpoint",
    "is_loopback",
    "parse_model",
    "resolve_provider",
    "unreachable_hint",
]

WireFormat = Literal["openai", "anthropic"]
"""Which API a provider speaks: OpenAI chat completions or Anthropic messages."""

_LOCAL_KEY = "not-needed"
"""Local servers take any key; the OpenAI SDK insists on having one."""


@dataclass(frozen=True, slots=True)
class Preset:
    """What a model-string prefix stands for."""

    name: str
    wire: WireFormat
    base_url: str | None
    """None means the SDK's own default (the vendor's public endpoint)."""
    key_env: str | None
    """The environment variable holding the API key, if the provider uses one."""
    key_required: bool
    base_url_env: str
    """The environment variable that overrides :attr:`base_url`."""
    max_concurrent: int = 8
    """Default concurrency for this provider's scheduler."""


PRESETS: Mapping[str, Preset] = {
    p.name: p
    for p in (
        Preset("openai", "openai", None, "OPENAI_API_KEY", True, "OPENAI_BASE_URL"),
        Preset("anthropic", "anthropic", None, "ANTHROPIC_API_KEY", True, "ANTHROPIC_BASE_URL"),
        Preset("ollama", "openai", "http://localhost:11434/v1", None, False, "OLLAMA_BASE_URL", 4),
        Preset(
            "vllm", "openai", "http://localhost:8000/v1", "VLLM_API_KEY", False, "VLLM_BASE_URL"
        ),
        Preset(
            "lmstudio", "openai", "http://localhost:1234/v1", None, False, "LMSTUDIO_BASE_URL", 4
        ),
        Preset(
            "llamacpp", "openai", "http://localhost:8080/v1", None, False, "LLAMACPP_BASE_URL", 4
        ),
    )
}
"""Every known model-string prefix."""

_DEFAULT_URLS: Mapping[WireFormat, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}


def parse_model(model: str) -> tuple[Preset, str]:
    """Split ``"openai:gpt-4.1-mini"`` into its preset and the provider's model name."""
    prefix, sep, name = model.partition(":")
    preset = PRESETS.get(prefix.strip().lower())
    if not sep or preset is None or not name.strip():
        raise UnknownProvider(model, sorted(PRESETS))
    return preset, name.strip()


@dataclass(frozen=True, slots=True)
class Provider:
    """A resolved endpoint: where to send requests and with which key."""

    preset: Preset
    base_url: str
    api_key: str = field(repr=False)
    """Never in a repr (a provider travels in Ray task arguments and may be logged)."""

    @property
    def name(self) -> str:
        return self.preset.name

    @property
    def wire(self) -> WireFormat:
        return self.preset.wire

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity for sharing one scheduler: minds on the same endpoint with the same key
        share its limits (the key itself is not kept, only a digest of it)."""
        digest = hashlib.sha256(self.api_key.encode()).hexdigest()[:16]
        return (self.preset.name, self.base_url, digest)

    @property
    def local(self) -> bool:
        """True when the endpoint is on this machine (loopback)."""
        return is_loopback(self.base_url)

    def openai_client(self, *, timeout_s: float | None = None) -> AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` client; the SDK's own retries are off (the scheduler retries)."""
        try:
            from openai import AsyncOpenAI
        except ImportError:
            raise MissingExtra("openai", "openai") from None
        return AsyncOpenAI(
            api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=timeout_s
        )

    def anthropic_client(self, *, timeout_s: float | None = None) -> AsyncAnthropic:
        """An ``anthropic.AsyncAnthropic`` client; the SDK's own retries are off."""
        try:
            from anthropic import AsyncAnthropic
        except ImportError:
            raise MissingExtra("anthropic", "anthropic") from None
        return AsyncAnthropic(
            api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=timeout_s
        )


def resolve_provider(
    preset: Preset | str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Provider:
    """Find the base URL and key for ``preset`` (a :class:`Preset` or a prefix such as ``"ollama"``).

    Explicit arguments win over the environment, the environment over the preset. A provider
    that needs a key and has none raises :class:`~telic.errors.MissingCredentials`.
    """
    if isinstance(preset, str):
        found = PRESETS.get(preset.lower())
        if found is None:
            raise UnknownProvider(preset, sorted(PRESETS))
        preset = found
    environ: Mapping[str, str] = os.environ if env is None else env
    url = (
        base_url
        or environ.get(preset.base_url_env)
        or (_ollama_host(environ.get("OLLAMA_HOST", "")) if preset.name == "ollama" else None)
        or preset.base_url
        or _DEFAULT_URLS[preset.wire]
    )
    url = _api_url(url.strip().rstrip("/"), preset.wire)
    key = api_key or (environ.get(preset.key_env) if preset.key_env else None)
    if not key:
        if preset.key_required and not is_loopback(url):
            raise MissingCredentials(preset.name, preset.key_env or "an API key")
        key = _LOCAL_KEY
    return Provider(preset=preset, base_url=url.rstrip("/"), api_key=key)


def _ollama_host(host: str) -> str | None:
    """Ollama's ``OLLAMA_HOST`` (``host[:port]`` or a URL) as an OpenAI-compatible base URL."""
    host = host.strip()
    if not host:
        return None
    if "://" not in host:
        host = "http://" + host
    parts = urlsplit(host)
    name = parts.hostname or "127.0.0.1"
    if name in ("0.0.0.0", "::"):  # where the server listens, not where to connect
        name = "127.0.0.1"
    if ":" in name:
        name = f"[{name}]"
    return f"{parts.scheme}://{name}:{parts.port or 11434}/v1"


def _api_url(url: str, wire: WireFormat) -> str:
    """Accept a base URL with or without the API version: the OpenAI SDK wants ``/v1`` in
    it, the Anthropic SDK adds ``/v1`` itself."""
    parts = urlsplit(url)
    if wire == "openai" and parts.path in ("", "/"):
        return url + "/v1"
    if wire == "anthropic" and parts.path.endswith("/v1"):
        return url[: -len("/v1")]
    return url


_HINTS: Mapping[str, str] = {
    "ollama": "is Ollama running? start it with `ollama serve`, or set OLLAMA_HOST",
    "lmstudio": "is LM Studio's local server started?",
    "vllm": "is `vllm serve` running?",
    "llamacpp": "is `llama-server` running?",
}


def unreachable_hint(provider: Provider) -> str:
    """What to check when nothing answers at ``provider``'s address."""
    return _HINTS.get(provider.name, f"check {provider.preset.base_url_env} and your network")


def check_endpoint(provider: Provider, *, timeout_s: float = 3.0) -> None:
    """Raise :class:`~telic.errors.EndpointUnreachable` unless something accepts a
    connection at ``provider``'s base URL (a TCP connection only: no request is sent)."""
    parts = urlsplit(provider.base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hint = unreachable_hint(provider)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError:
        raise EndpointUnreachable(provider.base_url, hint) from None


def is_loopback(url: str) -> bool:
    """True when ``url`` points at this machine (localhost, 127.0.0.0/8 or ::1)."""
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
