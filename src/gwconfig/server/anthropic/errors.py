"""Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``.

The gateway's errors are :class:`~gwconfig.server.openai.errors.WireError` values (one table
of statuses and messages for every ``/v1`` path); on the Messages API paths they are rendered
here, the error ``type`` chosen by the HTTP status as Anthropic chooses it.
"""

from __future__ import annotations

import orjson
from starlette.types import Send

from gwconfig.server.openai.errors import WireError
from gwconfig.server.openai.exchange import JSON_TYPE

#: Anthropic's error type of each HTTP status (any other 4xx: invalid_request_error, 5xx:
#: api_error)
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    return TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(error: WireError) -> bytes:
    """The JSON error document of ``error``."""
    inner = {"type": error_type(error.status), "message": error.message}
    return orjson.dumps({"type": "error", "error": inner})


def error_event(error: WireError) -> bytes:
    """An error after a stream began (the status line is gone): an ``error`` event."""
    return b"event: error\ndata: " + error_body(error) + b"\n\n"


async def send_error(send: Send, error: WireError) -> None:
    """Answer ``error`` in Anthropic's shape (with its headers: ``Retry-After`` ...)."""
    headers = [JSON_TYPE, *((k.lower().encode(), v.encode()) for k, v in error.headers.items())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": error_body(error)})
