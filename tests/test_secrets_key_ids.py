"""Key ids: the database knows which key its secrets are under and refuses a key set that cannot
open them (plan, apply, rollback, runtime, seed service, rotate) before planning or writing;
``NEW,OLD`` before ``keys rotate`` plans no changes; after it, NEW alone works. On every engine."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from builders import gateway_doc, provider_doc, write_manifests
from gwconfig.cli import cli
from gwconfig.db.session import open_database
from gwconfig.errors import EncryptionKeyError
from gwconfig.secrets.keys import generate_key, key_id
from gwconfig.seed.service import ProviderService
from reconcile_helpers import dump_tables, runtime_secrets, stored_key_ids

ENV = "GWCONFIG_ENCRYPTION_KEY"


def run(*args: str) -> Any:
    """Invoke the CLI in-process (stdout and stderr together in ``output``)."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def applied(gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, str]:
    """(url, manifests, key A): revisions 1 and 2 applied under key A (the secret changed)."""
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    first = run("apply", str(root), "--database-url", gw, "--auto-approve")
    assert first.exit_code == 0, first.output
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-2")
    second = run("apply", str(root), "--database-url", gw, "--auto-approve")
    assert second.exit_code == 0 and "revision 2" in second.output, second.output
    return gw, root, os.environ[ENV]


def _plan(url: str, root: Path) -> Any:
    return run("plan", str(root), "--database-url", url, "--detailed-exitcode")


def _apply(url: str, root: Path) -> Any:
    return run("apply", str(root), "--database-url", url, "--auto-approve")


def _saved_plan(url: str, root: Path) -> Any:
    return run("apply", "--plan", str(root.parent / "plan.json"), "--database-url", url,
               "--auto-approve")  # fmt: skip


def _rollback(url: str, root: Path) -> Any:
    return run("rollback", "1", "--database-url", url, "--auto-approve")


def _rotate(url: str, root: Path) -> Any:
    return run("keys", "rotate", "--database-url", url)


CLI: dict[str, Callable[[str, Path], Any]] = {
    "plan": _plan,
    "apply": _apply,
    "apply --plan": _saved_plan,
    "rollback": _rollback,
    "keys rotate": _rotate,
}
#: key sets none of which holds key A
WRONG_SETS = {"one other key": 1, "three other keys": 3}


@pytest.mark.parametrize(
    ("command", "wrong"),
    # every command with one wrong key; the message listing several only once more
    [
        *((c, "one other key") for c in [*CLI, "runtime", "seed service"]),
        ("plan", "three other keys"),
    ],
)
def test_keys_that_cannot_open_the_secrets_are_refused_before_anything(
    applied: tuple[str, Path, str], monkeypatch: pytest.MonkeyPatch, command: str, wrong: str
) -> None:
    url, root, key_a = applied
    plan_out = run("plan", str(root), "--database-url", url, "--out",
                   str(root.parent / "plan.json"))  # fmt: skip
    assert plan_out.exit_code == 0, plan_out.output
    others = [generate_key() for _ in range(WRONG_SETS[wrong])]
    monkeypatch.setenv(ENV, ",".join(others))
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-3")  # something to write, if it got that far
    before = dump_tables(url)
    if command in CLI:
        result = CLI[command](url, root)
        assert result.exit_code == 1, result.output
        message = result.output
        assert "Traceback" not in message and "internal error" not in message
    else:
        with pytest.raises(EncryptionKeyError) as info:
            if command == "runtime":
                runtime_secrets(url)
            else:
                db = open_database(url)
                try:
                    with db.session() as session:
                        ProviderService(session, None, "eve")
                finally:
                    db.dispose()
        message = str(info.value)
    assert f"need encryption key id(s) {key_id(key_a)}" in message
    assert f"has key id(s) {', '.join(key_id(k) for k in others)}" in message
    for k in [key_a, *others]:
        assert k not in message
    assert "sk-test-key" not in message
    assert dump_tables(url) == before


@pytest.mark.parametrize("keys", ["NEW,OLD", "NEW,OTHER,OLD", "OLD,NEW"])
def test_new_old_before_rotate_plans_no_changes_and_stays_under_old(
    applied: tuple[str, Path, str], monkeypatch: pytest.MonkeyPatch, keys: str
) -> None:
    url, root, old = applied
    named = {"OLD": old, "NEW": generate_key(), "OTHER": generate_key()}
    monkeypatch.setenv(ENV, ",".join(named[k] for k in keys.split(",")))
    result = _plan(url, root)
    assert result.exit_code == 0, result.output
    assert result.output == "No changes. The database matches the manifests.\n"
    assert runtime_secrets(url) == ("sk-test-key-2", "proj-1")
    # a changed secret is written under the key the database is under: only rotate moves it
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-3")
    result = _apply(url, root)
    assert result.exit_code == 0 and "revision 3" in result.output, result.output
    assert stored_key_ids(url) == {key_id(old)}
    assert _plan(url, root).exit_code == 0
    monkeypatch.setenv(ENV, old)  # readers that only have OLD still open everything
    assert runtime_secrets(url) == ("sk-test-key-3", "proj-1")
    assert _plan(url, root).exit_code == 0


