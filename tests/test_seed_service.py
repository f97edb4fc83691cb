"""ProviderService: seed dicts out, audit events in, no plaintext anywhere; key rotation."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from gwconfig import AuditEvent, ProviderService
from gwconfig.canonical import content_hash
from gwconfig.db import Database, open_database
from gwconfig.db.models import ApiKey, Base, ConfigRevision
from gwconfig.db.session import VERSION_TABLE
from gwconfig.db.snapshots import decompress_snapshot
from gwconfig.errors import EncryptionKeyError, IntegrityViolation, ValidationFailed
from gwconfig.reconcile.rotation import rotate_secrets
from gwconfig.reconcile.state import read_state
from gwconfig.secrets.keys import MASK, EncryptionKeys, generate_key

KEY_SECRET = "sk-service-canary-7d41e0b2"
PARAM_SECRET = "org-service-canary-93ac51"

SEED: dict[str, Any] = {
    "provider_id": "openai",
    "provider_type": "openai",
    "display_name": "OpenAI",
    "enabled": True,
    "connection_params": {"api_base": "https://api.openai.com/v1"},
    "connection_parameters": [
        {"param_name": "organization", "param_value": PARAM_SECRET, "is_sensitive": True}
    ],
    "models": [{"model_id": "gpt-4o", "context_window": 128000, "max_tokens": 4096}],
    "api_key": {"key_value": KEY_SECRET, "is_encrypted": True},
}


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A fresh, upgraded database of each engine."""
    db = open_database(db_url, upgrade=True)
    yield db
    db.dispose()


def audit_rows(session: Session) -> list[AuditEvent]:
    """Every audit event, in insertion order."""
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def scan_for(db: Database, needles: tuple[str, ...]) -> list[str]:
    """Every table.column whose text contains one of ``needles`` (all rows, all tables)."""
    hits = []
    with db.connect() as conn:
        tables = [t.name for t in Base.metadata.sorted_tables] + [VERSION_TABLE]
        for table in tables:
            result = conn.execute(text(f"SELECT * FROM {table}"))
            columns = list(result.keys())
            for row in result:
                for column, value in zip(columns, row, strict=True):
                    if column == "snapshot":  # stored compressed: look inside
                        value = decompress_snapshot(value)
                    if any(n in str(value) for n in needles):
                        hits.append(f"{table}.{column}")
    return hits


def test_create_returns_masked_dicts_and_audits(database: Database, fernet_key: str) -> None:
    with database.session() as session:
        service = ProviderService(session, fernet_key, "alice")
        created = service.create_provider(SEED)
        assert created["provider_id"] == "openai" and created["display_name"] == "OpenAI"
        assert created["connection_params"]["api_base"] == "https://api.openai.com/v1"
        assert created["api_keys"][0]["key_value"] == MASK
        assert created["connection_parameters"][0]["param_value"] == MASK
        assert created["models"][0]["model_id"] == "gpt-4o"
        assert KEY_SECRET not in str(created) and PARAM_SECRET not in str(created)
        assert [p["provider_id"] for p in service.get_all_providers()] == ["openai"]
        assert service.get_provider("missing") is None
        assert service.get_api_key_value("openai") == KEY_SECRET
        assert service.get_connection_parameter_value("openai", "organization") == PARAM_SECRET
        events = audit_rows(session)
    assert {(e.entity_type, e.entity_key, e.action) for e in events} == {
        ("provider", "openai", "create"),
        ("model", "openai/gpt-4o", "create"),
        ("api_key", "openai/key:default@default", "create"),
        ("connection_parameter", "openai/param:organization@default", "create"),
    }
    for e in events:
        assert e.actor == "alice" and e.revision_number is None and e.before is None
        assert e.created_at.tzinfo is not None
    key_event = next(e for e in events if e.entity_type == "api_key")
    assert key_event.after is not None and key_event.after["value"] == MASK


