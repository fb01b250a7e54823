"""A local model server speaking the OpenAI chat-completions and Anthropic messages wire
formats, for tests, benchmarks and offline runs. Nothing here talks to a real provider.

::

    with ModelServer() as server:
        server.script(Reply.propose({"action": "finish", "args": {"result": "ok"}}))
        mind = model_mind("openai:any", base_url=server.openai_url)

``POST /v1/chat/completions`` answers in the OpenAI chat format, ``POST /v1/responses`` in
the OpenAI Responses one, ``POST /v1/messages`` in the Anthropic one. Each request takes the next scripted :class:`Reply` (or, when the script is
empty, asks ``responder``; by default it proposes ``finish``). The server can also enforce a
provider's limits (concurrency, requests per minute) with 429 and ``Retry-After``, and take
a fixed time per request. Every request is kept in :attr:`ModelServer.requests`;
``GET /stats`` reports counts and handling times.

``python -m telic.minds.testing [--port N] [--latency-ms MS] [--max-concurrent N] [--rpm N]``
runs it in the foreground (for ``telic run ... --model openai:any`` with
``OPENAI_BASE_URL=http://127.0.0.1:N/v1``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["ModelServer", "Reply", "ServerRequest"]

Api = Literal["openai", "anthropic", "responses"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server answers to one request; build one with the class methods."""

    kind: Literal["call", "text", "status", "raw", "hang"]
    name: str = "propose"
    arguments: Any = None
    """For ``call``: the function's arguments, an object or a raw string (any text)."""
    text: str = ""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    body: bytes = b""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    """Input read from the prompt cache (OpenAI: part of the prompt tokens; Anthropic:
    ``cache_read_input_tokens``, apart from ``input_tokens``)."""
    reasoning_tokens: int = 0
    """Output spent on reasoning (OpenAI: part of the completion tokens)."""
    truncated: bool = False
    delay_s: float = 0.0
    """Extra time this request takes before answering."""

    @classmethod
    def propose(cls, proposal: Mapping[str, Any], **kw: Any) -> Reply:
        """A ``propose`` function call with ``proposal`` as its arguments."""
        return cls("call", arguments=dict(proposal), **kw)

    @classmethod
    def call(cls, name: str, arguments: Any, **kw: Any) -> Reply:
        """A call of any function; ``arguments`` may be a raw string (e.g. broken JSON)."""
        return cls("call", name=name, arguments=arguments, **kw)

    @classmethod
    def prose(cls, text: str, **kw: Any) -> Reply:
        """A plain text answer (the model ignored the tool)."""
        return cls("text", text=text, **kw)

    @classmethod
    def error(cls, status: int, *, retry_after: float | None = None, message: str = "") -> Reply:
        """An HTTP error in the API's error format, with ``Retry-After`` when given."""
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        return cls("status", status=status, headers=headers, text=message or f"error {status}")

    @classmethod
    def raw(cls, body: bytes, *, status: int = 200) -> Reply:
        """Exactly these bytes as a JSON response body (for malformed responses)."""
        return cls("raw", body=body, status=status)

    @classmethod
    def hang(cls) -> Reply:
        """Never answer (until the server closes): the client must time out."""
        return cls("hang")


FINISH = Reply.propose(
    {"action": "finish", "args": {"result": "done"}, "confidence": 1.0, "reason": "test server"}
)


@dataclass(frozen=True, slots=True)
class ServerRequest:
    """A request the server received."""

    api: Api
    path: str
    headers: Mapping[str, str]
    body: Any
    """The decoded JSON body."""
    received_at: float
    """``time.monotonic()`` on arrival."""


Responder = Callable[[ServerRequest], Reply]


