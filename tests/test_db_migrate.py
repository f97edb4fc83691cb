"""The gateway database: schema = migrations on every engine, revision checks, constraints."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, func, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from gwconfig.db import open_database
from gwconfig.db import session as session_module
from gwconfig.db.migrate import head_revision, revision_status, upgrade_database
from gwconfig.db.models import (
    ApiKey,
    Base,
    ConfigRevision,
    ConnectionParameter,
    Provider,
    ProviderModel,
)
from gwconfig.db.session import VERSION_TABLE, database_error, normalise_url
from gwconfig.errors import ConfigurationError, SchemaVersionError
from gwconfig.settings import DEFAULT_DATABASE_URL

PROVIDER = {
    "provider_id": "p1",
    "provider_type": "openai",
    "display_name": "P1",
    "description": None,
    "enabled": True,
    "connection_params": {"api_base": None, "api_version": None, "headers": {}},
    "request_settings": {},
    "tags": [],
    "deletion_protection": False,
}


def model(model_id: str, provider_id: str = "p1") -> dict[str, object]:
    """A provider_models row."""
    return {
        "provider_id": provider_id,
        "model_id": model_id,
        "display_name": model_id,
        "model_type": "chat",
        "context_window": None,
        "max_tokens": None,
        "enabled": True,
        "capabilities": [],
        "parameters": {},
        "pricing": None,
        "aliases": [],
    }


def test_migrations_produce_exactly_the_models_schema(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    with db.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(ctx, Base.metadata) == []
        tables = set(inspect(conn).get_table_names())
    assert tables == {t.name for t in Base.metadata.sorted_tables} | {VERSION_TABLE}
    assert revision_status(db).current == head_revision()
    db.dispose()


def test_embedded_default_creates_and_upgrades_itself(isolated_cwd: Path) -> None:
    db = open_database()
    assert db.url == DEFAULT_DATABASE_URL
    assert (isolated_cwd / ".gwconfig" / "gateway.db").is_file()
    assert revision_status(db).up_to_date
    db.dispose()


def test_database_without_schema_asks_for_upgrade(db_url: str) -> None:
    with pytest.raises(SchemaVersionError) as info:
        open_database(db_url)
    assert "gwconfig db upgrade" in (info.value.hint or "")


def test_older_revision_asks_for_upgrade(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = open_database(sqlite_url, upgrade=True)
    db.dispose()
    # pretend this gwconfig ships a newer head than the database's
    from alembic.script import ScriptDirectory

    current = session_module.HEAD_REVISION
    newer = f"{int(current) + 1:04d}"
    monkeypatch.setattr(ScriptDirectory, "get_current_head", lambda self: newer)
    monkeypatch.setattr(session_module, "HEAD_REVISION", newer)
    with pytest.raises(SchemaVersionError) as info:
        open_database(sqlite_url)
    assert current in str(info.value) and "older" in str(info.value)
    assert "gwconfig db upgrade" in (info.value.hint or "")


def test_head_revision_constant_matches_the_shipped_migrations() -> None:
    assert head_revision() == session_module.HEAD_REVISION


def test_opening_an_up_to_date_database_does_not_import_alembic(sqlite_url: str) -> None:
    open_database(sqlite_url, upgrade=True).dispose()
    code = (
        "import sys; from gwconfig.db.session import open_database; "
        f"open_database({sqlite_url!r}).dispose(); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_database_from_newer_gwconfig_is_refused(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    with db.engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff_future'"))
    for attempt in (lambda: open_database(db_url), lambda: upgrade_database(db)):
        with pytest.raises(SchemaVersionError, match="newer gwconfig"):
            attempt()
    with db.connect() as conn:  # nothing was touched
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == (
            "ffff_future"
        )
    db.dispose()


def test_foreign_keys_and_cascades(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(ProviderModel), [model("m", provider_id="missing")])
    with db.engine.begin() as conn:
        conn.execute(insert(Provider), [PROVIDER])
        conn.execute(insert(ProviderModel), [model("m1"), model("m2")])
        conn.execute(
            insert(ApiKey),
            [{"provider_id": "p1", "key_value": "gAAAA-cipher", "fingerprint": "hmac-sha256:0"}],
        )
        conn.execute(
            insert(ConnectionParameter),
            [{"provider_id": "p1", "param_name": "org", "param_value": "x"}],
        )
    with db.engine.begin() as conn:
        conn.execute(delete(Provider).where(Provider.provider_id == "p1"))
    with db.connect() as conn:
        for table in (ProviderModel, ApiKey, ConnectionParameter):
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0
    db.dispose()


def test_identities_are_unique_and_case_sensitive(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    with db.engine.begin() as conn:
        conn.execute(insert(Provider), [PROVIDER])
        conn.execute(insert(ProviderModel), [model("gpt-4o"), model("GPT-4o")])
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(ProviderModel), [model("gpt-4o")])
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(update(Provider).values(display_name=None))
    db.dispose()


def test_timestamps_are_aware_utc_on_every_engine(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    expires = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    with db.transaction() as session:
        session.add(Provider(**PROVIDER))
        session.flush()
        session.add(
            ApiKey(provider_id="p1", key_value="c", fingerprint="hmac-sha256:0", expires_at=expires)
        )
    with db.session() as session:
        provider = session.get(Provider, "p1")
        key = session.scalars(select(ApiKey)).one()
        assert provider is not None and provider.created_at.tzinfo is not None
        assert provider.created_at.utcoffset() == timedelta(0)
        assert key.expires_at == datetime(2030, 5, 6, 5, 8, 9, tzinfo=UTC)
    db.dispose()


def test_urls_pick_drivers_and_mask_passwords() -> None:
    assert normalise_url("postgresql://u:pw@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    mysql = normalise_url("mysql://u:pw@h/db")
    assert mysql.drivername == "mysql+pymysql" and mysql.query["charset"] == "utf8mb4"
    with pytest.raises(ConfigurationError) as info:
        normalise_url("oracle://u:hunter2@h/db")
    assert "hunter2" not in str(info.value)
    err = database_error(IntegrityError("x", {}, Exception("boom")), "mysql://u:hunter2@h/d", "x")
    assert "hunter2" not in str(err) and "***" in str(err)


def test_in_memory_sqlite_shares_one_database() -> None:
    db = open_database("sqlite://", upgrade=True)
    with db.engine.begin() as conn:
        conn.execute(insert(Provider), [PROVIDER])
    with db.session() as session:
        assert session.get(Provider, "p1") is not None
    assert db.dialect == "sqlite" and db.masked_url == "sqlite://"
    db.dispose()


def test_seed_get_db_session(sqlite_url: str) -> None:
    from gwconfig.db import get_db_session

    open_database(sqlite_url, upgrade=True).dispose()
    session = get_db_session(sqlite_url)
    try:
        session.add(Provider(**PROVIDER))
        session.commit()
        assert session.get(Provider, "p1") is not None
    finally:
        session.close()


def test_0002_compresses_existing_snapshots_and_downgrades_back(db_url: str) -> None:
    from alembic import command

    from gwconfig.db.migrate import alembic_config
    from gwconfig.db.snapshots import decompress_snapshot

    db = open_database(db_url, upgrade=False, check=False)
    snapshots = {
        n: {"config": {"providers": [{"provider_id": f"p{n}", "n": n, "x": "é" * n}]}}
        for n in (1, 2, 3)
    }

    def migrate(step: str, revision: str) -> None:
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, step)(cfg, revision)

    try:
        migrate("upgrade", "0001")
        stamp = datetime(2026, 1, 1, tzinfo=UTC)
        with db.engine.begin() as conn:
            for n, snap in snapshots.items():
                conn.execute(
                    text(
                        "INSERT INTO config_revisions (number, content_hash, state_hash, snapshot,"
                        " actor, created_at, summary) VALUES (:n, 'h', 's', :snap, 'a', :at, '{}')"
                    ),
                    {"n": n, "snap": json.dumps(snap), "at": stamp},
                )
        migrate("upgrade", "0002")
        with db.engine.connect() as conn:
            raw = dict(conn.execute(text("SELECT number, snapshot FROM config_revisions")).all())
            assert {n: decompress_snapshot(v) for n, v in raw.items()} == snapshots
            orm = dict(conn.execute(select(ConfigRevision.number, ConfigRevision.snapshot)).all())
            assert orm == snapshots
        migrate("downgrade", "0001")
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT number, snapshot FROM config_revisions")).all()
        back = {n: json.loads(v) if isinstance(v, str | bytes) else v for n, v in rows}
        assert back == snapshots
    finally:
        db.dispose()


def test_0003_drops_the_audit_foreign_key_and_downgrade_restores_it(db_url: str) -> None:
    from alembic import command

    from gwconfig.db.migrate import alembic_config

    db = open_database(db_url, upgrade=False, check=False)

    def migrate(step: str, revision: str) -> None:
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, step)(cfg, revision)

    def audit_foreign_keys() -> list[str]:
        with db.engine.connect() as conn:
            return [fk["referred_table"] for fk in inspect(conn).get_foreign_keys("audit_events")]

    try:
        migrate("upgrade", "0002")
        assert audit_foreign_keys() == ["config_revisions"]
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_events (revision_number, created_at, actor, entity_type,"
                    " entity_key, action) VALUES (NULL, :at, 'a', 'provider', 'p', 'create')"
                ),
                {"at": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        migrate("upgrade", "0003")
        assert audit_foreign_keys() == []
        with db.engine.connect() as conn:  # the rows and the index stay
            assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 1
            names = {ix["name"] for ix in inspect(conn).get_indexes("audit_events")}
        assert "ix_audit_events_revision_number" in names
        migrate("downgrade", "0002")
        assert audit_foreign_keys() == ["config_revisions"]
    finally:
        db.dispose()