def test_updates_audit_before_and_after(database: Database, fernet_key: str) -> None:
    with database.session() as session:
        service = ProviderService(session, fernet_key, 7)
        service.create_provider(SEED)
        first = len(audit_rows(session))
        result = service.update_provider("openai", {"display_name": "OpenAI EU", "tags": ["eu"]})
        assert result["display_name"] == "OpenAI EU" and result["tags"] == ["eu"]
        service.update_provider("openai", {"display_name": "OpenAI EU"})  # no change, no event
        service.set_connection_parameter(
            {"provider_id": "openai", "param_name": "organization", "param_value": "org-2"}
        )
        service.create_model({"provider_id": "openai", "model_id": "gpt-4o-mini"})
        service.create_api_key(
            {"provider_id": "openai", "key_value": "sk-staging-x", "environment": "staging"}
        )
        events = audit_rows(session)[first:]
    assert [(e.entity_type, e.action) for e in events] == [
        ("provider", "update"),
        ("connection_parameter", "update"),
        ("model", "create"),
        ("api_key", "create"),
    ]
    provider_event, param_event = events[0], events[1]
    assert provider_event.actor == "7"
    assert provider_event.before["display_name"] == "OpenAI"  # type: ignore[index]
    assert provider_event.after["display_name"] == "OpenAI EU"  # type: ignore[index]
    assert param_event.before["value"] == MASK  # type: ignore[index]
    assert param_event.after["value"] == "org-2"  # type: ignore[index]


def test_failed_calls_write_nothing(database: Database, fernet_key: str) -> None:
    with database.session() as session:
        service = ProviderService(session, fernet_key, "bob")
        service.create_provider(SEED)
        counts = {
            t.name: session.execute(select(func.count()).select_from(t)).scalar_one()
            for t in Base.metadata.sorted_tables
        }
        with pytest.raises(IntegrityViolation):
            service.create_provider(SEED)
        with pytest.raises(IntegrityViolation):
            service.create_model({"provider_id": "openai", "model_id": "gpt-4o"})
        bad = copy.deepcopy(SEED)
        bad["provider_id"] = "other"
        bad["models"].append({"model_id": "gpt-4o"})
        with pytest.raises(ValidationFailed, match="duplicate model_id"):
            service.create_provider(bad)
        with pytest.raises(ValidationFailed):
            service.update_provider("openai", {"enabled": "yes"})
        with pytest.raises(ValidationFailed):
            service.create_api_key({"provider_id": "openai", "key_value": None})
        after = {
            t.name: session.execute(select(func.count()).select_from(t)).scalar_one()
            for t in Base.metadata.sorted_tables
        }
    assert after == counts


def test_delete_audits_every_entity(database: Database, fernet_key: str) -> None:
    with database.session() as session:
        service = ProviderService(session, fernet_key, "carol")
        service.create_provider({**SEED, "deletion_protection": True})
        with pytest.raises(ValidationFailed, match="deletion_protection"):
            service.delete_provider("openai")
        assert service.delete_provider("openai", force=True) is True
        assert service.delete_provider("openai") is False
        deletes = [e for e in audit_rows(session) if e.action == "delete"]
    assert {e.entity_type for e in deletes} == {
        "provider",
        "model",
        "api_key",
        "connection_parameter",
    }
    assert all(e.after is None and e.before is not None for e in deletes)


def test_no_plaintext_secret_in_any_table(database: Database, fernet_key: str) -> None:
    with database.session() as session:
        service = ProviderService(session, fernet_key, "dave")
        service.create_provider(SEED)
        service.set_connection_parameter(
            {
                "provider_id": "openai",
                "param_name": "organization",
                "param_value": PARAM_SECRET + "-v2",
                "is_sensitive": True,
            }
        )
        service.create_api_key(
            {"provider_id": "openai", "key_value": KEY_SECRET + "-prod", "environment": "prod"}
        )
        service.update_provider("openai", {"description": "rotated"})
    with database.engine.begin() as conn:
        rotate_secrets(conn, EncryptionKeys([generate_key(), fernet_key]))
    assert scan_for(database, (KEY_SECRET, PARAM_SECRET)) == []
    # the scan itself works: a plaintext value is found where it is stored on purpose
    assert "providers.connection_params" in scan_for(database, ("https://api.openai.com/v1",))


