"""Plumbing of the REST API: ETags and ``If-Match``, cursors, JSON responses, error mapping,
the per-request database session, the write guard (``--read-only``) and the provider row lock.

ETags are strong: the first 32 hex digits of the SHA-256 of the canonical JSON of the
resource's representation (sorted keys), so any change to what a GET shows changes it. A PUT or
DELETE carrying ``If-Match`` locks the provider row first (``SELECT ... FOR UPDATE`` on
PostgreSQL and MariaDB; a no-op ``UPDATE`` on SQLite, which takes the database write lock), then
compares the ETag of what is stored now, then writes in the same transaction: of two writers
sending the same ``If-Match``, one wins and the other gets 412.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gwconfig.db.models import Provider
from gwconfig.errors import (
    DatabaseError,
    GwconfigError,
    IntegrityViolation,
    LockError,
    ValidationFailed,
)
from gwconfig.manifests.in_memory import GATEWAY
from gwconfig.manifests.limits import DEPTH_MESSAGE, json_too_deep
from gwconfig.server.auth import Caller, require
from gwconfig.server.problems import ProblemError
from gwconfig.server.rest_schemas import Problem

T = TypeVar("T")
log = logging.getLogger(__name__)

#: page sizes of the list endpoints
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_CHARS = 1024
#: characters of the fingerprint's hex digest an API key listing shows
SHORT_FINGERPRINT_HEX = 12
READ_ONLY_DETAIL = (
    "this gateway serves its API read-only: providers are managed by manifests. Change the "
    "manifests in providers.d/ (through your Git review), then run 'gwconfig plan' and "
    "'gwconfig apply'; writes through the API are refused while 'gwconfig serve --read-only'."
)

#: the problem type of a write refused while an apply holds the lock, and its Retry-After
APPLY_RUNNING = "https://gwconfig.dev/problems/apply-running"
RETRY_AFTER_SECONDS = 2

_PROBLEM = {
    "model": Problem,
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _problems(*described: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses``: a problem document for each (status, description)."""
    return {code: {**_PROBLEM, "description": what} for code, what in described}


#: OpenAPI ``responses`` of every endpoint, and of the ones that read a resource or write
READ_RESPONSES = _problems(
    (401, "Missing, unknown, revoked or expired token"),
    (403, "The token's scope does not allow this"),
    (404, "No such resource"),
    (422, "Invalid parameters or body (field errors in 'errors')"),
    (503, "The gateway database is unavailable"),
)
WRITE_RESPONSES = {
    **READ_RESPONSES,
    **_problems(
        (405, "The server is read-only: providers are managed by manifests"),
        (409, "Conflicts with an existing resource or a protection"),
        (412, "If-Match does not match the resource's current ETag"),
        (413, "The request body is too large"),
        (500, "The server cannot open its secrets (encryption key)"),
        (503, "The gateway database is unavailable, or an apply is running (Retry-After)"),
    ),
}
#: the query parameters of the paged listings
Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size.")
Cursor = Query(None, max_length=MAX_CURSOR_CHARS, description="From 'next'.")


# -- ETags --------------------------------------------------------------------------------------


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


# -- cursors -----------------------------------------------------------------------------------


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


# -- errors ------------------------------------------------------------------------------------


def problem_for(exc: GwconfigError) -> ProblemError:
    """The problem of a service error: field errors for validation, no driver text for 409s."""
    if isinstance(exc, ValidationFailed):
        errors = [  # the routes' fields are no field of the request's body
            {"loc": ".".join([*(() if loc[:1] == (GATEWAY,) else ("body",)), *map(str, loc)]),
             "msg": msg[:300]}
            for loc, msg in exc.errors[:50]
        ]  # fmt: skip
        detail = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return ProblemError(422, "Unprocessable Content", detail, errors=errors or None)
    if isinstance(exc, LockError):  # an apply is running: a moment later the write goes in
        return ProblemError(
            503,
            "Service Unavailable",
            f"{exc.message}; retry in a moment",
            type_=APPLY_RUNNING,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, IntegrityViolation):
        what = exc.message.split(": ", 1)[0]
        reason = "it already exists" if "already exists" in exc.message else "a constraint"
        return ProblemError(
            409, "Conflict", f"{what}: conflicts with {reason}; nothing was written"
        )
    from gwconfig.server.problems import from_gwconfig_error

    return from_gwconfig_error(exc)


