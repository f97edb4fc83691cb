"""What every model call on ``/v1`` (chat, embeddings, the Messages API) passes before it is
sent: the request body read within its bound, the token's scope and models."""

from __future__ import annotations

from starlette.types import Receive

from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.runtime.permits import permits
from gwconfig.server.auth import Caller
from gwconfig.server.openai.consumers import caller_patterns
from gwconfig.server.openai.errors import WireError
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


def admit(config: GatewayConfig, caller: Caller, model: str) -> None:
    """A 403 when the token (or its consumer) may not use ``model`` (its limits are the
    :class:`~gwconfig.server.openai.limits.LimitGuard`'s)."""
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
