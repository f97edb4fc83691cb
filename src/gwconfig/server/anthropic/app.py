"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: the Anthropic Messages API.

The OpenAI-compatible front (:class:`~gwconfig.server.openai.app.OpenAIGateway`) hands these
paths here, with its runtime (the one reload loop), token authenticator, per-token limits and
metrics. A request is authenticated by ``x-api-key: <token>`` or ``Authorization: Bearer
<token>`` (scope ``invoke``), checked against the token's models and rate like chat, and
answered in Anthropic's format; every error, from a bad body to a stream that breaks, is in
Anthropic's error shape. ``anthropic-version`` is accepted whatever its value.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from gwconfig.errors import GwconfigError
from gwconfig.server.anthropic.errors import send_error
from gwconfig.server.anthropic.exchange import MessagesExchange
from gwconfig.server.anthropic.wire import COUNT_TOKENS, MESSAGES, parse_messages_request
from gwconfig.server.auth import Caller, api_key_header
from gwconfig.server.openai.admit import admit, may_invoke, read_body
from gwconfig.server.openai.errors import WireError
from gwconfig.server.openai.exchange import access
from gwconfig.server.openai.limits import admission_headers, settling
from gwconfig.server.openai.wire import wire_error

if TYPE_CHECKING:
    from gwconfig.server.openai.app import Authenticator
    from gwconfig.server.openai.limits import LimitGuard
    from gwconfig.server.openai.runtime import GatewayRuntime

PATHS = (MESSAGES, COUNT_TOKENS)
log = logging.getLogger(__name__)


class MessagesAPI:
    """The Messages API paths, answered with the OpenAI front's runtime, tokens and limits."""

    def __init__(
        self,
        runtime: GatewayRuntime,
        tokens: Authenticator,
        guard: LimitGuard,
        max_body_bytes: int,
    ) -> None:
        self.runtime = runtime
        self.tokens = tokens
        self.guard = guard
        self.max_body_bytes = max_body_bytes

    @staticmethod
    def serves(path: str) -> bool:
        """True for the paths answered here (``/v1/messages`` and anything under it)."""
        return path == MESSAGES or path.startswith(MESSAGES + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        path = scope["path"]
        caller = None
        metrics = self.runtime.metrics
        try:
            if path not in PATHS:
                raise WireError(404, f"this gateway serves POST {MESSAGES} and POST {COUNT_TOKENS}")
            if scope["method"] != "POST":
                raise WireError(405, f"use POST on {path}", headers={"allow": "POST"})
            caller = await self._authenticate(scope)
            await self._answer(scope, receive, send, caller, start)
        except WireError as exc:
            access(scope, caller, exc.status, start)
            if path in PATHS:
                metrics.failed(path, exc.status, total=time.perf_counter() - start)
            await send_error(send, exc)
        except Exception as exc:  # a bug: a generic answer, the class name in the log only
            log.error("%s %s failed: %s", scope["method"], path, type(exc).__name__)
            try:
                await send_error(send, wire_error(exc))
            except Exception:  # the answer had begun: nothing more can be said
                return

    async def _authenticate(self, scope: Scope) -> Caller:
        try:
            return await self.tokens.authenticate_async(api_key_header(scope["headers"]))
        except GwconfigError as exc:  # 401, 403; the token store unreachable: 503, never 500
            raise wire_error(exc) from None

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, caller: Caller, start: float
    ) -> None:
        """Check the body, the token's models and rate, then answer (plain or streamed)."""
        may_invoke(caller)
        endpoint = scope["path"]
        raw = await read_body(receive, self.max_body_bytes)
        req = parse_messages_request(raw, count=endpoint == COUNT_TOKENS)
        runtime = self.runtime
        client = runtime.client
        config = client.config
        admit(config, caller, req.model)
        admission = await self.guard.check(caller, config, req, len(raw))
        req.request.caller = caller.name
        req.request.consumer = caller.consumer
        tally = settling(admission)
        exchange = MessagesExchange(
            scope=scope, send=send, caller=caller, req=req, client=client,
            metrics=runtime.metrics, revision=runtime.revision(config), start=start,
            endpoint=endpoint, tally=tally, extra=admission_headers(admission),
        )  # fmt: skip
        await self.guard.run(exchange, receive, admission, tally, config)
