"""The plan path's DBAPI reader: same URLs, same state, same errors as the SQLAlchemy path."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from builders import fake_resolve, sample_config
from gwconfig.db import open_database
from gwconfig.db.direct import open_direct, parse_url
from gwconfig.db.models import ConfigRevision
from gwconfig.db.rows import insert_config
from gwconfig.errors import DatabaseError
from gwconfig.reconcile.state import read_state, revision_snapshot, revision_state_hash
from gwconfig.secrets.keys import EncryptionKeys

URLS = [
    "sqlite:///relative/gateway.db",
    "sqlite:////abs/path/gateway.db",
    "sqlite://",
    "sqlite:///:memory:",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
    "postgresql://user:p%40ss%3Aword@db.example.com/gw?sslmode=require&application_name=x",
    "postgres://u@[::1]:5433/gw",
    "mysql+pymysql://root@127.0.0.1:3306/test",
    "mysql+pymysql://u:pw@host/db?charset=utf8mb4",
    "mariadb+pymysql://u:@host:3307/db",
    "postgresql+psycopg://u@/gw?host=/var/run/postgresql",
]


@pytest.mark.parametrize("url", URLS)
def test_urls_are_read_as_sqlalchemy_reads_them(url: str) -> None:
    ours, theirs = parse_url(url), make_url(url)
    assert ours is not None
    assert ours.scheme == theirs.drivername
    assert (ours.username, ours.password) == (theirs.username, theirs.password)
    assert (ours.host, ours.port, ours.database) == (theirs.host, theirs.port, theirs.database)
    assert ours.query == dict(theirs.query)


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "oracle://u@h/db",  # not a gwconfig driver
        "postgresql+psycopg2://u@h/db",  # another driver: SQLAlchemy's business
        "mysql+pymysql://u@h/db?ssl_ca=/x.pem",  # options SQLAlchemy translates for PyMySQL
        "postgresql://u@h/db?a=1&a=2",  # a list value
        "sqlite://",  # in memory: one per engine
    ],
)
def test_unusual_urls_are_left_to_sqlalchemy(url: str) -> None:
    assert open_direct(url) is None


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.db"
    assert open_direct(f"sqlite:///{path}") is None
    assert not path.exists()


def test_only_a_database_at_the_head_revision_is_read_directly(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Path(make_url(db_url).database or "").touch()
    assert open_direct(db_url) is None  # no schema yet
    open_database(db_url, upgrade=True).dispose()
    direct = open_direct(db_url)
    assert direct is not None
    direct.close()


def test_direct_and_sqlalchemy_readers_give_the_same_state(db_url: str, fernet_key: str) -> None:
    keys = EncryptionKeys(fernet_key)
    db = open_database(db_url, upgrade=True)
    try:
        with db.engine.begin() as conn:
            insert_config(conn, sample_config().data, keys, resolve=fake_resolve)
            state = read_state(conn)
            conn.execute(
                insert(ConfigRevision),
                {
                    "number": 1,
                    "content_hash": "sha256:x",
                    "state_hash": state.state_hash,
                    "snapshot": {"config": state.data, "fingerprints": {"a": "b"}},
                    "actor": "test",
                    "summary": {"add": 1},
                    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                },
            )
        with db.connect() as conn:
            expected = read_state(conn)
            expected_revision = revision_snapshot(conn, 1)
    finally:
        db.dispose()
    direct = open_direct(db_url)
    assert direct is not None
    with direct:
        got = read_state(direct)
        assert revision_snapshot(direct, 1) == expected_revision
        assert revision_state_hash(direct, 1) == expected.state_hash
        assert revision_snapshot(direct, 2) is None
    assert got == expected
    assert got.last_revision == 1
    expires = [k["expires_at"] for k in got.provider("openai")["api_keys"]]  # type: ignore[index]
    assert "2030-01-02T03:04:05Z" in expires
    assert expected_revision is not None and expected_revision[1]["fingerprints"] == {"a": "b"}


def test_driver_errors_name_the_masked_url_and_never_the_password(pg_url: str) -> None:
    open_database(pg_url, upgrade=True).dispose()
    direct = open_direct(pg_url)
    assert direct is not None
    with direct, pytest.raises(DatabaseError) as info, direct.translate_errors("planning against"):
        direct.rows("SELECT * FROM no_such_table")
    assert "planning against postgresql" in str(info.value)
    assert "no_such_table" in str(info.value)


@pytest.mark.slow
def test_plan_does_not_import_sqlalchemy(isolated_cwd: Path, fernet_key: str) -> None:
    d = isolated_cwd / "providers.d"
    d.mkdir()
    (d / "mock.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: mock\nprovider_type: mock\n"
        "models:\n  - model_id: echo\n"
    )
    url = f"sqlite:///{isolated_cwd / 'gw.db'}"
    env = {**os.environ, "GWCONFIG_ENCRYPTION_KEY": fernet_key, "NO_COLOR": "1"}
    run = [sys.executable, "-c", "from gwconfig.cli import main; main()"]
    subprocess.run([*run, "db", "upgrade", "--database-url", url], env=env, check=True)
    subprocess.run([*run, "apply", "--auto-approve", "--database-url", url], env=env, check=True)
    probe = (
        "import sys\nimport gwconfig.cli\nfrom gwconfig.cli import main\n"
        "gwconfig.cli.FAST_EXIT = False\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('sqlalchemy imported:', 'sqlalchemy' in sys.modules, 'exit', code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, "plan", "--database-url", url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "No changes" in out
    assert "sqlalchemy imported: False exit 0" in out


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://gw:s3cr3t@127.0.0.1:1/gw", "mysql+pymysql://gw:s3cr3t@127.0.0.1:1/gw"],
)
def test_an_unreachable_server_is_reported_at_once_and_masked(url: str) -> None:
    # not handed to SQLAlchemy to be tried (and timed out) a second time
    with pytest.raises(DatabaseError) as info:
        open_direct(url)
    message = str(info.value)
    assert message.startswith("opening ") and "127.0.0.1" in message
    assert "s3cr3t" not in message and "***" in message
