"""ProviderRepository: the seed's dict shapes, validation, all-or-nothing writes, encryption."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gwconfig import ProviderRepository
from gwconfig.db import open_database
from gwconfig.db.models import ApiKey, Base, ConnectionParameter, Provider, ProviderModel
from gwconfig.errors import (
    EncryptionKeyError,
    IntegrityViolation,
    NotFoundError,
    ValidationFailed,
)
from gwconfig.manifests.compile import build_config
from gwconfig.manifests.model import ProviderManifest
from gwconfig.reconcile.state import read_state
from gwconfig.secrets.keys import EncryptionKeys, generate_key

SECRET = "sk-repository-test-5f2a9c"

SEED_PROVIDER: dict[str, Any] = {
    "provider_id": "openai",
    "provider_type": "openai",
    "display_name": "OpenAI",
    "enabled": True,
    "connection_params": {"api_base": "https://api.openai.com/v1"},
    "models": [
        {
            "model_id": "gpt-4-turbo-preview",
            "display_name": "GPT-4 Turbo",
            "context_window": 128000,
            "max_tokens": 4096,
        }
    ],
    "api_key": {"key_value": SECRET, "is_encrypted": True},
}


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on a fresh, upgraded database of each engine."""
    db = open_database(db_url, upgrade=True)
    with db.session() as s:
        yield s
    db.dispose()


def row_counts(session: Session) -> dict[str, int]:
    """Rows per table (but the one-row generation counter)."""
    return {
        t.name: session.execute(select(func.count()).select_from(t)).scalar_one()
        for t in Base.metadata.sorted_tables
        if t.name != "config_generation"
    }


def test_seed_create_provider_round_trip(session: Session, fernet_key: str) -> None:
    repo = ProviderRepository(session, fernet_key)
    provider = repo.create_provider(SEED_PROVIDER)
    assert isinstance(provider, Provider) and provider.display_name == "OpenAI"
    assert [p.provider_id for p in repo.get_all_providers()] == ["openai"]
    assert repo.get_provider("openai") is provider
    (model,) = repo.get_models_by_provider_id("openai")
    assert (model.model_id, model.context_window, model.max_tokens) == (
        "gpt-4-turbo-preview",
        128000,
        4096,
    )
    (key,) = repo.get_api_keys_by_provider_id("openai")
    assert key.is_encrypted and key.key_value != SECRET and SECRET not in key.key_value
    assert key.fingerprint == EncryptionKeys(fernet_key).fingerprint(SECRET)
    assert repo.get_api_key_value("openai") == SECRET


def test_repository_writes_what_compile_would(session: Session, fernet_key: str) -> None:
    """A seed write reads back exactly as the equivalent manifest compiles: no phantom diff."""
    repo = ProviderRepository(session, fernet_key)
    data = copy.deepcopy(SEED_PROVIDER)
    data["connection_params"]["organization"] = "org-42"
    data["models"][0]["capabilities"] = {"vision": True, "audio": False}
    repo.create_provider(data)
    manifest = ProviderManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": "openai",
            "provider_type": "openai",
            "display_name": "OpenAI",
            "connection": {
                "api_base": "https://api.openai.com/v1",
                "parameters": [{"name": "organization", "value": "org-42"}],
            },
            "api_keys": [{"value": {"env": "OPENAI_API_KEY"}}],
            "models": [
                {
                    "model_id": "gpt-4-turbo-preview",
                    "display_name": "GPT-4 Turbo",
                    "context_window": 128000,
                    "max_tokens": 4096,
                    "capabilities": ["vision"],
                }
            ],
        }
    )
    desired = copy.deepcopy(dict(build_config([manifest], None).data))
    desired["providers"][0]["api_keys"][0]["value"] = {
        "fingerprint": EncryptionKeys(fernet_key).fingerprint(SECRET)
    }
    assert read_state(session).data == desired


def test_invalid_input_is_a_clear_error_and_writes_nothing(
    session: Session, fernet_key: str
) -> None:
    repo = ProviderRepository(session, fernet_key)
    bad = copy.deepcopy(SEED_PROVIDER)
    bad["models"][0]["context_window"] = 0
    bad["provider_type"] = "Not A Slug"
    with pytest.raises(ValidationFailed) as info:
        repo.create_provider(bad)
    message = str(info.value)
    assert "models.0.context_window" in message and "provider_type" in message
    assert SECRET not in message
    for broken, needle in [
        ({**SEED_PROVIDER, "colour": "blue"}, "colour"),
        ({**SEED_PROVIDER, "api_key": {"key_value": ""}}, "key_value"),
        ({**SEED_PROVIDER, "api_key": {"key_value": SECRET, "bogus": 1}}, "bogus"),
        ({**SEED_PROVIDER, "connection_params": {"timeout": [1]}}, "value"),
        ("not a dict", "dict"),
    ]:
        with pytest.raises(ValidationFailed, match=needle) as info:
            repo.create_provider(broken)  # type: ignore[arg-type]
        assert SECRET not in str(info.value)
    assert set(row_counts(session).values()) == {0}


