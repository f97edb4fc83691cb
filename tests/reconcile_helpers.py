"""Gateway databases for the reconciler tests: the ``gw`` fixture (an upgraded, empty database
on each engine, registered in conftest.py), plan and apply with auto-approval, and reads of what
a database holds (every table's rows, the recorded state, the key ids of its secrets).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.reconcile.state import ActualState
from gwconfig.runtime import ConfigLoader

TABLES = (
    "providers",
    "provider_models",
    "api_keys",
    "connection_parameters",
    "routes",
    "config_revisions",
    "audit_events",
)


def dump_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every gateway table, sorted (for before/after comparisons)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for table in TABLES:
                rows = conn.execute(text(f"SELECT * FROM {table}")).all()
                out[table] = sorted(tuple(str(v) for v in r) for r in rows)
            return out
    finally:
        engine.dispose()


def yes(_plan: Any) -> bool:
    """A review callback that approves."""
    return True


@pytest.fixture
def gw(
    db_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """An upgraded, empty gateway database on each engine, with keys and secrets in the env."""
    from gwconfig.db.session import open_database

    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-1")
    monkeypatch.setenv("GWT_PROJECT", "proj-1")
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.chdir(tmp_path)
    open_database(db_url, upgrade=True).dispose()
    yield db_url


def apply(root: Path, url: str, **kw: Any) -> tuple[Any, Any]:
    """Apply manifests at ``root`` with auto-approval."""
    options = PlanOptions(
        prune=kw.pop("prune", False), targets=kw.pop("targets", ()), tags=kw.pop("tags", ())
    )
    write = commands.WriteOptions(**kw)
    return commands.apply(str(root), url, options, review=yes, write=write)


def plan(root: Path, url: str, **kw: Any) -> Any:
    """Plan manifests at ``root``."""
    return commands.plan(str(root), url, PlanOptions(**kw))


def read_state_at(url: str) -> ActualState:
    """The state recorded in the database at ``url`` (opened and disposed of here)."""
    from gwconfig.db.session import open_database
    from gwconfig.reconcile.state import read_state

    db = open_database(url)
    try:
        with db.connect() as conn:
            return read_state(conn)
    finally:
        db.dispose()


def stored_key_ids(url: str) -> set[str | None]:
    """The key ids recorded on every secret row."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            keys = conn.execute(text("SELECT key_id FROM api_keys")).scalars().all()
            params = conn.execute(
                text("SELECT key_id FROM connection_parameters WHERE is_sensitive")
            ).scalars()
            return {*keys, *params}
    finally:
        engine.dispose()


def runtime_secrets(url: str) -> tuple[str | None, Any]:
    """The API key and the sensitive parameter the runtime opens from the database."""
    config = ConfigLoader(url).load_config_as_object()
    provider = config.providers["openai"]
    return provider.api_keys[0].value, provider.params.get("project")
