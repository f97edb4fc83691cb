"""``gwconfig serve``'s core on a real uvicorn server: the auth matrix, problem+json, limits.

Test routes (one per scope, a crash, a validated body, a database failure, an audited write)
are added to the real app before it starts; everything else is the app ``serve`` runs.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from starlette.requests import Request

from gwconfig.db.models import AuditEvent, utcnow
from gwconfig.db.session import open_database
from gwconfig.db.tokens import SCOPES
from gwconfig.errors import DatabaseError
from gwconfig.seed.service import ProviderService
from gwconfig.server.auth import Caller, require
from gwconfig.server.state import ServerState, ServeSettings, server_state
from serve_helpers import ServedApp, make_token, serve_app

#: what each token scope may call (written out, not computed by the rule under test)
ALLOWED = {
    "read": {"read"},
    "write": {"read", "write"},
    "runtime": {"runtime"},
    "invoke": {"invoke"},
    "admin": set(SCOPES),
}
CANARY = "canary-" + secrets.token_hex(12)


class Body(BaseModel):
    """A body with a secret field and a bounded one."""

    api_key: str = Field(min_length=100)
    count: int = Field(ge=0, le=10)


def test_routes(app: FastAPI) -> None:
    """Add the test routes to ``app``."""
    router = APIRouter()
    for scope in SCOPES:

        def endpoint(caller: Caller = Depends(require(scope))) -> dict[str, str]:
            return {"name": caller.name}

        router.add_api_route(f"/t/{scope}", endpoint, methods=["GET"])

    @router.get("/t/boom")
    def boom() -> None:
        raise RuntimeError(f"crash quoting {CANARY} and SELECT * FROM api_tokens")

    @router.post("/t/body")
    def body(payload: Body) -> dict[str, int]:
        return {"count": payload.count}

    @router.get("/t/db")
    def db_down() -> None:
        raise DatabaseError(f"SELECT secret FROM t WHERE k = '{CANARY}' failed")

    @router.post("/t/audit")
    def audited(request: Request, caller: Caller = Depends(require("write"))) -> dict[str, Any]:
        state: ServerState = server_state(request)
        with state.database.session() as session:
            service = ProviderService(session, state.encryption_keys, current_user_id=caller.name)
            created = service.create_provider(
                {"provider_id": "p1", "provider_type": "openai", "display_name": "P1"}
            )
        return {"provider_id": created["provider_id"]}

    app.include_router(router)


test_routes.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def served(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, fernet_key: str
) -> Iterator[ServedApp]:
    """The app on a fresh SQLite database, token lookups not cached (revocation is immediate)."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    open_database(sqlite_url, upgrade=True).dispose()
    settings = ServeSettings(database_url=sqlite_url, token_cache_seconds=0, max_body_bytes=4096)
    with serve_app(settings, prepare=test_routes) as server:
        yield server


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem document of ``response``, checked for ``status`` and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    assert "Traceback" not in response.text and CANARY not in response.text
    assert "SELECT" not in response.text
    return body