def test_after_rotate_the_new_key_alone_works(
    applied: tuple[str, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, root, old = applied
    new = generate_key()
    monkeypatch.setenv(ENV, f"{new},{old}")
    result = _rotate(url, root)
    assert result.exit_code == 0, result.output
    assert stored_key_ids(url) == {key_id(new)}
    monkeypatch.setenv(ENV, new)
    assert _plan(url, root).exit_code == 0
    assert runtime_secrets(url) == ("sk-test-key-2", "proj-1")
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-3")
    assert _apply(url, root).exit_code == 0
    assert runtime_secrets(url) == ("sk-test-key-3", "proj-1")
    result = _rollback(url, root)  # revision 1's ciphertexts were re-encrypted by the rotation
    assert result.exit_code == 0, result.output
    assert runtime_secrets(url) == ("sk-test-key-1", "proj-1")
    assert stored_key_ids(url) == {key_id(new)}
    db = open_database(url)
    try:
        with db.session() as session:
            service = ProviderService(session, None, "eve")
            assert service.get_api_key_value("openai") == "sk-test-key-1"
            service.set_connection_parameter(
                {"provider_id": "openai", "param_name": "project", "param_value": "proj-2",
                 "is_sensitive": True}
            )  # fmt: skip
    finally:
        db.dispose()
    assert stored_key_ids(url) == {key_id(new)}
    monkeypatch.setenv(ENV, old)  # the old key alone no longer opens anything
    assert "need encryption key id(s) " + key_id(new) in _plan(url, root).output


def _alembic(url: str, step: str, revision: str) -> None:
    from alembic import command

    from gwconfig.db.migrate import alembic_config

    db = open_database(url, upgrade=False, check=False)
    try:
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, step)(cfg, revision)
    finally:
        db.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {c["name"] for c in inspect(conn).get_columns(table)}
    finally:
        engine.dispose()


def test_0004_upgrade_leaves_key_ids_unknown_until_an_apply_records_them(
    applied: tuple[str, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gwconfig.db.models import Base
    from gwconfig.db.version import VERSION_TABLE

    url, root, key_a = applied
    _alembic(url, "downgrade", "0003")
    assert "key_id" not in _columns(url, "api_keys") | _columns(url, "connection_parameters")
    _alembic(url, "upgrade", "head")
    assert stored_key_ids(url) == {None}  # a migration has no key: not recorded yet
    db = open_database(url)
    try:
        with db.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        db.dispose()
    # the key of such a row is found by trying the given keys on it
    assert _plan(url, root).exit_code == 0
    monkeypatch.setenv(ENV, f"{generate_key()},{key_a}")
    assert _plan(url, root).exit_code == 0
    assert runtime_secrets(url) == ("sk-test-key-2", "proj-1")
    monkeypatch.setenv(ENV, generate_key())
    result = _plan(url, root)
    assert result.exit_code == 1
    assert "recorded before key ids were kept" in result.output
    assert _apply(url, root).exit_code == 1
    with pytest.raises(EncryptionKeyError, match="recorded before key ids"):
        runtime_secrets(url)
    assert stored_key_ids(url) == {None}
    # plan and the runtime only read: the first apply that writes records the ids
    monkeypatch.setenv(ENV, key_a)
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-3")
    assert _apply(url, root).exit_code == 0
    assert stored_key_ids(url) == {key_id(key_a)}
    assert _plan(url, root).exit_code == 0
    _alembic(url, "downgrade", "0003")  # and back: the columns go, the secrets stay
    assert "key_id" not in _columns(url, "api_keys")
    assert len(dump_tables(url)["api_keys"]) == 1


def test_embedded_default_upgrades_to_key_ids_by_itself(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, fernet_key: str
) -> None:
    from gwconfig.db.version import HEAD_REVISION

    monkeypatch.setenv(ENV, fernet_key)
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-1")
    monkeypatch.setenv("GWT_PROJECT", "proj-1")
    root = write_manifests(isolated_cwd / "m", provider_doc())
    assert run("apply", str(root), "--auto-approve").exit_code == 0
    url = f"sqlite:///{isolated_cwd / '.gwconfig' / 'gateway.db'}"
    _alembic(url, "downgrade", "0003")
    result = run("plan", str(root), "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert run("db", "current").output.endswith(f"{HEAD_REVISION} (head)\n")
    assert stored_key_ids(url) == {None}
