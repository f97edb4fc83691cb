"""Errors of ``gwconfig serve`` as RFC 9457 ``application/problem+json``, in one place.

Every error path ends here: :class:`ProblemError` raised by a route, FastAPI's validation errors
(422, the field errors without the values sent), Starlette's HTTP errors (404, 405...), the
:class:`~gwconfig.errors.GwconfigError` tree (each class its status, from the one table of
:mod:`gwconfig.server.answers`) and anything unexpected
(500, a generic body; the log names the exception type and where it was raised, never its
message, which might quote a value). :class:`BodyLimit` refuses request bodies over the limit
with 413 before the application reads them.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gwconfig import errors
from gwconfig.server.answers import answer_for, title

log = logging.getLogger("gwconfig.server")

MEDIA_TYPE = "application/problem+json"
#: the most field errors one 422 lists
MAX_FIELD_ERRORS = 50


@dataclass(eq=False)
class ProblemError(Exception):
    """An HTTP error answered as a problem document (raise it from any route)."""

    status: int
    title: str
    detail: str | None = None
    _: KW_ONLY
    type_: str | None = None
    errors: Sequence[dict[str, str]] | None = None
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.detail or self.title)
        self.errors = list(self.errors) if self.errors is not None else None


def problem_body(problem: ProblemError, instance: str | None) -> dict[str, Any]:
    """The RFC 9457 document of ``problem`` (``instance``: the request path)."""
    body: dict[str, Any] = {
        "type": problem.type_ or "about:blank",
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail is not None:
        body["detail"] = problem.detail
    if instance is not None:
        body["instance"] = instance
    if problem.errors is not None:
        body["errors"] = problem.errors
    return body


def problem_response(problem: ProblemError, instance: str | None = None) -> Response:
    """``problem`` as an ``application/problem+json`` response."""
    return Response(
        orjson.dumps(problem_body(problem, instance)),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


def from_gwconfig_error(exc: errors.GwconfigError) -> ProblemError:
    """The problem for a gwconfig error, as :func:`~gwconfig.server.answers.answer_for`
    answers it: its class's status, its message (never a secret; a database failure says only
    that the database failed: a driver's text may quote SQL), the headers it needs."""
    answer = answer_for(exc)
    return ProblemError(
        answer.status,
        title(answer.status),
        answer.message,
        type_=answer.problem_type,
        headers=dict(answer.headers) or None,
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """``loc`` and ``msg`` of each validation error; never the input (it may be a secret)."""
    out: list[dict[str, str]] = []
    for error in exc.errors()[:MAX_FIELD_ERRORS]:
        loc = ".".join(str(part) for part in error.get("loc", ()))
        out.append({"loc": loc, "msg": str(error.get("msg", "invalid value"))[:300]})
    return out


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc, request.url.path)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problem = ProblemError(422, title(422), "the request is not valid", errors=_field_errors(exc))
    return problem_response(problem, request.url.path)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, ProblemError):  # FastAPI wraps errors of reading the body (413)
        return problem_response(exc.__cause__, request.url.path)
    phrase = title(exc.status_code)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(
        ProblemError(exc.status_code, phrase, detail, headers=headers),
        request.url.path,
    )


async def _on_gwconfig(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GwconfigError)
    return problem_response(from_gwconfig_error(exc), request.url.path)


def install(app: FastAPI) -> None:
    """Register the problem handlers on ``app`` (the 500 path is :class:`ErrorsAndLimits`)."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(errors.GwconfigError, _on_gwconfig)


def log_unexpected(exc: BaseException, path: str) -> None:
    """Log an unexpected exception: its type and where (file, line, function), never its
    message, locals or source lines."""
    frames = "\n".join(
        f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)
    )
    log.error("unexpected %s answering %s\n%s", type(exc).__name__, path[:200], frames)


class ErrorsAndLimits:
    """ASGI middleware: 413 for bodies over ``max_body_bytes``, 500 problems for the unexpected.

    The limit applies to ``Content-Length`` before the application runs, and to the bytes
    actually received (a chunked body): past the limit, ``receive`` raises a 413
    :class:`ProblemError`. An exception nobody handled becomes a generic 500 problem (if the
    response has not started) and is logged by :func:`log_unexpected`.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self) -> ProblemError:
        return ProblemError(
            413, title(413), f"the request body is over {self.max_body_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_body_bytes:
                    problem = (
                        self._too_large() if declared >= 0 else ProblemError(400, "Bad Request")
                    )
                    await problem_response(problem, path)(scope, receive, send)
                    return
        started = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise self._too_large()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ProblemError as exc:
            if not started:
                await problem_response(exc, path)(scope, receive, send)
        except Exception as exc:
            log_unexpected(exc, path)
            if not started:
                problem = ProblemError(500, title(500), "an unexpected error occurred")
                await problem_response(problem, path)(scope, receive, send)
