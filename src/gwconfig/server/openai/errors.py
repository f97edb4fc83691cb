"""OpenAI's error shape for ``/v1``: :class:`WireError` and the 400 of a bad request body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

#: the longest error message sent back (the runtime's are scrubbed of secrets already)
MAX_ERROR_MESSAGE = 2000


class WireError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "code", "param"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message[:MAX_ERROR_MESSAGE]
        self.type = type_
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        """The JSON error document."""
        err = {"message": self.message, "type": self.type, "code": self.code, "param": self.param}
        return orjson.dumps({"error": err})


def bad(message: str, param: str | None = None, code: str | None = None) -> WireError:
    """A 400 about the request body."""
    return WireError(400, message, "invalid_request_error", code, param=param)


#: the longest ``model`` name taken
MAX_MODEL_NAME = 512


def json_body(raw: bytes) -> tuple[dict[str, Any], str]:
    """A request body as a JSON object, and its ``model``; a 400 when it is neither."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise bad(
            f"'model' must be a non-empty string of at most {MAX_MODEL_NAME} characters", "model"
        )
    return body, model
