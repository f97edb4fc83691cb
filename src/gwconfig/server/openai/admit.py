"""What every model call on ``/v1`` (chat, embeddings, the Messages API) passes before it is
sent: the request body read within its bound, the token's scope, models and request rate."""

from __future__ import annotations

from starlette.types import Receive

from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.runtime.permits import permits
from gwconfig.server.answers import retry_after
from gwconfig.server.auth import Caller
from gwconfig.server.openai.consumers import caller_patterns, caller_rate
from gwconfig.server.openai.errors import WireError
from gwconfig.server.openai.limits import CallerLimits
from gwconfig.server.openai.wire import wire_error


async def read_body(receive: Receive, max_bytes: int) -> bytes:
    """The request body; 413 past ``max_bytes``, 400 when the client went away."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise WireError(400, "the client went away", "invalid_request_error")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise WireError(
                413,
                f"the request body is larger than {max_bytes} bytes",
                "invalid_request_error",
                "request_too_large",
            )
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def may_invoke(caller: Caller) -> None:
    """A 403 unless ``caller`` may call models (scope ``invoke``; ``admin`` passes)."""
    if not caller.allows("invoke"):
        raise WireError(
            403,
            f"token '{caller.name}' has scope '{caller.scope}'; calling models needs 'invoke'",
            "permission_error",
            "insufficient_scope",
        )


def admit(config: GatewayConfig, caller: Caller, model: str, limits: CallerLimits) -> None:
    """A 403 when the token (or its consumer) may not use ``model``, a 429 when it is over
    its rate."""
    patterns = caller_patterns(caller, config)
    if patterns is not None:
        try:
            ok = permits(config, model, patterns)
        except Exception as exc:
            raise wire_error(exc) from None
        if not ok:
            raise WireError(
                403,
                f"token '{caller.name}' may not use model '{model}'",
                "permission_error",
                "model_not_allowed",
                param="model",
            )
    rate = caller_rate(caller, config)
    if rate is not None:
        key, rpm, who = rate
        wait = limits.check(key, rpm)
        if wait > 0:
            headers = retry_after(wait)
            raise WireError(
                429,
                f"{who} is limited to {rpm} requests per minute "
                f"(next request in {headers['retry-after']}s)",
                "rate_limit_error",
                "rate_limit_exceeded",
                headers=headers,
            )
