"""Key origin binding on every engine: apply binds, the seed service keeps, an admin re-binds;
migration 0008; the runtime refuses a secret bound elsewhere; the seed service's egress checks."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from builders import gateway_doc, provider_doc, write_manifests
from gwconfig.db.session import open_database
from gwconfig.entities import SecretScope
from gwconfig.errors import ValidationFailed
from gwconfig.reconcile.state import read_state
from gwconfig.runtime.config.sources import ConfigLoader
from gwconfig.secrets.keys import load_encryption_keys
from gwconfig.seed.service import ProviderService
from reconcile_helpers import apply

A = "https://api.example.com:443"
B = "https://llm.example.net:8443"
KEY = SecretScope("openai", "key", "default", "default")
PARAM = SecretScope("openai", "param", "project", "default")


@pytest.fixture
def applied(
    db_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """``provider_doc()`` and ``gateway_doc()`` applied: provider openai on api.example.com."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("GWT_API_KEY", "sk-" + secrets.token_urlsafe(16))
    monkeypatch.setenv("GWT_PROJECT", "proj-" + secrets.token_urlsafe(8))
    monkeypatch.chdir(tmp_path)
    open_database(db_url, upgrade=True).dispose()
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    apply(root, db_url)
    yield db_url, root


def origins(url: str) -> dict[SecretScope, str | None]:
    db = open_database(url)
    try:
        with db.connect() as conn:
            return read_state(conn).origins
    finally:
        db.dispose()


