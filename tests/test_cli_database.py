"""``gwconfig db upgrade | current`` and ``gwconfig keys generate | rotate``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from gwconfig.cli import cli
from gwconfig.db import open_database
from gwconfig.db.version import HEAD_REVISION
from gwconfig.reconcile.state import read_state
from gwconfig.seed.service import ProviderService

SECRET = "sk-cli-canary-a91b"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``gwconfig`` entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-c", "from gwconfig.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_db_upgrade_then_current(db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "current", "--database-url", db_url])
    assert result.exit_code == 1 and "gwconfig db upgrade" in result.output
    result = runner.invoke(cli, ["db", "upgrade", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert f"upgraded from empty to {HEAD_REVISION}" in result.output
    result = runner.invoke(cli, ["db", "upgrade", "--database-url", db_url])
    assert result.exit_code == 0 and f"already at revision {HEAD_REVISION}" in result.output
    result = runner.invoke(cli, ["db", "current", "--database-url", db_url])
    assert result.exit_code == 0 and f"{HEAD_REVISION} (head)" in result.output


def test_urls_are_printed_with_passwords_masked(isolated_cwd: Path) -> None:
    result = run("db", "current", "--database-url", "postgresql://gw:hunter2@127.0.0.1:1/gateway")
    assert result.returncode == 1
    assert "hunter2" not in result.stdout + result.stderr
    assert "postgresql://gw:***@127.0.0.1:1/gateway" in result.stderr
    assert "Traceback" not in result.stderr


def test_embedded_default_upgrades_via_env_and_generates_key(isolated_cwd: Path) -> None:
    result = run("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (isolated_cwd / ".gwconfig" / "gateway.db").is_file()
    result = run("keys", "rotate")
    assert result.returncode == 0, result.stderr
    assert "generated a new encryption key" in result.stderr
    assert "re-encrypted 0 secrets" in result.stdout
    assert oct((isolated_cwd / ".gwconfig" / "encryption.key").stat().st_mode & 0o777) == "0o600"


def test_keys_generate_prints_a_fernet_key() -> None:
    result = CliRunner().invoke(cli, ["keys", "generate"])
    assert result.exit_code == 0
    key = result.stdout.strip()
    Fernet(key.encode())  # a valid key
    assert key != CliRunner().invoke(cli, ["keys", "generate"]).stdout.strip()


@pytest.mark.parametrize("count", [1, 2, 3])
def test_keys_id_prints_each_key_id_newest_first(
    count: int, monkeypatch: pytest.MonkeyPatch, isolated_cwd: Path
) -> None:
    from gwconfig.secrets.keys import key_id

    keys = [Fernet.generate_key().decode() for _ in range(count)]
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", ",".join(keys))
    result = CliRunner().invoke(cli, ["keys", "id"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines == [f"{key_id(keys[0])}  (newest)", *map(key_id, keys[1:])]
    assert all(len(key_id(k)) == 12 and k not in result.stdout for k in keys)
    assert len(set(map(key_id, keys))) == count


def test_keys_rotate_reports_and_re_encrypts(
    sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_database(sqlite_url, upgrade=True)
    with db.session() as session:
        ProviderService(session, fernet_key, "cli").create_provider(
            {
                "provider_id": "mock",
                "provider_type": "mock",
                "api_key": {"key_value": SECRET, "is_encrypted": True},
            }
        )
    new_key = Fernet.generate_key().decode()
    runner = CliRunner()
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", Fernet.generate_key().decode())
    result = runner.invoke(cli, ["keys", "rotate", "--database-url", sqlite_url])
    assert result.exit_code == 1
    assert "GWCONFIG_ENCRYPTION_KEY" in result.output and SECRET not in result.output
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", f"{new_key},{fernet_key}")
    result = runner.invoke(cli, ["keys", "rotate", "--database-url", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 secret " in result.output and SECRET not in result.output
    with db.session() as session:
        service = ProviderService(session, new_key, "cli")
        assert service.get_api_key_value("mock") == SECRET
        assert read_state(session).secrets
    db.dispose()


def test_rotate_without_a_key_names_the_variable(sqlite_url: str, isolated_cwd: Path) -> None:
    CliRunner().invoke(cli, ["db", "upgrade", "--database-url", sqlite_url])
    result = run("keys", "rotate", "--database-url", sqlite_url)
    assert result.returncode == 1
    assert "set GWCONFIG_ENCRYPTION_KEY" in result.stderr
    assert "gwconfig keys generate" in result.stderr