@contextmanager
def translating() -> Iterator[None]:
    """Gwconfig errors turned into problems; SQLAlchemy's into a 503 that quotes nothing."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.warning("database error in the REST API: %s", type(exc).__name__)
        raise problem_for(DatabaseError("database failed")) from None
    except GwconfigError as exc:
        raise problem_for(exc) from None


def translated(fn: Callable[[], T]) -> T:
    """``fn()`` with errors translated (see :func:`translating`)."""
    with translating():
        return fn()


# -- request bodies ----------------------------------------------------------------------------


class DepthLimitedRoute(APIRoute):
    """A route whose JSON body may nest no deeper than a manifest's data (:data:`MAX_DEPTH`):
    measured on the bytes before they are parsed (a body nested 10,000 deep never reaches the
    parser's recursion), refused with 422. The fields that the manifest nests deeper than the
    body (a model's ``parameters``) are measured again, at their level, by the service."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler, after the depth check of the body."""
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            if request.method in ("POST", "PUT", "PATCH") and json_too_deep(await request.body()):
                raise ProblemError(
                    422,
                    "Unprocessable Content",
                    f"the request body is not valid: {DEPTH_MESSAGE}",
                    errors=[{"loc": "body", "msg": DEPTH_MESSAGE}],
                )
            return await handler(request)

        return checked


# -- dependencies ------------------------------------------------------------------------------


def server(request: Request) -> Any:
    """The app's ServerState (``app.state.gw``)."""
    return request.app.state.gw


def db_session(request: Request) -> Iterator[Session]:
    """One ORM session per request (closed, i.e. rolled back if uncommitted, at the end)."""
    with server(request).database.session() as session:
        yield session


def writer(request: Request, caller: Caller = Depends(require("write"))) -> Caller:
    """The caller of a write: scope ``write``, and 405 when the server is read-only."""
    if server(request).settings.read_only:
        raise ProblemError(
            405,
            "Method Not Allowed",
            READ_ONLY_DETAIL,
            type_="https://gwconfig.dev/problems/read-only",
            headers={"Allow": "GET"},
        )
    return caller


reader = require("read")


def lock_provider(session: Session, provider_id: str) -> bool:
    """Lock the provider row for this transaction; False if there is no such provider."""
    if session.get_bind().dialect.name == "sqlite":
        result = session.execute(
            text("UPDATE providers SET provider_id = provider_id WHERE provider_id = :pid"),
            {"pid": provider_id},
        )
        return bool(getattr(result, "rowcount", 0))
    found = session.execute(
        select(Provider.provider_id).where(Provider.provider_id == provider_id).with_for_update()
    ).first()
    return found is not None


def not_found(what: str) -> ProblemError:
    """A 404 problem for ``what``."""
    return ProblemError(404, "Not Found", f"{what} does not exist")


def short_fingerprint(fingerprint: str | None) -> str | None:
    """``hmac-sha256:`` and the first hex digits of a stored fingerprint (None stays None)."""
    if fingerprint is None:
        return None
    prefix, _, digest = fingerprint.partition(":")
    return f"{prefix}:{digest[:SHORT_FINGERPRINT_HEX]}" if digest else None


def shortened(item: dict[str, Any]) -> dict[str, Any]:
    """An API key or parameter dict with its fingerprint shortened."""
    return {**item, "fingerprint": short_fingerprint(item.get("fingerprint"))}
