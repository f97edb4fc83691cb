"""Paged listings of the REST API: page sizes, opaque cursors, ``next`` links."""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
from fastapi import Query, Request
from fastapi.responses import Response

from gwconfig.server.problems import ProblemError
from gwconfig.server.rest.etags import json_response, not_modified

T = TypeVar("T")

#: page sizes of the list endpoints
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_CHARS = 1024

#: the query parameters of the paged listings
Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size.")
Cursor = Query(None, max_length=MAX_CURSOR_CHARS, description="From 'next'.")


def encode_cursor(position: Any) -> str:
    """An opaque cursor for a position (any JSON value)."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type[T]) -> T | None:
    """The position of ``cursor`` (None for the first page); 422 if it is not one of ours."""
    if cursor is None:
        return None
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError("wrong type")
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise ProblemError(
            422,
            "Unprocessable Content",
            "invalid cursor: use the 'next' link of the previous page",
            errors=[{"loc": "query.cursor", "msg": "not a cursor of this listing"}],
        ) from None
    return value


def paged(
    request: Request, items: list[dict[str, Any]], last: Any, limit: int, **params: str
) -> Response:
    """A page of a listing: ``{"items", "next"}`` with a ``Link`` header when ``last`` (the
    position of the last item) is not None; ``params`` are more query parameters to repeat."""
    nxt = None
    headers = {}
    if last is not None:
        query = {"limit": limit, "cursor": encode_cursor(last), **params}
        nxt = f"{request.url.path}?{urlencode(query)}"
        headers["Link"] = f'<{nxt}>; rel="next"'
    body = {"items": items, "next": nxt}
    return not_modified(request, body) or json_response(body, headers=headers)
