"""``gwconfig serve`` while its database is unreachable: the data plane keeps serving.

The outage is real: the test's own PostgreSQL database is renamed away (its connections ended
first) and renamed back to recover. Waits are bounded polls of ``/readyz`` or the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from builders import write_manifests
from gwconfig.db.models import UsageRecord
from gwconfig.db.session import open_database
from gwconfig.runtime.usage_buffer import UsageBuffer
from gwconfig.server.state import ServeSettings
from reconcile_helpers import apply
from serve_helpers import ServedApp, make_token, serve_app

#: the bound of every poll (a safety net: each returns as soon as its condition holds)
DEADLINE = 30.0


def poll(condition: Callable[[], Any], what: str) -> Any:
    """``condition()`` once it is truthy, polled until :data:`DEADLINE`."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def gateway_docs(reply: str) -> list[dict[str, Any]]:
    """A mock provider answering ``reply`` and a route ``local`` to it."""
    return [
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": "mock",
            "provider_type": "mock",
            "models": [{"model_id": "chat", "parameters": {"reply": reply}}],
        },
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Gateway",
            "routes": [{"name": "local", "targets": [{"model": "mock/chat"}]}],
        },
    ]


class Outage:
    """Makes the test's own PostgreSQL database unreachable (renamed) and back."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.name = str(parsed.database)
        self.admin = create_engine(parsed.set(database="test"), isolation_level="AUTOCOMMIT")

    def _rename(self, old: str, new: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:  # a connection may come back between the two statements: end it again
            with self.admin.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
                    ),
                    {"d": old},
                )
                try:
                    conn.execute(text(f"ALTER DATABASE {old} RENAME TO {new}"))
                    return
                except Exception:
                    assert time.monotonic() < deadline, "the database kept being used"

    def begin(self) -> None:
        self._rename(self.name, self.name + "_gone")

    def end(self) -> None:
        self._rename(self.name + "_gone", self.name)
        self.admin.dispose()


def chat(client: httpx.Client, token: str) -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={"model": "local", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {token}"},
    )


def readyz(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def metric(client: httpx.Client, token: str, name: str) -> float | None:
    text_ = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    for line in text_.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def usage_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(UsageRecord)) or 0)
    finally:
        engine.dispose()


@pytest.fixture
def served(
    pg_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[ServedApp, dict[str, str], Path]]:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.chdir(tmp_path)
    open_database(pg_url, upgrade=True).dispose()
    root = write_manifests(tmp_path / "m", *gateway_docs("before"))
    apply(root, pg_url)
    tokens = {
        "app": make_token(pg_url, "invoke", name="app"),
        "adm": make_token(pg_url, "admin", name="adm"),
        "never": make_token(pg_url, "invoke", name="never-used"),
    }
    # no token cache: every request looks its token up, so the outage is met at once
    settings = ServeSettings(database_url=pg_url, token_cache_seconds=0)
    with serve_app(settings) as server:
        yield server, tokens, root


def test_a_database_outage_never_stops_llm_traffic(
    served: tuple[ServedApp, dict[str, str], Path], pg_url: str
) -> None:
    server, tokens, root = served
    outage = Outage(pg_url)
    with server.client() as client:
        assert chat(client, tokens["app"]).json()["choices"][0]["message"]["content"] == "before"
        first = client.get("/api/v1/config", headers={"Authorization": f"Bearer {tokens['adm']}"})
        etag = first.headers["etag"]
        assert readyz(client)["database"] == "up"
        poll(lambda: metric(client, tokens["adm"], "gwconfig_database_up") == 1, "database up")

        outage.begin()
        try:
            poll(lambda: readyz(client)["database"] == "unavailable", "readyz sees the outage")
            assert readyz(client)["status"] == "ready"
            assert client.get("/healthz").status_code == 200
            for _ in range(2):  # the token cache is off: each request misses the database
                answer = chat(client, tokens["app"])
                assert answer.status_code == 200, answer.text
                assert answer.json()["choices"][0]["message"]["content"] == "before"
            unknown = chat(client, tokens["never"])
            assert unknown.status_code == 503, unknown.text
            assert unknown.json()["error"]["message"] == "the gateway database is unavailable"
            adm = {"Authorization": f"Bearer {tokens['adm']}"}
            same = client.get("/api/v1/config", headers={**adm, "If-None-Match": etag})
            assert same.status_code == 304
            for response in (
                client.delete("/api/v1/providers/mock", headers=adm),
                client.get("/api/v1/providers", headers=adm),
                client.get(
                    "/api/v1/providers", headers={"Authorization": "Bearer " + tokens["never"]}
                ),
            ):
                assert response.status_code == 503, response.text
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["detail"] == "the gateway database is unavailable"
            assert metric(client, tokens["adm"], "gwconfig_database_up") == 0
            usage = server.state.runtime.client.usage if server.state.runtime else None
            assert usage is not None
            poll(lambda: usage.buffered >= 2, "usage rows kept in memory")
        finally:
            outage.end()

        poll(lambda: readyz(client)["database"] == "up", "readyz sees the database again")
        poll(lambda: metric(client, tokens["adm"], "gwconfig_database_up") == 1, "metric back")
        poll(lambda: usage_rows(pg_url) == 3, "the buffered usage rows written")
        assert metric(client, tokens["adm"], "gwconfig_usage_records_dropped_total") == 0
        # an apply made after the recovery is served without a restart
        apply(write_manifests(root, *gateway_docs("after")), pg_url)
        poll(
            lambda: (
                chat(client, tokens["app"]).json()["choices"][0]["message"]["content"] == "after"
            ),
            "the new configuration served",
        )
        assert chat(client, tokens["never"]).status_code == 200


def test_the_usage_buffer_is_bounded_and_counts_what_it_drops() -> None:
    buffer = UsageBuffer(max_rows=3)
    buffer.keep([{"n": 1}, {"n": 2}])
    buffer.keep([{"n": 3}, {"n": 4}, {"n": 5}])
    assert (len(buffer), buffer.dropped) == (3, 2)
    assert buffer.take() == [{"n": 3}, {"n": 4}, {"n": 5}]  # the oldest went first
    assert (len(buffer), buffer.dropped) == (0, 2)


def test_a_known_token_outlives_the_outage_only_for_the_stale_bound(pg_url: str) -> None:
    from gwconfig.errors import DatabaseUnavailable
    from gwconfig.server.auth import AuthError, TokenAuthenticator

    db = open_database(pg_url, upgrade=True)
    known, unknown = make_token(pg_url, "invoke", name="known"), make_token(pg_url, "invoke")
    now = [0.0]
    tokens = TokenAuthenticator(db, cache_seconds=1.0, stale_seconds=60.0, clock=lambda: now[0])
    header = "Bearer " + known
    assert tokens.authenticate(header).name == "known"
    outage = Outage(pg_url)
    outage.begin()
    try:
        now[0] = 30.0  # past the cache, within the stale bound: the last good lookup serves
        assert tokens.authenticate(header).name == "known"
        with pytest.raises(DatabaseUnavailable):
            tokens.authenticate("Bearer " + unknown)
        now[0] = 61.0  # past the bound: the token is not vouched for any more
        with pytest.raises(DatabaseUnavailable):
            tokens.authenticate(header)
    finally:
        outage.end()
    from gwconfig.db.tokens import revoke_token

    revoke_token(db, "known")
    now[0] = 63.0  # the database answers: a revocation holds after the 1 s cache
    with pytest.raises(AuthError, match="revoked"):
        tokens.authenticate(header)
    tokens.close()
    db.dispose()


def test_usage_rows_wait_for_a_sqlite_file_that_is_gone(tmp_path: Path) -> None:
    from gwconfig.runtime.usage import UsageRecorder

    home = tmp_path / "dbdir"
    url = f"sqlite:///{home / 'gateway.db'}"
    db = open_database(url, upgrade=True)
    recorder = UsageRecorder(db.engine, flush_interval=0.01, retry_interval=0.05, max_buffered=3)

    def one(n: int) -> None:
        recorder.record(
            provider_id="mock",
            model_id="chat",
            session_id=f"s{n}",
            prompt_tokens=1,
            completion_tokens=1,
            latency_ms=1.0,
            attempts=1,
            outcome="ok",
        )

    # the directory renamed: SQLite cannot create its journal there, so every write fails
    home.rename(tmp_path / "gone")
    try:
        for n in range(5):
            one(n)
        assert recorder.flush()
        poll(lambda: recorder.buffered == 3 and recorder.dropped == 2, "the buffer is full")
    finally:
        (tmp_path / "gone").rename(home)
    poll(lambda: recorder.buffered == 0, "the buffer written back")
    recorder.close()
    with db.engine.connect() as conn:
        sessions = conn.scalars(select(UsageRecord.session_id).order_by(UsageRecord.id)).all()
    assert sessions == ["s2", "s3", "s4"]  # the oldest were dropped, none of the rest lost
    db.dispose()
