"""REST writes and apply never interleave: a write takes apply's lock (bounded wait), so it lands
before apply reads the state or after apply committed, never in between (where apply would
overwrite it from its earlier read and record a false ``before``).

The barrier is apply's review callback, which runs under the lock after the state was read and
the plan made, right before the write. A real server (uvicorn) and real databases.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, select, text

from conftest import ENGINE_PARAMS, make_database
from gwconfig.db.models import AuditEvent, ProviderModel
from gwconfig.db.session import open_database
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.server.answers import APPLY_RUNNING
from gwconfig.server.state import ServeSettings
from serve_helpers import make_token, serve_app

MODEL = "/api/v1/providers/openai/models/fake-chat"
OPTIONS = PlanOptions()


@pytest.fixture
def gw_url(db_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An upgraded database of each engine, its key in the environment."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    open_database(db_url, upgrade=True).dispose()
    return db_url


def _write_manifest(root: Path, display_name: str) -> None:
    doc = {"apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "openai",
           "provider_type": "openai",
           "models": [{"model_id": "fake-chat", "display_name": display_name,
                       "context_window": 16000}]}  # fmt: skip
    (root / "openai.yaml").write_text(yaml.safe_dump(doc))


@pytest.fixture
def root(gw_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Manifests applied once (display name A), then changed to B (not applied yet)."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "providers.d"
    root.mkdir()
    _write_manifest(root, "A")
    commands.apply(str(root), gw_url, OPTIONS, review=lambda _plan: True)
    _write_manifest(root, "B")
    return root


class PausedApply:
    """``apply`` in a thread, stopped under its lock between its state read and its write."""

    def __init__(self, root: Path, url: str) -> None:
        self.in_gap, self.go_on = threading.Event(), threading.Event()
        self.error: BaseException | None = None

        def review(_plan: Any) -> bool:
            self.in_gap.set()
            assert self.go_on.wait(60)
            return True

        def run() -> None:
            try:
                commands.apply(str(root), url, OPTIONS, review=review)
            except BaseException as exc:  # reported by finish()
                self.error = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.in_gap.wait(60), "apply did not reach its write"

    def finish(self) -> None:
        self.go_on.set()
        self.thread.join(60)
        assert not self.thread.is_alive() and self.error is None, self.error


def _model(url: str) -> tuple[str, int | None]:
    db = open_database(url)
    try:
        with db.session() as s:
            m = s.scalars(select(ProviderModel).where(ProviderModel.model_id == "fake-chat")).one()
            return m.display_name, m.max_tokens
    finally:
        db.dispose()


def _audit(url: str) -> list[tuple[int | None, str, Any, Any]]:
    db = open_database(url)
    try:
        with db.session() as s:
            rows = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
            return [(r.revision_number, r.action, r.before, r.after) for r in rows]
    finally:
        db.dispose()


def test_a_put_while_apply_writes_is_refused_then_lands(gw_url: str, root: Path) -> None:
    token = make_token(gw_url, "write", name="ops")
    settings = ServeSettings(database_url=gw_url, lock_timeout=0)
    with serve_app(settings) as served, served.client(token) as client:
        apply = PausedApply(root, gw_url)
        try:
            refused = client.put(MODEL, json={"max_tokens": 900})
        finally:
            apply.finish()
        assert refused.status_code == 503, refused.text
        problem = refused.json()
        assert problem["type"] == APPLY_RUNNING and "apply" in problem["detail"]
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) > 0
        # apply wrote what it planned, nothing else happened: the next plan is truthful
        assert _model(gw_url) == ("B", None)
        assert commands.plan(str(root), gw_url, OPTIONS).changes == ()
        audit = _audit(gw_url)
        assert all(number is not None for number, *_ in audit)  # no API write was recorded
        assert audit[-1][1] == "update"
        assert audit[-1][2]["display_name"] == "A" and audit[-1][3]["display_name"] == "B"
        # the token's use (written off the request path, behind apply's lock on SQLite) is
        # written now: with ``lock_timeout=0`` it would otherwise refuse the retry below
        served.state.tokens.flush()
        # retried after the apply, the write goes in on top of it and is drift
        assert client.put(MODEL, json={"max_tokens": 900}).status_code == 200
        assert _model(gw_url) == ("B", 900)
        plan = commands.plan(str(root), gw_url, OPTIONS)
        assert [c.key for c in plan.changes if c.drift] == ["openai/fake-chat"]
        # the write released the lock (on MariaDB: when its connection went back to the
        # server's pool): an apply takes it at once and puts the manifests' state back
        write = commands.WriteOptions(lock_timeout=5)
        commands.apply(str(root), gw_url, OPTIONS, review=lambda _: True, write=write)
        assert _model(gw_url) == ("B", None)


def _waiting_for_lock(url: str) -> Callable[[], bool]:
    """Whether a session of the database waits for the apply lock (server-side wait)."""
    engine = create_engine(url)
    if engine.dialect.name == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND "
            "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    else:
        sql = (
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE state = 'User lock' AND db = DATABASE()"
        )

    def check() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(text(sql)).scalar())

    return check


@pytest.fixture(params=[p for p in ENGINE_PARAMS if p.values[0] != "sqlite"])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The server engines only (a wait that can be observed from another session)."""
    yield from make_database(request.param, tmp_path)


def test_a_put_while_apply_writes_waits_then_goes_in_on_top(
    server_url: str, fernet_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    open_database(server_url, upgrade=True).dispose()
    root = tmp_path / "providers.d"
    root.mkdir()
    monkeypatch.chdir(tmp_path)
    _write_manifest(root, "A")
    commands.apply(str(root), server_url, OPTIONS, review=lambda _plan: True)
    _write_manifest(root, "B")
    token = make_token(server_url, "write", name="ops")
    answers: list[httpx.Response] = []
    waiting = _waiting_for_lock(server_url)
    with serve_app(ServeSettings(database_url=server_url, lock_timeout=60)) as served:
        apply = PausedApply(root, server_url)
        with served.client(token) as client:
            put = threading.Thread(
                target=lambda: answers.append(client.put(MODEL, json={"max_tokens": 900}))
            )
            put.start()
            try:
                deadline = time.monotonic() + 30
                while not waiting():  # the PUT waits in the database for the lock
                    assert time.monotonic() < deadline, "the PUT never waited for the lock"
                    assert put.is_alive(), answers[0].text if answers else "no answer"
                    time.sleep(0.02)
            finally:
                apply.finish()
                put.join(60)
    assert not put.is_alive(), "the PUT did not return within 60 s"
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert _model(server_url) == ("B", 900)  # apply's write and the PUT's, both kept
    *_, (number, action, before, after) = _audit(server_url)
    assert number is None and action == "update"
    assert before["display_name"] == "B" and before["max_tokens"] is None  # the true before
    assert after["max_tokens"] == 900
    plan = commands.plan(str(root), server_url, OPTIONS)
    assert [c.key for c in plan.changes if c.drift] == ["openai/fake-chat"]
