"""The client's errors from problem documents (no server): one class per status, and one
ValidationFailed for an in-process and a remote validation failure."""

from __future__ import annotations

import httpx
import pytest

from gwconfig import errors
from gwconfig.api_client import ApiError, NotFound, ServerError, ValidationFailed
from gwconfig.api_client.errors import error_for

PROBLEM = {
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "invalid provider",
    "errors": [
        {"loc": "body.models.0.max_tokens", "msg": "Input should be greater than 0"},
        {"loc": "body.nope", "msg": "Extra inputs are not permitted"},
    ],
}


def test_remote_validation_failure_is_the_local_one() -> None:
    failed = error_for(httpx.Response(422, json=PROBLEM))
    assert type(failed) is ValidationFailed
    assert isinstance(failed, ApiError) and isinstance(failed, errors.ValidationFailed)
    assert failed.status == 422 and failed.detail == "invalid provider"
    assert failed.field_errors[0]["loc"] == "body.models.0.max_tokens"
    assert failed.errors == (
        (("body", "models", 0, "max_tokens"), "Input should be greater than 0"),
        (("body", "nope"), "Extra inputs are not permitted"),
    )
    assert str(failed).startswith("422 Unprocessable Content: invalid provider\n")
    with pytest.raises(errors.ValidationFailed):
        raise failed


@pytest.mark.parametrize("status", [400, 413, 422])
def test_every_validation_status_is_validation_failed(status: int) -> None:
    failed = error_for(httpx.Response(status, json={"title": "Bad"}))
    assert isinstance(failed, errors.ValidationFailed) and failed.errors == ()


def test_other_errors_are_not_validation_failures() -> None:
    missing = error_for(httpx.Response(404, json={"title": "Not Found"}))
    broken = error_for(httpx.Response(502, content=b"<html>"))
    assert type(missing) is NotFound and type(broken) is ServerError
    assert not isinstance(missing, errors.ValidationFailed)
    assert broken.title == "Bad Gateway" and broken.status == 502