def test_every_scope_against_every_scope_endpoint(served: ServedApp, sqlite_url: str) -> None:
    for granted in SCOPES:
        token = make_token(sqlite_url, granted, name=f"tok-{granted}")
        with served.client(token) as client:
            for needed in SCOPES:
                response = client.get(f"/t/{needed}")
                if needed in ALLOWED[granted]:
                    assert response.status_code == 200, (granted, needed, response.text)
                    assert response.json() == {"name": f"tok-{granted}"}
                else:
                    body = problem(response, 403)
                    assert f"'{granted}'" in body["detail"] and f"'{needed}'" in body["detail"]
                    assert "insufficient_scope" in response.headers["www-authenticate"]
            assert client.get("/api/v1/whoami").json()["scope"] == granted


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer gwc_" + "A" * 43,
        "Bearer not-a-token",
        "Bearer " + "x" * 10_000,
    ],
)
def test_missing_malformed_or_unknown_tokens_are_401(served: ServedApp, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    with served.client() as client:
        for path in ("/t/read", "/t/admin", "/api/v1/whoami"):
            response = client.get(path, headers=headers)
            problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_revoked_and_expired_tokens_are_401(served: ServedApp, sqlite_url: str) -> None:
    from gwconfig.db.tokens import revoke_token

    token = make_token(sqlite_url, "admin", name="soon-revoked")
    expiring = make_token(sqlite_url, "admin", name="soon-expired", expires_in=timedelta(days=1))
    with served.client(token) as client:
        assert client.get("/t/read").status_code == 200
    with served.client(expiring) as client:
        assert client.get("/t/read").status_code == 200
    db = open_database(sqlite_url)
    revoke_token(db, "soon-revoked")
    with db.transaction() as session:
        session.execute(
            text("UPDATE api_tokens SET expires_at = :t WHERE name = 'soon-expired'"),
            {"t": (utcnow() - timedelta(seconds=1)).replace(tzinfo=None)},
        )
    db.dispose()
    with served.client(token) as client:
        assert "revoked" in problem(client.get("/t/read"), 401)["detail"]
    with served.client(expiring) as client:
        assert "expired" in problem(client.get("/t/read"), 401)["detail"]


def test_a_use_is_recorded(served: ServedApp, sqlite_url: str) -> None:
    from gwconfig.db.tokens import list_tokens

    token = make_token(sqlite_url, "read", name="used")
    make_token(sqlite_url, "read", name="unused")
    with served.client(token) as client:
        assert client.get("/t/read").status_code == 200
    served.state.tokens.flush()
    db = open_database(sqlite_url)
    used = {r.name: r.last_used_at for r in list_tokens(db)}
    db.dispose()
    assert used["unused"] is None and used["used"] is not None


def test_the_token_name_is_the_audit_actor(served: ServedApp, sqlite_url: str) -> None:
    token = make_token(sqlite_url, "write", name="backoffice")
    with served.client(token) as client:
        assert client.post("/t/audit").json() == {"provider_id": "p1"}
    db = open_database(sqlite_url)
    with db.session() as session:
        actors = set(session.scalars(select(AuditEvent.actor)))
    db.dispose()
    assert actors == {"backoffice"}


def test_health_and_readiness_need_no_token(served: ServedApp) -> None:
    with served.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {
            "status": "ready",
            "revision": None,
            "revision_served": None,
            "generation": None,
            "database": "up",
            "pid": os.getpid(),
            "shared_state": "per-process",
        }


def test_readiness_stays_ready_and_says_the_database_is_unavailable(sqlite_url: str) -> None:
    open_database(sqlite_url, upgrade=True).dispose()

    def failing_revision() -> int | None:
        raise DatabaseError(f"SELECT max(number) FROM config_revisions: {CANARY}")

    def prepare(app: FastAPI) -> None:
        app.state.gw.revision = failing_revision

    with serve_app(sqlite_url, prepare=prepare) as server, server.client() as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    # the configuration is loaded: the process keeps serving it and stays in the load balancer
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["revision"]) == ("ready", "unavailable", None)
    assert CANARY not in response.text and "SELECT" not in response.text


def test_unknown_paths_and_methods_are_problems(served: ServedApp) -> None:
    with served.client() as client:
        assert problem(client.get("/nope"), 404)["instance"] == "/nope"
        problem(client.delete("/healthz"), 405)