class ModelServer:
    """A threaded HTTP server on 127.0.0.1 (an ephemeral port unless ``port`` is given)."""

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        max_concurrent: int | None = None,
        requests_per_minute: float | None = None,
        port: int = 0,
    ) -> None:
        self.responder: Responder = responder or (lambda _request: FINISH)
        self.latency_s = latency_s
        self.max_concurrent = max_concurrent
        self.requests_per_minute = requests_per_minute
        self.requests: list[ServerRequest] = []
        self.rejected = 0
        """Requests refused with 429 because a limit was exceeded."""
        self.busy_s = 0.0
        """Total time spent handling requests (from reading the body to writing the answer)."""
        self.handled_s: list[float] = []
        """Time spent on each answered request, in order of completion."""
        self.peak_concurrent = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._active = 0
        self._window: deque[float] = deque()
        self._closing = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """The base URL for OpenAI-compatible clients."""
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        """The base URL for Anthropic clients."""
        return self.url

    def start(self) -> ModelServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scripting ----------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies, answered in order before the responder is asked."""
        with self._lock:
            self._script.extend(replies)

    @property
    def unused(self) -> int:
        """Scripted replies not yet used."""
        with self._lock:
            return len(self._script)

    def bodies(self, api: Api | None = None) -> Iterator[Any]:
        return (r.body for r in list(self.requests) if api is None or r.api == api)

    # -- serving (called on the server's threads) -----------------------------------------

    def _admit(self, now: float) -> float | None:
        """None when the request may proceed, else seconds the client should wait."""
        with self._lock:
            if self.max_concurrent is not None and self._active >= self.max_concurrent:
                self.rejected += 1
                return 1.0
            if self.requests_per_minute is not None:
                while self._window and self._window[0] <= now - 60:
                    self._window.popleft()
                if len(self._window) >= self.requests_per_minute:
                    self.rejected += 1
                    return max(0.0, self._window[0] + 60 - now)
                self._window.append(now)
            self._active += 1
            self.peak_concurrent = max(self.peak_concurrent, self._active)
            return None

    def _next(self, request: ServerRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
        return self.responder(request)

    def _done(self, started: float) -> None:
        spent = time.monotonic() - started
        with self._lock:
            self._active -= 1
            self.busy_s += spent
            self.handled_s.append(spent)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._closing.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ModelServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away before its answer (it timed out, or its node died)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    @property
    def owner(self) -> ModelServer:
        server = self.server
        assert isinstance(server, _Server)
        return server.owner

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        owner = self.owner
        if self.path.rstrip("/") != "/stats":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        with owner._lock:  # pyright: ignore[reportPrivateUsage]
            stats = {
                "requests": len(owner.requests),
                "rejected": owner.rejected,
                "peak_concurrent": owner.peak_concurrent,
                "handled_s": list(owner.handled_s),
            }
        self._send(200, stats)

    def do_POST(self) -> None:
        owner = self.owner
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        started = time.monotonic()
        api: Api
        if self.path.rstrip("/").endswith("/chat/completions"):
            api = "openai"
        elif self.path.rstrip("/").endswith("/responses"):
            api = "responses"
        elif self.path.rstrip("/").endswith("/messages"):
            api = "anthropic"
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, _error_body(api, 400, "request body is not JSON"))
            return
        wait = owner._admit(started)  # pyright: ignore[reportPrivateUsage]
        if wait is not None:
            self._send(429, _error_body(api, 429, "rate limited"), {"retry-after": f"{wait:.3f}"})
            return
        done = False
        try:
            request = ServerRequest(api, self.path, dict(self.headers.items()), body, started)
            reply = owner._next(request)  # pyright: ignore[reportPrivateUsage]
            owner._wait(owner.latency_s + reply.delay_s)  # pyright: ignore[reportPrivateUsage]
            if reply.kind == "hang":
                owner._closing.wait()  # pyright: ignore[reportPrivateUsage]
                self.close_connection = True
                return
            status, data, headers = _answer(api, body, reply)
            # the request stops counting as active before the client can see the answer, so
            # a client that keeps to the limit never races the server into a false 429
            owner._done(started)  # pyright: ignore[reportPrivateUsage]
            done = True
            self._send_bytes(status, data, headers)
        finally:
            if not done:
                owner._done(started)  # pyright: ignore[reportPrivateUsage]

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send_bytes(status, _dumps(payload), headers or {})

    def _send_bytes(self, status: int, data: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


def _answer(api: Api, body: Any, reply: Reply) -> tuple[int, bytes, Mapping[str, str]]:
    if reply.kind == "status":
        return reply.status, _dumps(_error_body(api, reply.status, reply.text)), reply.headers
    if reply.kind == "raw":
        return reply.status, reply.body, {}
    fields: dict[str, Any] = body if isinstance(body, dict) else {}  # pyright: ignore[reportUnknownVariableType]
    model = str(fields.get("model", "test"))
    if api == "openai":
        payload = _openai(model, body, reply)
    elif api == "responses":
        payload = _responses(model, body, reply)
    else:
        payload = _anthropic(model, body, reply)
    return 200, _dumps(payload), reply.headers


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


def _arguments_text(reply: Reply) -> str:
    args = reply.arguments
    return args if isinstance(args, str) else json.dumps(args)


def _openai(model: str, body: Any, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if reply.kind == "call":
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": reply.name, "arguments": _arguments_text(reply)},
            }
        ]
        finish = "tool_calls"
    else:
        message["content"] = reply.text
    if reply.truncated:
        finish = "length"
    prompt = reply.input_tokens if reply.input_tokens is not None else _tokens(body)
    completion = reply.output_tokens if reply.output_tokens is not None else _tokens(message)
    limit = _limit(body, "max_completion_tokens", "max_tokens")
    if limit is not None and completion > limit:  # a model stops at its limit
        completion, finish = limit, "length"
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        },
    }


def _responses(model: str, body: Any, reply: Reply) -> dict[str, Any]:
    output: list[dict[str, Any]]
    if reply.kind == "call":
        output = [
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": reply.name,
                "arguments": _arguments_text(reply),
                "status": "completed",
            }
        ]
    else:
        output = [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        ]
    prompt = reply.input_tokens if reply.input_tokens is not None else _tokens(body)
    completion = reply.output_tokens if reply.output_tokens is not None else _tokens(output)
    limit = _limit(body, "max_output_tokens")
    truncated = reply.truncated
    if limit is not None and completion > limit:
        completion, truncated = limit, True
    return {
        "id": "resp_test",
        "object": "response",
        "created_at": 0,
        "model": model,
        "status": "incomplete" if truncated else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "output": output,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": reply.cached_tokens},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            "total_tokens": prompt + completion,
        },
    }


def _anthropic(model: str, body: Any, reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]]
    stop = "end_turn"
    if reply.kind == "call":
        args = reply.arguments
        if isinstance(args, str):  # the wire carries an object; keep the raw text as a string
            try:
                args = json.loads(args)
            except ValueError:
                args = {"_raw": args}
        content = [{"type": "tool_use", "id": "toolu_1", "name": reply.name, "input": args}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": reply.text}]
    if reply.truncated:
        stop = "max_tokens"
    output = reply.output_tokens if reply.output_tokens is not None else _tokens(content)
    limit = _limit(body, "max_tokens")
    if limit is not None and output > limit:
        output, stop = limit, "max_tokens"
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens if reply.input_tokens is not None else _tokens(body),
            "output_tokens": output,
            "cache_read_input_tokens": reply.cached_tokens,
        },
    }


def _limit(body: Any, *keys: str) -> int | None:
    """The request's cap on reply tokens, if it has one."""
    fields: dict[str, Any] = body if isinstance(body, dict) else {}  # pyright: ignore[reportUnknownVariableType]
    for key in keys:
        value = fields.get(key)
        if isinstance(value, int):
            return value
    return None


def _error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    if api == "anthropic":
        kind = "rate_limit_error" if status == 429 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": "server_error", "code": str(status)}}


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - interactive
    ap = argparse.ArgumentParser(description="Run telic's local model server (Ctrl-C stops it).")
    ap.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="time taken per request")
    ap.add_argument("--max-concurrent", type=int, default=None, help="429 beyond this")
    ap.add_argument("--rpm", type=float, default=None, help="requests per minute; 429 beyond")
    args = ap.parse_args(argv)
    server = ModelServer(
        port=args.port,
        latency_s=args.latency_ms / 1000,
        max_concurrent=args.max_concurrent,
        requests_per_minute=args.rpm,
    )
    print(f"OpenAI base URL:    {server.openai_url}", flush=True)
    print(f"Anthropic base URL: {server.anthropic_url}", flush=True)
    try:
        server._httpd.serve_forever()  # pyright: ignore[reportPrivateUsage]
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
