"""A caller without a valid token learns nothing but 401: not whether its body is valid, not the
API's documentation (unless ``serve --public-docs``). A real server on SQLite; every REST
operation that takes a body is taken from the server's own OpenAPI document."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gwconfig.db.session import open_database
from gwconfig.errors import DatabaseError
from gwconfig.server.state import ServeSettings
from serve_helpers import ServedApp, make_token, serve_app

#: bodies FastAPI refuses with 422: not JSON, and JSON of the wrong shape
NOT_JSON = b"{not json"
BAD_BODIES = (NOT_JSON, b'{"provider_id": 5, "models": "x"}')
DOCS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An upgraded SQLite database for the module."""
    path: Path = tmp_path_factory.mktemp("auth-first") / "gateway.db"
    open_database(f"sqlite:///{path}", upgrade=True).dispose()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def tokens(url: str) -> dict[str, str]:
    """A token of each scope the tests use."""
    return {scope: make_token(url, scope) for scope in ("read", "write", "invoke", "admin")}


@pytest.fixture(scope="module")
def served(url: str) -> Iterator[ServedApp]:
    """The server with its default settings."""
    with serve_app(ServeSettings(database_url=url)) as server:
        yield server


def body_operations(served: ServedApp, token: str) -> list[tuple[str, str]]:
    """(method, path with its parameters filled in) of every REST operation that takes a body
    (the document also lists the ``/v1`` endpoints, answered by the OpenAI front in its shape)."""
    spec = httpx.get(f"{served.base_url}/openapi.json", headers=bearer(token)).json()
    found = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation and path.startswith("/api/")
    ]
    return found


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send(client: httpx.Client, method: str, path: str, body: bytes, **headers: str) -> Any:
    return client.request(
        method, path, content=body, headers={"content-type": "application/json", **headers}
    )


def test_rest_bodies_are_not_looked_at_before_the_token(
    served: ServedApp, tokens: dict[str, str]
) -> None:
    operations = body_operations(served, tokens["read"])
    assert ("POST", "/api/v1/providers") in operations and ("PUT", "/api/v1/providers/x") in (
        operations
    )
    assert len(operations) >= 6
    unknown = {"Authorization": "Bearer gwc_" + "x" * 43}
    with served.client() as client:
        for method, path in operations:
            for body in BAD_BODIES:
                for headers in ({}, unknown, {"Authorization": "Basic dTpw"}):
                    response = send(client, method, path, body, **headers)
                    assert response.status_code == 401, (method, path, body, response.text)
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.headers["www-authenticate"].startswith("Bearer")
                    assert "errors" not in response.json()
                # a valid token of the wrong scope: 403 before the body's fields are checked
                response = send(client, method, path, body, **bearer(tokens["invoke"]))
                assert response.status_code == (422 if body == NOT_JSON else 403), response.text
                # a token that may write: the body is read, and refused as before
                response = send(client, method, path, body, **bearer(tokens["write"]))
                assert response.status_code == 422, (method, path, response.text)
                assert response.json()["errors"]


def test_unknown_api_paths_need_a_token_too(served: ServedApp, tokens: dict[str, str]) -> None:
    with served.client() as client:
        assert client.get("/api/v1/nothing-here").status_code == 401
        assert client.post("/api/v2/x", content=b"{").status_code == 401
        assert client.get("/api/v1/nothing-here", headers=bearer(tokens["read"])).status_code == (
            404
        )


def test_openai_surface_checks_the_token_before_the_body(
    served: ServedApp, tokens: dict[str, str]
) -> None:
    with served.client() as client:
        for body in (*BAD_BODIES, b'{"model": 1}'):
            response = send(client, "POST", "/v1/chat/completions", body)
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "invalid_api_key"
            response = send(
                client, "POST", "/v1/chat/completions", body, **bearer(tokens["invoke"])
            )
            assert response.status_code == 400, response.text
        assert client.get("/metrics").status_code == 401
        assert client.get("/v1/models").status_code == 401


def test_the_api_documentation_needs_a_token_by_default(
    served: ServedApp, tokens: dict[str, str]
) -> None:
    with served.client() as client:
        for path in DOCS:
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers["content-type"] == "application/problem+json"
            # any scope may read it
            assert client.get(path, headers=bearer(tokens["invoke"])).status_code == 200, path
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_public_docs_opens_only_the_documentation(url: str, tokens: dict[str, str]) -> None:
    settings = ServeSettings(database_url=url, public_docs=True)
    with serve_app(settings) as server, server.client() as client:
        for path in DOCS:
            assert client.get(path).status_code == 200, path
        assert client.get("/openapi.json").json()["paths"]["/api/v1/providers"]
        assert client.get("/api/v1/providers").status_code == 401
        assert send(client, "POST", "/api/v1/providers", BAD_BODIES[0]).status_code == 401


def test_public_docs_reaches_the_workers() -> None:
    """``serve --workers N`` passes the setting to the workers' factory."""
    for value in (True, False):
        env = ServeSettings(public_docs=value).to_env()
        with pytest.MonkeyPatch.context() as patch:
            for name, text in env.items():
                patch.setenv(name, text)
            assert ServeSettings.from_env().public_docs is value


def test_a_token_store_that_fails_is_503_not_500(
    url: str, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "canary-" + os.urandom(6).hex()

    def failing_lookup(*_args: Any) -> None:
        raise DatabaseError(f"SELECT * FROM api_tokens WHERE token_hash = '{canary}'")

    settings = ServeSettings(database_url=url, token_cache_seconds=0)
    with serve_app(settings) as server, server.client(tokens["read"]) as client:
        monkeypatch.setattr("gwconfig.server.auth.find_token", failing_lookup)
        for response in (client.get("/api/v1/providers"), client.get("/openapi.json")):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == "the gateway database is unavailable"
            assert canary not in response.text and "SELECT" not in response.text
