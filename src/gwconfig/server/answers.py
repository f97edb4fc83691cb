"""How ``gwconfig serve`` answers an error, in one table: :func:`answer_for`.

Every error a request can end in (the :class:`~gwconfig.errors.GwconfigError` tree, the
runtime's errors, authentication, anything unexpected) maps here to one :class:`Answer`: the
HTTP status, the message that is safe to show, the headers, and the type and code of OpenAI's
error shape. The REST API renders an answer as an RFC 9457 problem document
(:mod:`gwconfig.server.problems`), ``/v1`` as OpenAI's ``{"error": ...}``
(:mod:`gwconfig.server.openai.wire`): the same status and headers either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from gwconfig import errors
from gwconfig.runtime import errors as runtime

__all__ = ["APPLY_RUNNING", "Answer", "answer_for", "retry_after", "title"]

#: the problem type of a write refused while an apply holds the lock, and its Retry-After
APPLY_RUNNING = "https://gwconfig.dev/problems/apply-running"
RETRY_AFTER_SECONDS = 2
#: the message of a database failure (the driver's text may quote SQL or a host)
DATABASE_UNAVAILABLE = "the gateway database is unavailable"
#: the code of a request refused because a key is bound to another origin (502)
KEY_ORIGIN_MISMATCH = runtime.KeyOriginMismatchError.code

#: request errors, in OpenAI's words
_REQUEST = "invalid_request_error"
_SERVER = "api_error"


@dataclass(frozen=True)
class Answer:
    """One error as the server answers it, before it is put in a shape."""

    status: int
    #: safe to show: never a secret, a driver's text or an unexpected exception's message
    message: str
    #: OpenAI's error ``type`` and ``code`` (the problem document has neither)
    kind: str = _SERVER
    code: str | None = None
    #: the request field the error is about (OpenAI's ``param``)
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: the problem document's ``type`` (None: ``about:blank``)
    problem_type: str | None = None


#: (error class, status, OpenAI type, OpenAI code, param): the most specific class first
_TABLE: tuple[tuple[type[Exception], int, str, str | None, str | None], ...] = (
    (runtime.NoRouteError, 404, _REQUEST, "model_not_found", "model"),
    (runtime.AmbiguousModelError, 400, _REQUEST, "model_ambiguous", "model"),
    (runtime.DeadlineExceededError, 504, "timeout", "deadline_exceeded", None),
    (runtime.UnsupportedParameterError, 400, _REQUEST, "unsupported_parameter", None),
    (runtime.BadRequestError, 400, _REQUEST, "upstream_rejected", None),
    (runtime.AllTargetsFailedError, 502, _SERVER, "upstream_failed", None),
    (runtime.ConfigLoadError, 503, _SERVER, "config_unavailable", None),
    (errors.RuntimeGatewayError, 502, _SERVER, "gateway_error", None),
    (errors.AuthError, 401, _REQUEST, "invalid_api_key", None),
    (errors.NotFoundError, 404, _REQUEST, "not_found", None),
    (errors.ValidationFailed, 422, _REQUEST, "invalid_value", None),
    (errors.IntegrityViolation, 409, _REQUEST, "conflict", None),
    (errors.StalePlanError, 412, _REQUEST, "precondition_failed", None),
    (errors.LockError, 503, _SERVER, "apply_running", None),
    (errors.SchemaVersionError, 503, _SERVER, "service_unavailable", None),
    (errors.DatabaseError, 503, _SERVER, "service_unavailable", None),
    (errors.SecretError, 500, _SERVER, "internal_error", None),
    (errors.ConfigurationError, 500, _SERVER, "internal_error", None),
    (errors.GwconfigError, 500, _SERVER, "internal_error", None),
)


def title(status: int) -> str:
    """The reason phrase of ``status`` (a problem document's ``title``)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def retry_after(wait: float) -> dict[str, str]:
    """The ``Retry-After`` header for a wait of ``wait`` seconds: whole seconds, rounded up
    (a client retrying after it is not early), at least 1."""
    return {"retry-after": str(max(math.ceil(wait), 1))}


def _text(exc: errors.GwconfigError) -> str:
    return exc.message + (f" ({exc.hint})" if exc.hint else "")


def answer_for(exc: BaseException) -> Answer:
    """How the server answers ``exc`` (the first row of the table its class is under; an
    exception outside the tree is a bug: 500 with a generic message)."""
    if not isinstance(exc, errors.GwconfigError):
        return Answer(500, "internal error", _SERVER, "internal_error")
    cls, status, kind, code, param = next(row for row in _TABLE if isinstance(exc, row[0]))
    message, headers, problem_type = _text(exc), {}, None
    if isinstance(exc, errors.AuthError):
        status, message, headers = exc.status, exc.message, exc.headers
        if status == 403:
            kind, code = "permission_error", "insufficient_scope"
    elif isinstance(exc, runtime.AllTargetsFailedError) and exc.failures:
        if all(f.code == KEY_ORIGIN_MISMATCH for f in exc.failures):
            code = KEY_ORIGIN_MISMATCH
        elif all(f.status == 429 for f in exc.failures):
            waits = [f.retry_after for f in exc.failures if f.retry_after is not None]
            status, kind, code = 429, "rate_limit_error", "upstream_rate_limited"
            headers = retry_after(min(waits, default=1.0))
    elif cls is runtime.ConfigLoadError:
        message = "the gateway configuration is not available"
    elif type(exc) in (errors.DatabaseError, errors.DatabaseUnavailable):
        message = DATABASE_UNAVAILABLE
    elif cls is errors.LockError:  # an apply is running: a moment later the write goes in
        problem_type = APPLY_RUNNING
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return Answer(status, message, kind, code, param, headers, problem_type)
