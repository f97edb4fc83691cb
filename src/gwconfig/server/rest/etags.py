"""ETags of the REST API and the JSON responses that carry them.

ETags are strong: the first 32 hex digits of the SHA-256 of the canonical JSON of the
resource's representation (sorted keys), so any change to what a GET shows changes it. A PUT or
DELETE carrying ``If-Match`` locks the provider row first (``SELECT ... FOR UPDATE`` on
PostgreSQL and MariaDB; a no-op ``UPDATE`` on SQLite, which takes the database write lock), then
compares the ETag of what is stored now, then writes in the same transaction: of two writers
sending the same ``If-Match``, one wins and the other gets 412.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from gwconfig.server.problems import ProblemError


def etag_of(body: Any) -> str:
    """The strong ETag of a representation (quoted)."""
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f'"{digest[:32]}"'


def if_match_passes(header: str | None, current: str) -> bool:
    """RFC 9110 ``If-Match`` with strong comparison (no header: passes; ``*``: passes)."""
    if header is None:
        return True
    tags = [t.strip() for t in header[:4096].split(",")]
    return "*" in tags or current in tags


def check_if_match(header: str | None, body: Any, what: str) -> None:
    """Raise 412 unless ``If-Match`` matches the ETag of ``body`` (the current state)."""
    current = etag_of(body)
    if not if_match_passes(header, current):
        raise ProblemError(
            412,
            "Precondition Failed",
            f"{what} changed since you read it (its ETag is now {current}); "
            "GET it again, reapply your change and retry",
            headers={"ETag": current},
        )


def json_response(
    body: Any, *, status: int = 200, etag: bool = True, headers: Mapping[str, str] | None = None
) -> Response:
    """``body`` as JSON with its ETag (unless ``etag=False``)."""
    out = dict(headers or {})
    if etag:
        out["ETag"] = etag_of(body)
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=out
    )


def not_modified(request: Request, body: Any) -> Response | None:
    """304 when ``If-None-Match`` names the current ETag of ``body``, else None."""
    header = request.headers.get("if-none-match")
    return None if header is None else not_modified_etag(header, etag_of(body))


def not_modified_etag(header: str | None, current: str) -> Response | None:
    """304 when the ``If-None-Match`` header names ``current`` (weak comparison), else None."""
    if header is None:
        return None
    tags = [t.strip().removeprefix("W/") for t in header[:4096].split(",")]
    if "*" in tags or current in tags:
        return Response(status_code=304, headers={"ETag": current})
    return None