def key_origin(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT key_origin FROM providers")).scalar_one()  # type: ignore[no-any-return]
    finally:
        engine.dispose()


def unbind(url: str) -> None:
    """Forget every binding, as rows stored before revision 0008 are."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in ("api_keys", "connection_parameters"):
                conn.execute(text(f"UPDATE {table} SET origin = NULL"))
            conn.execute(text("UPDATE providers SET key_origin = NULL"))
    finally:
        engine.dispose()


def service(url: str, session: Any, **kw: Any) -> ProviderService:
    return ProviderService(session, load_encryption_keys(url), "ops", **kw)


def served_provider(url: str) -> Any:
    return ConfigLoader(url).load_config_as_object().providers["openai"]


def test_apply_binds_the_seed_service_keeps_an_admin_rebinds(applied: tuple[str, Path]) -> None:
    url, _root = applied
    assert origins(url) == {KEY: A, PARAM: A}
    assert key_origin(url) == A
    unbind(url)  # NULL: bound to the current origin until something binds it
    assert served_provider(url).origin_errors == ()
    db = open_database(url)
    try:
        with db.session() as session:
            svc = service(url, session)
            svc.update_provider("openai", {"connection_params": {"api_base": B + "/v1"}})
            # the unbound secrets were bound to the origin the provider had
            assert origins(url) == {KEY: A, PARAM: A} and key_origin(url) == A
            # a write (no re-binding) stores a new key for the origin of the others
            svc.create_api_key({"provider_id": "openai", "name": "k2", "key_value": "sk-two"})
            svc.set_connection_parameter({
                "provider_id": "openai", "param_name": "org2", "param_value": "o-2",
                "is_sensitive": True,
            })  # fmt: skip
        k2 = SecretScope("openai", "key", "k2", "default")
        org2 = SecretScope("openai", "param", "org2", "default")
        assert origins(url) == {KEY: A, PARAM: A, k2: A, org2: A}
        pc = served_provider(url)
        assert pc.api_keys == () and "project" not in pc.params and "org2" not in pc.params
        assert len(pc.origin_errors) == 4
        why = next(e for e in pc.origin_errors if "API key 'default@default'" in e)
        assert "provider 'openai'" in why and A in why and B in why
        assert any("connection parameter 'project@default'" in e for e in pc.origin_errors)
        with db.session() as session:  # an admin writes the key for the new origin
            admin = service(url, session, rebind_secrets=True)
            admin.delete_api_key("openai", "default", "default")
            admin.create_api_key({"provider_id": "openai", "key_value": "sk-new"})
        assert origins(url)[KEY] == B and key_origin(url) == B
        pc = served_provider(url)
        assert [k.name for k in pc.api_keys] == ["default"] and len(pc.origin_errors) == 3
    finally:
        db.dispose()


def test_apply_rebinds_after_an_api_base_change_from_outside(applied: tuple[str, Path]) -> None:
    url, root = applied
    db = open_database(url)
    try:
        with db.session() as session:
            service(url, session).update_provider(
                "openai", {"connection_params": {"api_base": B + "/v1"}}
            )
    finally:
        db.dispose()
    assert origins(url) == {KEY: A, PARAM: A}
    apply(root, url)  # back to the manifest's api_base: bound to it
    assert origins(url) == {KEY: A, PARAM: A}
    connection = {"api_base": B + "/v1", "parameters": provider_doc()["connection"]["parameters"]}
    apply(write_manifests(root, provider_doc(connection=connection), gateway_doc()), url)
    assert origins(url) == {KEY: B, PARAM: B} and key_origin(url) == B
    pc = served_provider(url)
    assert pc.origin_errors == () and pc.api_keys and pc.params["project"]


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


def test_0008_upgrade_leaves_rows_unbound_until_the_next_apply(applied: tuple[str, Path]) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gwconfig.db.models import Base
    from gwconfig.db.version import VERSION_TABLE

    url, root = applied
    _alembic(url, "downgrade", "0007")
    engine = create_engine(url)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        columns = {c["name"] for c in inspect(conn).get_columns("api_keys")}
    engine.dispose()
    assert "gateway_settings" not in tables and "origin" not in columns
    _alembic(url, "upgrade", "head")
    assert origins(url) == {KEY: None, PARAM: None} and key_origin(url) is None
    pc = served_provider(url)  # NULL: the current origin
    assert pc.origin_errors == () and pc.api_keys and pc.params["project"]
    apply(root, url)  # no change to make: the bindings are recorded all the same
    assert origins(url) == {KEY: A, PARAM: A} and key_origin(url) == A
    db = open_database(url)
    try:
        with db.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("api_base", "why"),
    [
        ("http://169.254.169.254/", "cloud metadata endpoint"),
        ("http://metadata.google.internal/v1", "cloud metadata endpoint"),
        ("https://user:pw@api.example.com/v1", "credentials"),
    ],
)
def test_seed_service_refuses_an_api_base_outside_the_rules(
    applied: tuple[str, Path], api_base: str, why: str
) -> None:
    url, _root = applied
    db = open_database(url)
    try:
        with db.session() as session:
            svc = service(url, session)
            with pytest.raises(ValidationFailed) as caught:
                svc.update_provider("openai", {"connection_params": {"api_base": api_base}})
            assert caught.value.errors[0][0] == ("connection_params", "api_base")
            assert why in caught.value.message and "pw" not in caught.value.message
            with pytest.raises(ValidationFailed):
                svc.create_provider({
                    "provider_id": "new", "provider_type": "openai",
                    "connection_params": {"api_base": api_base},
                })  # fmt: skip
            assert svc.get_provider("new") is None
            assert svc.get_provider("openai")["connection_params"]["api_base"] == (
                "https://api.example.com/v1"
            )
    finally:
        db.dispose()


def test_seed_service_follows_the_applied_egress_policy(applied: tuple[str, Path]) -> None:
    url, root = applied
    policy = {"allow": ["api.example.com", "10.0.0.0/8"]}
    apply(write_manifests(root, provider_doc(), gateway_doc(egress=policy)), url)
    db = open_database(url)
    try:
        with db.session() as session:
            svc = service(url, session)
            with pytest.raises(ValidationFailed, match="egress policy"):
                svc.update_provider("openai", {"connection_params": {"api_base": B}})
            svc.update_provider("openai", {"connection_params": {"api_base": "http://10.2.3.4"}})
    finally:
        db.dispose()
    apply(write_manifests(root, provider_doc(), gateway_doc()), url)  # the policy is gone
    db = open_database(url)
    try:
        with db.session() as session:
            service(url, session).update_provider("openai", {"connection_params": {"api_base": B}})
    finally:
        db.dispose()


def test_dump_writes_the_applied_egress_policy_back(applied: tuple[str, Path]) -> None:
    from gwconfig.adopt.dump import DumpOptions, dump
    from gwconfig.adopt.writer import SecretOutput
    from gwconfig.manifests import validate_path

    url, root = applied
    policy = {"allow": ["*.example.net", "api.example.com"]}
    apply(write_manifests(root, provider_doc(), gateway_doc(egress=policy)), url)
    out = root.parent / "dumped"
    dump(DumpOptions(out, SecretOutput("env"), database_url=url))
    gateway = next(p for p in out.rglob("*.yaml") if "kind: Gateway" in p.read_text())
    assert "egress:\n  allow:" in gateway.read_text()
    assert "*.example.net" in gateway.read_text()
    assert [d for d in validate_path(str(out)) if d.severity == "error"] == []


def test_an_interactive_apply_without_changes_records_the_bindings(
    applied: tuple[str, Path],
) -> None:
    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions

    url, root = applied
    unbind(url)
    interactive = commands.WriteOptions(interactive=True)
    options = PlanOptions()
    plan, result = commands.apply(
        str(root), url, options, review=lambda _p: True, write=interactive
    )
    assert not plan.effective_changes and result.revision is None
    assert origins(url) == {KEY: A, PARAM: A} and key_origin(url) == A
