"""Loopback HTTP servers speaking the OpenAI chat completions and Anthropic messages formats.

One :class:`FakeLLMServer` (starlette + uvicorn in a thread, 127.0.0.1, a free port) serves both
``POST /v1/chat/completions`` and ``POST /v1/messages``, streaming or not. The *model name* picks
the behaviour, so one server serves many tests:

* any name: answers ``"echo: <last user message>"`` with usage counts;
* ``fail:<status>:<times>[:<retry_after>]``: the first ``times`` calls get HTTP ``status``
  (with ``Retry-After`` when given), later calls succeed;
* ``slow:<seconds>``: waits before answering (past a client's timeout);
* ``malformed``: HTTP 200 with a body that is not JSON (a broken event when streaming);
* ``reply:<text>``: answers ``text``;
* ``break``: streams two chunks, then an error event;
* ``leak:<how>[:<pad>]``: an error that echoes the credentials received (``Bearer <key>``, the
  ``x-api-key`` / ``api-key`` and ``OpenAI-Organization`` headers) after ``pad`` characters:
  ``json`` (HTTP 401, JSON error), ``text`` (HTTP 500, plain text), ``partial`` (HTTP 401 with
  only the first 14 characters of the key and ``...``), ``stream`` (HTTP 200, then an error
  event in the wire format of the endpoint);
* ``json200``: a plain JSON answer even to a stream request;
* on ``/v1/messages``: ``stop:<reason>`` answers with that stop reason, ``cache`` reports cache
  tokens, ``think`` answers a thinking block first, and a request with tools gets a ``tool_use``
  block (streamed: ``input_json_delta`` pieces), see :mod:`tool_answers`;
* ``cut:<n>``: streams ``n`` chunks, then ends without a finish reason, ``[DONE]`` or
  ``message_stop``;
* ``big:<bytes>``: HTTP 200 whose chunked body (or event stream) goes on for ``bytes`` bytes;
  ``bigline:<bytes>`` streams one line of that size; what was sent is in ``server.sent``.

``POST /v1/messages/count_tokens`` answers ``{"input_tokens": <words in the messages>}``.

Every request is recorded in ``server.requests`` as ``(path, headers, body)``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from threaded_server import ThreadedServer
from tool_answers import (
    anthropic_message,
    anthropic_stop,
    anthropic_tool_events,
    anthropic_usage,
    tool_call_answer,
    tool_call_events,
)


class FakeLLMServer:
    """A real HTTP server on 127.0.0.1 for runtime tests (start/stop it around a test module)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        #: the query string of each recorded request, in the same order
        self.queries: list[str] = []
        self.calls: Counter[str] = Counter()
        self.required_key: str | None = None
        self.sent: Counter[str] = Counter()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route(
                    "/openai/deployments/{deployment}/chat/completions",
                    self._openai,
                    methods=["POST"],
                ),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, log_level="error", lifespan="off", access_log=False, timeout_graceful_shutdown=1
        )
        self._server = ThreadedServer(
            config, self._sock, name=f"{type(self).__name__} on port {self.port}"
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLLMServer:
        """Start serving; returns when the server accepts connections."""
        # Told by the server itself, not polled; the bound only keeps a broken start from hanging.
        self._server.start(120)
        return self

    def stop(self) -> None:
        """Stop the server and wait for its thread; fail with the reason if it does not stop
        cleanly (:meth:`threaded_server.ThreadedServer.stop`)."""
        self._server.stop()

    def reset(self) -> None:
        """Forget recorded requests and failure counters."""
        self.requests.clear()
        self.queries.clear()
        self.calls.clear()
        self.sent.clear()
        self.required_key = None

    # -- behaviour --------------------------------------------------------------------------------

    async def _common(self, request: Request, kind: str) -> tuple[dict[str, Any], Response | None]:
        raw = await request.body()
        body = json.loads(raw)
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append((request.url.path, headers, body))
        self.queries.append(request.url.query)
        model = str(body.get("model") or request.path_params.get("deployment", ""))
        if self.required_key is not None:
            given = headers.get("authorization", "").removeprefix("Bearer ")
            given = given or headers.get("x-api-key", "") or headers.get("api-key", "")
            if given != self.required_key:
                err = {"error": {"message": "invalid api key", "type": "authentication_error"}}
                return body, JSONResponse(err, status_code=401)
        self.calls[model] += 1
        n = self.calls[model]
        if model.startswith("fail:"):
            parts = model.split(":")
            status, times = int(parts[1]), int(parts[2])
            if n <= times:
                headers_out = {"retry-after": parts[3]} if len(parts) > 3 else {}
                err = {"error": {"message": f"scripted failure {n}", "type": "server_error"}}
                return body, JSONResponse(err, status_code=status, headers=headers_out)
        if model.startswith("slow:"):
            until = time.monotonic() + float(model.split(":")[1])
            while time.monotonic() < until and not self._server.should_exit:
                await asyncio.sleep(0.02)
        if model == "malformed" and not body.get("stream"):
            return body, Response(b'{"choices": [ {"message": ', media_type="application/json")
        if model.startswith("leak:") and not model.startswith("leak:stream"):
            return body, self._leak(model, headers)
        if model.startswith(("big:", "bigline:")):
            return body, self._big(model, bool(body.get("stream")))
        return body, None

    @staticmethod
    def echo_credentials(model: str, headers: dict[str, str]) -> str:
        """What a careless upstream says about the credentials it got (see ``leak:``)."""
        parts = model.split(":")
        pad = "p" * int(parts[2]) if len(parts) > 2 else ""
        key = headers.get("authorization", "").removeprefix("Bearer ")
        key = key or headers.get("x-api-key", "") or headers.get("api-key", "")
        if parts[1] == "partial":
            return f"{pad}Incorrect API key provided: {key[:14]}..."
        org = headers.get("openai-organization", "")
        return f"{pad}invalid api key Bearer {key} for organization {org}; x-api-key={key}"

    def _leak(self, model: str, headers: dict[str, str]) -> Response:
        message = self.echo_credentials(model, headers)
        if model.split(":")[1] == "text":
            return Response(message.encode(), status_code=500, media_type="text/plain")
        err = {"error": {"message": message, "type": "authentication_error"}}
        return JSONResponse(err, status_code=401)

    def _big(self, model: str, stream: bool) -> Response:
        kind, size = model.split(":")
        total = int(size)

        async def body() -> Any:
            piece = 64 * 1024
            if kind == "bigline":
                yield b"data: "
            elif stream:
                piece = 1024
            else:
                yield b'{"padding": "'
            while self.sent[model] < total:
                if kind == "big" and stream:
                    event = {"choices": [{"delta": {"content": "x" * 990}}]}
                    chunk = f"data: {json.dumps(event)}\n\n".encode()
                else:
                    chunk = b"a" * piece
                self.sent[model] += len(chunk)
                yield chunk
                await asyncio.sleep(0)

        media = "text/event-stream" if stream else "application/json"
        return StreamingResponse(body(), media_type=media)

    @staticmethod
    def _reply(body: dict[str, Any]) -> str:
        model = str(body.get("model", ""))
        if model.startswith("reply:"):
            return model.split(":", 1)[1]
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        return "echo: " + (str(users[-1]["content"]) if users else "")

    async def _embeddings(self, request: Request) -> Response:
        body, early = await self._common(request, "openai")
        if early is not None:
            return early
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5, float(i), 0.25]}
            for i in range(len(inputs))
        ]
        tokens = sum(len(str(x).split()) for x in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    async def _openai(self, request: Request) -> Response:
        body, early = await self._common(request, "openai")
        if early is not None:
            return early
        headers = {k.lower(): v for k, v in request.headers.items()}
        text = self._reply(body)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_tokens + len(text.split()),
        }
        if body.get("tools") and not body.get("stream"):
            return JSONResponse(tool_call_answer(body, usage))
        if body.get("tools"):
            return StreamingResponse(tool_call_events(body, usage), media_type="text/event-stream")
        if not body.get("stream") or body.get("model") == "json200":
            return JSONResponse(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        model = str(body.get("model", ""))

        async def events() -> Any:
            head = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model}

            def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                payload = {
                    **head,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {json.dumps(payload)}\n\n".encode()

            yield chunk({"role": "assistant"})
            if model == "malformed":
                yield b"data: {not json\n\n"
                return
            if model.startswith("leak:stream"):
                message = self.echo_credentials(model, headers)
                yield f"data: {json.dumps({'error': {'message': message}})}\n\n".encode()
                return
            words = text.split(" ")
            for i, word in enumerate(words):
                if model == "break" and i == 2:
                    yield b'data: {"error": {"message": "upstream broke"}}\n\n'
                    return
                if model.startswith("cut:") and i == int(model.split(":")[1]):
                    return
                yield chunk({"content": word if i == len(words) - 1 else word + " "})
                await asyncio.sleep(0)
            yield chunk({}, "stop")
            yield f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _count_tokens(self, request: Request) -> Response:
        body, early = await self._common(request, "anthropic")
        if early is not None:
            return early
        words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        return JSONResponse({"input_tokens": words})

    async def _anthropic(self, request: Request) -> Response:
        body, early = await self._common(request, "anthropic")
        if early is not None:
            return early
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "max_tokens" not in body:
            err = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "max_tokens"},
            }
            return JSONResponse(err, status_code=400)
        text = self._reply(body)
        input_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        if not body.get("stream") or body.get("model") == "json200":
            return JSONResponse(anthropic_message(body, text, input_tokens))
        if body.get("tools"):
            events_ = anthropic_tool_events(body, input_tokens)
            return StreamingResponse(events_, media_type="text/event-stream")
        model = str(body.get("model", ""))

        async def events() -> Any:
            def event(name: str, data: dict[str, Any]) -> bytes:
                return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

            usage = anthropic_usage(model, input_tokens, 0)
            start = {"message": {"id": "msg_test", "usage": usage}}
            yield event("message_start", start)
            yield event("content_block_start", {"index": 0, "content_block": {"type": "text"}})
            yield b'event: ping\ndata: {"type": "ping"}\n\n'
            if model == "malformed":
                yield b"event: content_block_delta\ndata: {oops\n\n"
                return
            if model.startswith("leak:stream"):
                message = self.echo_credentials(model, headers)
                yield event(
                    "error", {"error": {"type": "authentication_error", "message": message}}
                )
                return
            words = text.split(" ")
            for i, word in enumerate(words):
                if model == "break" and i == 2:
                    yield event("error", {"error": {"type": "overloaded_error", "message": "gone"}})
                    return
                if model.startswith("cut:") and i == int(model.split(":")[1]):
                    return
                piece = word if i == len(words) - 1 else word + " "
                delta = {"index": 0, "delta": {"type": "text_delta", "text": piece}}
                yield event("content_block_delta", delta)
                await asyncio.sleep(0)
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": anthropic_stop(model)},
                    "usage": {"output_tokens": len(words)},
                },
            )
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")


