"""Errors of the REST API: the problems its routes raise, the OpenAPI ``responses`` that
document them, service errors translated, and the depth limit of request bodies."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError

from gwconfig.errors import (
    DatabaseError,
    GwconfigError,
    IntegrityViolation,
    LockError,
    ValidationFailed,
)
from gwconfig.manifests.in_memory import GATEWAY
from gwconfig.manifests.limits import DEPTH_MESSAGE, json_too_deep
from gwconfig.server.problems import ProblemError, from_gwconfig_error
from gwconfig.server.rest.schemas import Problem

T = TypeVar("T")
log = logging.getLogger(__name__)

READ_ONLY_DETAIL = (
    "this gateway serves its API read-only: providers are managed by manifests. Change the "
    "manifests in providers.d/ (through your Git review), then run 'gwconfig plan' and "
    "'gwconfig apply'; writes through the API are refused while 'gwconfig serve --read-only'."
)


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

# -- errors ------------------------------------------------------------------------------------


#: field errors about these documents name no field of the request's body
_ELSEWHERE = ((GATEWAY,), ("consumers",))


def problem_for(exc: GwconfigError) -> ProblemError:
    """The problem of a service error (the status of :func:`~gwconfig.server.answers.answer_for`):
    field errors for validation, a retry for a running apply, no driver text for 409s."""
    problem = from_gwconfig_error(exc)
    if isinstance(exc, ValidationFailed):
        errors = [  # the routes' and consumers' fields are no field of the request's body
            {"loc": ".".join([*(() if loc[:1] in _ELSEWHERE else ("body",)), *map(str, loc)]),
             "msg": msg[:300]}
            for loc, msg in exc.errors[:50]
        ]  # fmt: skip
        # RFC 9110's name, whatever Python's phrase (FastAPI's own 422s keep Python's)
        return replace(problem, title="Unprocessable Content", errors=errors or None)
    if isinstance(exc, LockError):  # a moment later the write goes in
        return replace(problem, detail=f"{exc.message}; retry in a moment")
    if isinstance(exc, IntegrityViolation):
        what = exc.message.split(": ", 1)[0]
        reason = "it already exists" if "already exists" in exc.message else "a constraint"
        return replace(problem, detail=f"{what}: conflicts with {reason}; nothing was written")
    return problem


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


def not_found(what: str) -> ProblemError:
    """A 404 problem for ``what``."""
    return ProblemError(404, "Not Found", f"{what} does not exist")