def test_bodies_over_the_limit_are_413(served: ServedApp, sqlite_url: str) -> None:
    token = make_token(sqlite_url, "admin")
    with served.client(token) as client:
        problem(client.post("/t/body", content=b"{" + b" " * 5000 + b"}"), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(10):
                yield b" " * 1000

        problem(client.post("/t/body", content=chunks()), 413)
        body = {"api_key": "k" * 100, "count": 1}
        assert client.post("/t/body", json=body).json() == {"count": 1}


def test_validation_errors_name_fields_never_values(served: ServedApp) -> None:
    with served.client() as client:
        response = client.post("/t/body", json={"api_key": CANARY, "count": 11})
    body = problem(response, 422)
    assert {e["loc"] for e in body["errors"]} == {"body.api_key", "body.count"}
    assert all(set(e) == {"loc", "msg"} for e in body["errors"])


def test_unexpected_errors_are_generic_500s_logged_without_their_message(
    served: ServedApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), served.client() as client:
        body = problem(client.get("/t/boom"), 500)
        assert body["detail"] == "an unexpected error occurred"
        assert problem(client.get("/t/db"), 503)["detail"] == "the gateway database is unavailable"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "/t/boom" in logged
    assert CANARY not in logged and "SELECT" not in logged


def test_revocation_waits_at_most_the_cache_bound(sqlite_url: str) -> None:
    from gwconfig.db.tokens import revoke_token
    from gwconfig.server.auth import AuthError, TokenAuthenticator

    now = [0.0]
    token = make_token(sqlite_url, "read", name="cached")
    db = open_database(sqlite_url)
    auth = TokenAuthenticator(db, cache_seconds=1.0, clock=lambda: now[0])
    assert auth.authenticate(f"Bearer {token}").name == "cached"
    revoke_token(db, "cached")
    now[0] = 0.5
    assert auth.authenticate(f"Bearer {token}").name == "cached"  # within the bound
    now[0] = 1.0
    with pytest.raises(AuthError) as info:
        auth.authenticate(f"Bearer {token}")
    assert info.value.status == 401
    db.dispose()


def test_a_served_request_on_each_engine(db_url: str) -> None:
    url = db_url
    open_database(url, upgrade=True).dispose()
    token = make_token(url, "runtime", name="ci")
    with serve_app(url) as server, server.client(token) as client:
        assert client.get("/api/v1/whoami").json()["name"] == "ci"
        assert client.get("/readyz").json()["status"] == "ready"
        problem(client.get("/nope"), 404)
    with serve_app(url) as server, server.client("gwc_" + "B" * 43) as client:
        problem(client.get("/api/v1/whoami"), 401)


def test_async_authentication_matches_the_sync_one(sqlite_url: str) -> None:
    import asyncio

    from gwconfig.server.auth import AuthError, TokenAuthenticator

    token = make_token(sqlite_url, "invoke", name="fast", models=("gpt-*",), rpm=30)
    db = open_database(sqlite_url)
    auth = TokenAuthenticator(db)
    caller = asyncio.run(auth.authenticate_async(f"Bearer {token}"))
    assert caller == auth.authenticate(f"bearer {token}")
    assert (caller.name, caller.scope, caller.models, caller.rpm) == (
        "fast",
        "invoke",
        ("gpt-*",),
        30,
    )
    assert caller.allows_model("gpt-4o") and not caller.allows_model("claude-3")
    with pytest.raises(AuthError) as info:
        asyncio.run(auth.authenticate_async(None))
    assert info.value.status == 401 and info.value.headers == {
        "WWW-Authenticate": 'Bearer realm="gwconfig"'
    }
    auth.close()
    db.dispose()


def test_concurrent_misses_of_a_token_share_one_lookup(sqlite_url: str) -> None:
    import asyncio
    import threading

    from gwconfig.server.auth import TokenAuthenticator

    token = make_token(sqlite_url, "read", name="burst")
    db = open_database(sqlite_url)
    auth = TokenAuthenticator(db)
    real, calls, gate = auth._lookup, [], threading.Event()

    def lookup(text: str) -> Any:
        calls.append(text)
        assert gate.wait(60), "never released"  # a safety net
        return real(text)

    auth._lookup = lookup  # type: ignore[method-assign]

    async def burst() -> list[Caller]:
        waiting = [
            asyncio.ensure_future(auth.authenticate_async(f"Bearer {token}")) for _ in range(8)
        ]
        await asyncio.sleep(0)  # each request reaches its wait for the lookup
        gate.set()
        return list(await asyncio.gather(*waiting))

    callers = asyncio.run(burst())
    assert len(calls) == 1 and {c.name for c in callers} == {"burst"} and not auth._pending
    auth.close()
    db.dispose()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("NotFoundError", 404),
        ("ValidationFailed", 422),
        ("IntegrityViolation", 409),
        ("LockError", 503),
        ("SchemaVersionError", 503),
        ("EncryptionKeyError", 500),
        ("GwconfigError", 500),
    ],
)
def test_gwconfig_errors_have_a_status_and_their_message(error: str, status: int) -> None:
    from gwconfig import errors
    from gwconfig.server.problems import from_gwconfig_error

    problem_ = from_gwconfig_error(getattr(errors, error)("what happened", hint="what to do"))
    assert problem_.status == status
    assert problem_.detail == "what happened (what to do)"