def provider_doc(provider_id: str, provider_type: str, models: list[Any], **extra: Any) -> dict:
    """A ``kind: Provider`` manifest dict; ``models`` are ids or model dicts."""
    doc: dict[str, Any] = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": provider_id,
        "provider_type": provider_type,
        "models": [m if isinstance(m, dict) else {"model_id": m} for m in models],
    }
    doc.update(extra)
    return doc


def compile_docs(
    providers: list[dict[str, Any]],
    routes: list[dict[str, Any]] | None = None,
    default_route: str | None = None,
) -> Any:
    """Validate manifest dicts and compile them (a ``CompiledConfig``)."""
    from gwconfig.manifests.compile import build_config
    from gwconfig.manifests.model import GatewayManifest, ProviderManifest

    gateway = None
    if routes is not None or default_route is not None:
        gateway = GatewayManifest.model_validate(
            {
                "apiVersion": "gwconfig/v1",
                "kind": "Gateway",
                "routes": routes or [],
                "default_route": default_route,
            }
        )
    return build_config([ProviderManifest.model_validate(p) for p in providers], gateway)


def write_compiled(path: Any, providers: list[dict[str, Any]], **kwargs: Any) -> Any:
    """Compile manifest dicts into the JSON file ``path``; returns the path."""
    path.write_bytes(compile_docs(providers, **kwargs).to_json_bytes())
    return path


def generate_each(config: Any, *requests: Any, **client_kw: Any) -> list[Any]:
    """Send ``requests`` one after another through one client; each response or exception."""
    from gwconfig.runtime import LLMGatewayClient

    async def main() -> list[Any]:
        async with LLMGatewayClient(config, **client_kw) as client:
            out: list[Any] = []
            for r in requests:
                try:
                    out.append(await client.generate(r))
                except Exception as exc:
                    out.append(exc)
            return out

    return asyncio.run(main())


FAST = {"backoff_initial_seconds": 0.001, "backoff_max_seconds": 0.01, "jitter": False}