def test_rotation_re_encrypts_everything_in_one_transaction(
    database: Database, fernet_key: str
) -> None:
    old = EncryptionKeys(fernet_key)
    with database.session() as session:
        ProviderService(session, old, "erin").create_provider(SEED)
    with database.engine.begin() as conn:
        state = read_state(conn)
        conn.execute(
            ConfigRevision.__table__.insert(),
            {
                "number": 1,
                "content_hash": "sha256:x",
                "state_hash": state.state_hash,
                "actor": "erin",
                "summary": {},
                "snapshot": {
                    "ciphertexts": {
                        "openai/key:default@default": next(iter(state.secrets.values()))
                    },
                    "fingerprints": {"openai/key:default@default": old.fingerprint(KEY_SECRET)},
                },
            },
        )
    # a key list that opens nothing: refused, nothing changes
    with database.engine.connect() as conn:
        before = read_state(conn)
    with pytest.raises(EncryptionKeyError), database.engine.begin() as conn:
        rotate_secrets(conn, EncryptionKeys(generate_key()))
    with database.engine.connect() as conn:
        assert read_state(conn).secrets == before.secrets
    new_key = generate_key()
    both = EncryptionKeys([new_key, fernet_key])
    with database.engine.begin() as conn:
        result = rotate_secrets(conn, both)
    assert (result.api_keys, result.parameters, result.secrets, result.revisions) == (1, 1, 2, 1)
    new_only = EncryptionKeys(new_key)
    with database.session() as session:
        service = ProviderService(session, new_only, "erin")
        assert service.get_api_key_value("openai") == KEY_SECRET
        assert service.get_connection_parameter_value("openai", "organization") == PARAM_SECRET
        (key,) = service.get_api_keys_by_provider_id("openai")
        assert key["fingerprint"] == new_only.fingerprint(KEY_SECRET)
        with pytest.raises(EncryptionKeyError):
            ProviderService(session, old, "erin").get_api_key_value("openai")
        revision = session.get(ConfigRevision, 1)
        assert revision is not None
        token = revision.snapshot["ciphertexts"]["openai/key:default@default"]
        assert new_only.decrypt(token) == KEY_SECRET
        fingerprint = revision.snapshot["fingerprints"]["openai/key:default@default"]
        assert fingerprint == new_only.fingerprint(KEY_SECRET)
        state = read_state(session)
        assert revision.state_hash == state.state_hash == content_hash(state.data)


def test_wrong_key_never_writes_garbage(database: Database, fernet_key: str) -> None:
    with database.session() as session:
        ProviderService(session, fernet_key, "frank").create_provider(SEED)
        stored = session.scalars(select(ApiKey.key_value)).one()
        with pytest.raises(EncryptionKeyError, match="need encryption key id"):
            ProviderService(session, generate_key(), "frank")
        session.execute(update(ApiKey).values(key_value="not-a-fernet-token"))
        with pytest.raises(EncryptionKeyError):
            ProviderService(session, fernet_key, "frank").get_api_key_value("openai")
        session.rollback()
        assert session.scalars(select(ApiKey.key_value)).one() == stored


def test_model_update_and_child_deletes_are_audited(database: Database, fernet_key: str) -> None:
    with database.session() as session:
        service = ProviderService(session, fernet_key, "carol")
        service.create_provider(SEED)
        service.create_model({"provider_id": "openai", "model_id": "meta/llama-3:8b@v1.2"})
        first = len(audit_rows(session))
        changed = service.update_model("openai", "meta/llama-3:8b@v1.2", {"max_tokens": 512})
        assert changed["max_tokens"] == 512 and changed["model_id"] == "meta/llama-3:8b@v1.2"
        service.update_model("openai", "meta/llama-3:8b@v1.2", {"max_tokens": 512})  # no event
        with pytest.raises(ValidationFailed, match="model_id cannot be changed"):
            service.update_model("openai", "gpt-4o", {"model_id": "other"})
        with pytest.raises(ValidationFailed, match="max_tokens"):
            service.update_model("openai", "gpt-4o", {"max_tokens": -1})
        assert service.delete_model("openai", "meta/llama-3:8b@v1.2") is True
        assert service.delete_model("openai", "meta/llama-3:8b@v1.2") is False
        assert service.delete_api_key("openai") is True
        assert service.delete_api_key("openai") is False
        assert service.delete_connection_parameter("openai", "organization") is True
        assert service.delete_connection_parameter("openai", "organization") is False
        provider = service.get_provider("openai")
        events = audit_rows(session)[first:]
    assert provider is not None
    assert [m["model_id"] for m in provider["models"]] == ["gpt-4o"]
    assert provider["api_keys"] == [] and provider["connection_parameters"] == []
    assert [(e.entity_type, e.entity_key, e.action) for e in events] == [
        ("model", "openai/meta/llama-3:8b@v1.2", "update"),
        ("model", "openai/meta/llama-3:8b@v1.2", "delete"),
        ("api_key", "openai/key:default@default", "delete"),
        ("connection_parameter", "openai/param:organization@default", "delete"),
    ]
    assert all(e.actor == "carol" for e in events)
    assert events[0].before["max_tokens"] is None  # type: ignore[index]
    assert events[0].after["max_tokens"] == 512  # type: ignore[index]
    assert events[2].before["value"] == MASK and events[2].after is None  # type: ignore[index]
    assert KEY_SECRET not in str([e.before for e in events])
