"""The errors of :mod:`gwconfig.api_client`: one class per kind of problem the API answers.

Each carries the server's RFC 9457 problem document: ``status``, ``title``, ``detail``,
``type`` and ``field_errors`` (``[{"loc": "body.models.0.max_tokens", "msg": ...}]``), and the
whole document as ``problem``. The server never puts a secret in a problem, and neither do
these errors (a connection failure names the URL without credentials).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import httpx

from gwconfig import errors
from gwconfig.errors import GwconfigError


class ApiError(GwconfigError):
    """The API answered an error (``status`` >= 400) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.title = str(problem.get("title") or "Error")
        self.detail: str | None = problem.get("detail")
        self.type = str(problem.get("type") or "about:blank")
        listed = problem.get("errors")
        self.field_errors: list[dict[str, Any]] = list(listed) if isinstance(listed, list) else []
        message = f"{status} {self.title}" + (f": {self.detail}" if self.detail else "")
        for err in self.field_errors[:10]:
            message += f"\n  {err.get('loc')}: {err.get('msg')}"
        super().__init__(message)


class Unauthorized(ApiError):
    """401: no token, or an unknown, revoked or expired one."""


class Forbidden(ApiError):
    """403: the token's scope does not allow this."""


class NotFound(ApiError):
    """404: no such provider, model, key, parameter or revision."""


class ReadOnly(ApiError):
    """405: the server is read-only (providers are managed by manifests: plan/apply)."""


class Conflict(ApiError):
    """409: it exists already, or a protection refuses the change."""


class PreconditionFailed(Conflict):
    """412: ``if_match`` no longer matches: someone changed it since you read it."""


class ValidationFailed(ApiError, errors.ValidationFailed):
    """422 (or 400/413): the request is invalid; ``field_errors`` says where.

    It is a :class:`gwconfig.errors.ValidationFailed` too, so one ``except`` of that catches a
    validation failure whether the gateway was called in-process or over the API; ``errors``
    holds the field errors as ``(location, message)`` pairs, as a local one does.
    """

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(status, problem)
        self.errors = tuple(
            (_location(err.get("loc")), str(err.get("msg") or "")) for err in self.field_errors
        )


def _location(loc: Any) -> tuple[str | int, ...]:
    """``"body.models.0.max_tokens"`` as ``("body", "models", 0, "max_tokens")``."""
    parts = [str(p) for p in loc] if isinstance(loc, list) else str(loc or "").split(".")
    return tuple(int(p) if p.isdigit() else p for p in parts if p)


class ServerError(ApiError):
    """5xx: the server or its database failed."""


class ConnectionFailed(ApiError):
    """The server could not be reached or did not answer in time (``status`` 0)."""

    @classmethod
    def of(cls, exc: httpx.HTTPError, base_url: str) -> ConnectionFailed:
        """The error for a transport failure talking to ``base_url``."""
        kind = type(exc).__name__
        return cls(0, {"title": "Connection failed", "detail": f"{base_url}: {kind}"})


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: ReadOnly,
    409: Conflict,
    412: PreconditionFailed,
    413: ValidationFailed,
    422: ValidationFailed,
}


def error_for(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` of an error response (its problem document, or a stand-in)."""
    status = response.status_code
    problem: dict[str, Any] = {}
    with suppress(ValueError):  # not JSON: a stand-in problem below
        body = response.json()
        if isinstance(body, dict):
            problem = body
    if not problem:
        problem = {"title": response.reason_phrase or "Error", "status": status}
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, problem)