def test_constraint_violations_leave_no_partial_rows(session: Session, fernet_key: str) -> None:
    repo = ProviderRepository(session, fernet_key)
    duplicated = copy.deepcopy(SEED_PROVIDER)
    duplicated["models"].append({"model_id": "gpt-4-turbo-preview"})
    with pytest.raises(ValidationFailed, match=r"duplicate model_id.*nothing was written"):
        repo.create_provider(duplicated)  # as validate finds it, before the database does
    assert set(row_counts(session).values()) == {0}
    repo.create_provider(SEED_PROVIDER)
    before = row_counts(session)
    with pytest.raises(IntegrityViolation, match="already exists"):
        repo.create_provider(SEED_PROVIDER)
    with pytest.raises(IntegrityViolation):
        repo.create_model({"provider_id": "openai", "model_id": "gpt-4-turbo-preview"})
    with pytest.raises(IntegrityViolation):
        repo.create_api_key({"provider_id": "openai", "key_value": "sk-other"})
    with pytest.raises(NotFoundError):
        repo.create_model({"provider_id": "nope", "model_id": "m"})
    assert row_counts(session) == before


def test_children_keys_and_parameters(session: Session, fernet_key: str) -> None:
    repo = ProviderRepository(session, fernet_key)
    repo.create_provider(SEED_PROVIDER)
    model = repo.create_model(
        {"provider_id": "openai", "model_id": "gpt-4o", "capabilities": ["vision"]}
    )
    assert model.display_name == "gpt-4o" and model.capabilities == ["vision"]
    key = repo.create_api_key(
        {
            "provider_id": "openai",
            "key_value": "sk-prod-value",
            "is_encrypted": True,
            "environment": "prod",
            "expires_at": "2031-01-01T00:00:00Z",
        }
    )
    assert key.expires_at is not None and key.expires_at.year == 2031
    assert repo.get_api_key_value("openai", environment="prod") == "sk-prod-value"
    with pytest.raises(NotFoundError):
        repo.get_api_key_value("openai", environment="staging")
    repo.set_connection_parameter(
        {
            "provider_id": "openai",
            "param_name": "org",
            "param_value": "org-secret",
            "is_sensitive": True,
        }
    )
    repo.set_connection_parameter({"provider_id": "openai", "param_name": "n", "param_value": 3})
    repo.set_connection_parameter({"provider_id": "openai", "param_name": "n", "param_value": 4})
    params = {p.param_name: p for p in repo.get_connection_parameters_by_provider_id("openai")}
    assert params["n"].param_value == 4 and params["n"].fingerprint is None
    assert params["org"].param_value != "org-secret" and params["org"].fingerprint
    assert repo.get_connection_parameter_value("openai", "org") == "org-secret"
    with pytest.raises(ValidationFailed, match="param_value"):
        repo.set_connection_parameter(
            {"provider_id": "openai", "param_name": "x", "param_value": 5, "is_sensitive": True}
        )


def test_update_and_delete(session: Session, fernet_key: str) -> None:
    repo = ProviderRepository(session, fernet_key)
    repo.create_provider({**SEED_PROVIDER, "deletion_protection": True})
    updated = repo.update_provider(
        "openai", {"display_name": "OpenAI EU", "request_settings": {"max_retries": 5}}
    )
    assert updated.display_name == "OpenAI EU"
    assert updated.request_settings["max_retries"] == 5
    assert updated.request_settings["timeout_seconds"] == 60.0  # defaults filled as compile does
    updated = repo.update_provider(
        "openai",
        {"request_settings": {"timeout_seconds": 5}, "connection_params": {"api_version": "v2"}},
    )
    assert updated.request_settings["max_retries"] == 5  # merged, not replaced
    assert updated.request_settings["timeout_seconds"] == 5.0
    assert updated.connection_params["api_base"] == "https://api.openai.com/v1"
    assert updated.connection_params["api_version"] == "v2"
    updated = repo.update_provider("openai", {"request_settings": {"timeout_seconds": None}})
    assert updated.request_settings["timeout_seconds"] == 60.0  # None: back to the default
    with pytest.raises(ValidationFailed, match="models"):
        repo.update_provider("openai", {"models": []})
    with pytest.raises(ValidationFailed, match=r"request_settings\.max_retries"):
        repo.update_provider("openai", {"request_settings": {"max_retries": -1}})
    with pytest.raises(NotFoundError):
        repo.update_provider("nope", {"enabled": False})
    with pytest.raises(ValidationFailed, match="deletion_protection"):
        repo.delete_provider("openai")
    assert repo.get_provider("openai") is not None
    repo.update_provider("openai", {"deletion_protection": False})
    assert repo.delete_provider("openai") is True
    assert repo.delete_provider("openai") is False
    assert set(row_counts(session).values()) == {0}


def test_wrong_key_cannot_read_secrets(session: Session, fernet_key: str) -> None:
    ProviderRepository(session, fernet_key).create_provider(SEED_PROVIDER)
    with pytest.raises(EncryptionKeyError, match=r"need encryption key id\(s\) .*encryption_key"):
        ProviderRepository(session, generate_key())
    assert session.scalars(select(ApiKey)).one().key_value != SECRET
    assert session.scalars(select(ProviderModel)).one().provider_id == "openai"
    assert session.scalars(select(ConnectionParameter)).all() == []
