"""``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /v1/models/{id}`` and
``GET /metrics`` as a plain ASGI app.

It sits in front of the FastAPI app and answers these paths itself (no routing table, no
pydantic, orjson), and any other path under ``/v1/`` with OpenAI's 404 (no token needed):
everything else, and the lifespan, goes on to the FastAPI app. A request is authenticated with
the token authenticator (scope ``invoke``; ``admin`` passes), checked against the token's
models and request rate (its consumer's, for a token of a consumer), sent through this
process's :class:`LLMGatewayClient`, and answered in OpenAI's format with
``x-gwconfig-provider``, ``x-gwconfig-attempts`` and ``x-gwconfig-revision``. A streaming
client that goes away cancels the upstream call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gwconfig.db.ledger import EngineLedger
from gwconfig.errors import GwconfigError
from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.runtime.config.sources import ConfigLoader
from gwconfig.server.anthropic.app import MessagesAPI
from gwconfig.server.auth import Caller, authorization_header
from gwconfig.server.metrics import CONTENT_TYPE, Metrics, configure_access_log
from gwconfig.server.openai.admit import admit, may_invoke, read_body
from gwconfig.server.openai.consumers import caller_patterns
from gwconfig.server.openai.embeddings import EMBEDDINGS, parse_embeddings_request
from gwconfig.server.openai.errors import MAX_MODEL_NAME, WireError
from gwconfig.server.openai.exchange import (
    CHAT,
    JSON_TYPE,
    Exchange,
    access,
    send_error,
)
from gwconfig.server.openai.limits import LimitGuard, admission_headers, settling
from gwconfig.server.openai.runtime import GatewayRuntime
from gwconfig.server.openai.wire import (
    ChatRequest,
    parse_chat_request,
    wire_error,
)
from gwconfig.server.state import ServerState

MODELS = "/v1/models"
MODEL = MODELS + "/"  # GET /v1/models/{id}; an id may hold '/'
METRICS = "/metrics"
PREFIX = "/v1/"
#: what an unknown /v1 path's 404 says is served
ENDPOINTS = (
    "POST /v1/chat/completions, POST /v1/embeddings, POST /v1/messages, "
    "POST /v1/messages/count_tokens, GET /v1/models and GET /v1/models/{model}"
)
log = logging.getLogger(__name__)


class Authenticator(Protocol):
    """What the token authenticator offers (``gwconfig.server.auth.TokenAuthenticator``)."""

    async def authenticate_async(self, authorization_header: str | None) -> Caller:
        """The caller (name, scope, models, rpm), or raise :class:`~gwconfig.errors.AuthError`."""


class OpenAIGateway:
    """The ASGI app answering the OpenAI-compatible paths, in front of ``inner``."""

    def __init__(
        self,
        app: ASGIApp,
        runtime: GatewayRuntime,
        tokens: Authenticator,
        *,
        max_body_bytes: int = 4 * 1024 * 1024,
        guard: LimitGuard | None = None,
    ) -> None:
        self.inner = app
        self.runtime = runtime
        self.metrics: Metrics = runtime.metrics
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.guard = guard if guard is not None else LimitGuard(runtime.metrics)
        #: the Anthropic Messages API, on the same runtime, tokens and limits
        self.messages = MessagesAPI(runtime, tokens, self.guard, max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == CHAT:
                return await self._guard(self.chat, scope, receive, send, "POST")
            if path == EMBEDDINGS:
                return await self._guard(self.embeddings, scope, receive, send, "POST")
            if path == MODELS:
                return await self._guard(self.models, scope, receive, send, "GET")
            if path.startswith(MODEL):
                return await self._guard(self.model, scope, receive, send, "GET")
            if path == METRICS:
                return await self._guard(self.scrape, scope, receive, send, "GET")
            if self.messages.serves(path):
                return await self.messages(scope, receive, send)
            if path.startswith(PREFIX) or path == PREFIX[:-1]:
                return await self.unknown(scope, send)
        elif kind == "lifespan":
            return await self.inner(scope, self._lifespan(receive), send)
        await self.inner(scope, receive, send)

    def _lifespan(self, receive: Receive) -> Receive:
        """``receive`` for the inner app's lifespan: the runtime starts before the app
        hears of the startup, and closes after the app has heard of the shutdown."""
        runtime, guard = self.runtime, self.guard

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await runtime.start()
                guard.start(runtime.client)
            elif message["type"] == "lifespan.shutdown":
                await guard.aclose()
                await runtime.aclose()
            return message

        return wrapped

    async def _guard(
        self,
        handler: Callable[[Scope, Receive, Send, Any], Awaitable[None]],
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
    ) -> None:
        start = time.perf_counter()
        caller = None
        try:
            if scope["method"] != method:
                raise WireError(
                    405,
                    f"use {method} on {scope['path']}",
                    "invalid_request_error",
                    "method_not_allowed",
                    headers={"allow": method},
                )
            caller = await self._authenticate(scope)
            await handler(scope, receive, send, caller)
        except WireError as exc:
            access(scope, caller, exc.status, start)
            if scope["path"] in (CHAT, EMBEDDINGS):
                self.metrics.failed(scope["path"], exc.status, total=time.perf_counter() - start)
            await send_error(send, exc)
        except Exception as exc:  # a bug: a generic answer, the class name in the log only
            log.error("%s %s failed: %s", scope["method"], scope["path"], type(exc).__name__)
            try:
                await send_error(send, wire_error(exc))
            except Exception:  # the answer had begun: nothing more can be said
                return

    async def _authenticate(self, scope: Scope) -> Caller:
        header = authorization_header(scope["headers"])
        try:
            return await self.tokens.authenticate_async(header)
        except GwconfigError as exc:  # 401, 403; the token store unreachable: 503, never 500
            raise wire_error(exc) from None

    # -- /v1/chat/completions ---------------------------------------------------------------------

    async def chat(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """Answer one chat completion, plain or streamed."""
        start = time.perf_counter()
        may_invoke(caller)
        raw = await self._body(receive)
        req = parse_chat_request(raw)
        await self._exchange(scope, receive, send, caller, req, start, CHAT, len(raw))

    async def embeddings(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """Answer one embeddings request (models of ``model_type: embedding``)."""
        start = time.perf_counter()
        may_invoke(caller)
        raw = await self._body(receive)
        req = parse_embeddings_request(raw)
        await self._exchange(scope, receive, send, caller, req, start, EMBEDDINGS, len(raw))

    async def _exchange(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        req: ChatRequest,
        start: float,
        endpoint: str,
        body_bytes: int,
    ) -> None:
        """Check the token's models and limits, then answer ``req`` (plain or streamed); the
        request's reservation is settled or released whatever happens."""
        client = self.runtime.client
        config = client.config
        admit(config, caller, req.model)
        admission = await self.guard.check(caller, config, req, body_bytes)
        req.request.caller = caller.name
        req.request.consumer = caller.consumer
        tally = settling(admission)
        exchange = Exchange(
            scope=scope, send=send, caller=caller, req=req, client=client, metrics=self.metrics,
            revision=self.runtime.revision(config), start=start, endpoint=endpoint, tally=tally,
            extra=admission_headers(admission),
        )  # fmt: skip
        await self.guard.run(exchange, receive, admission, tally, config)

    # -- /v1/models, /v1/models/{id}, /metrics, other /v1 paths ----------------------------------

    async def models(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """The routes, aliases and ``provider/model`` ids the token may use."""
        start = time.perf_counter()
        config = self.runtime.client.config
        patterns = _model_patterns(caller, config)
        body = self.runtime.models_body(config, patterns)
        access(scope, caller, 200, start)
        await _send_json(send, body)

    async def model(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """One model object, for a name the token may use (what ``/v1/models`` would list for
        it, or any other name ``/v1/chat/completions`` takes from it); 404 otherwise."""
        start = time.perf_counter()
        patterns = _model_patterns(caller, self.runtime.client.config)
        name = scope["path"][len(MODEL) :]
        if len(name) > MAX_MODEL_NAME:  # not echoed back
            raise WireError(
                404,
                f"a model name has at most {MAX_MODEL_NAME} characters",
                "invalid_request_error",
                "model_not_found",
                param="model",
            )
        body = self.runtime.model_body(self.runtime.client.config, name, patterns)
        if body is None:
            raise WireError(
                404,
                f"the model '{name}' does not exist or token '{caller.name}' may not use it",
                "invalid_request_error",
                "model_not_found",
                param="model",
            )
        access(scope, caller, 200, start)
        await _send_json(send, body)

    async def unknown(self, scope: Scope, send: Send) -> None:
        """OpenAI's 404 for a path under ``/v1/`` that is not served (no token needed)."""
        start = time.perf_counter()
        path = scope["path"]
        shown = path if len(path) <= 200 else path[:200] + "..."
        error = WireError(
            404,
            f"Invalid URL ({scope['method']} {shown}): this gateway serves {ENDPOINTS}",
            "invalid_request_error",
            "unknown_url",
        )
        access(scope, None, 404, start)
        await send_error(send, error)

    async def scrape(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """The Prometheus text exposition (any valid token)."""
        start = time.perf_counter()
        self.metrics.cooldowns_entered(self.runtime.client.cooldowns.entered)
        self.guard.observe()
        usage = self.runtime.client.usage
        self.metrics.database(self.runtime.database_up, usage.dropped if usage else 0)
        body = self.metrics.render()
        if self.runtime.client.config.consumers:
            body += await asyncio.to_thread(self.runtime.consumer_metrics)
        access(scope, caller, 200, start)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    # -- helpers ----------------------------------------------------------------------------------

    async def _body(self, receive: Receive) -> bytes:
        return await read_body(receive, self.max_body_bytes)


def _model_patterns(caller: Caller, config: GatewayConfig) -> tuple[str, ...] | None:
    """The model patterns of a caller that may see models (scope ``invoke``), None for all."""
    if not caller.allows("invoke"):
        raise WireError(
            403, "listing models needs scope 'invoke'", "permission_error", "insufficient_scope"
        )
    return caller_patterns(caller, config)


async def _send_json(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [JSON_TYPE]})
    await send({"type": "http.response.body", "body": body})


def install(app: Starlette, state: ServerState) -> GatewayRuntime:
    """Put the OpenAI-compatible endpoints in front of ``app`` (its outermost middleware),
    with a runtime on ``state``'s database; returns the runtime (started with the app)."""
    configure_access_log(state.settings.access_log)
    metrics = Metrics()
    runtime = GatewayRuntime(ConfigLoader(state.database), metrics)
    settings = state.settings
    guard = LimitGuard(
        metrics,
        redis_url=settings.redis_url,
        redis_timeout=settings.redis_timeout_ms / 1000,
        workers=settings.workers,
        ledger=EngineLedger(lambda: runtime.loader.engine),
    )
    state.limits = guard
    app.add_middleware(
        OpenAIGateway,
        runtime=runtime,
        tokens=state.tokens,
        max_body_bytes=settings.max_body_bytes,
        guard=guard,
    )
    return runtime
