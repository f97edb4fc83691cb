"""``ConfigLoader.update_provider_config``: the seed's dict shape, written through the service."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from gwconfig.db.models import AuditEvent
from gwconfig.db.session import open_database
from gwconfig.errors import ValidationFailed
from gwconfig.runtime import ConfigLoader, LLMConfig, LLMGatewayClient, LLMRequest

SEED = {
    "provider_id": "local",
    "provider_type": "mock",
    "display_name": "Local",
    "enabled": True,
    "api_base": "http://127.0.0.1:9/v1",
    "models": {"chat": {"display_name": "Chat", "context_window": 8000, "max_tokens": 512}},
    "api_key": "sk-seed-123",
}


@pytest.fixture
def db_env(db_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    open_database(db_url, upgrade=True).dispose()
    return db_url


def test_update_provider_config_creates_then_updates_with_audit(db_env: str) -> None:
    loader = ConfigLoader(db_env)
    created = loader.update_provider_config("local", SEED)
    assert created["provider_id"] == "local" and created["display_name"] == "Local"
    config = loader.load_config_as_object()
    p = config.providers["local"]
    assert p.api_base == "http://127.0.0.1:9/v1" and p.api_key(0).value == "sk-seed-123"
    assert p.models["chat"].max_tokens == 512

    update = {
        **SEED,
        "display_name": "Local v2",
        "models": {"chat": SEED["models"]["chat"], "extra": {"max_tokens": 64}},
    }
    loader.update_provider_config("local", update)
    config = loader.load_config_as_object()
    assert config.providers["local"].display_name == "Local v2"
    assert sorted(config.providers["local"].models) == ["chat", "extra"]

    async def ask() -> str:
        async with LLMGatewayClient(config) as client:
            return (await client.generate(LLMRequest("hi", LLMConfig("extra")))).generated_content

    assert "hi" in asyncio.run(ask())
    with loader.engine.connect() as conn:
        events = conn.execute(
            select(AuditEvent.entity_type, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
        dumped = str(conn.execute(select(AuditEvent.before, AuditEvent.after)).all())
    assert ("provider", "create") in events and ("provider", "update") in events
    assert ("model", "create") in events and "sk-seed-123" not in dumped


def test_update_provider_config_refuses_bad_input(db_env: str) -> None:
    loader = ConfigLoader(db_env)
    with pytest.raises(ValidationFailed, match="unknown field"):
        loader.update_provider_config("local", {**SEED, "bogus": 1})
    with pytest.raises(ValidationFailed, match="does not match"):
        loader.update_provider_config("other", SEED)
    loader.update_provider_config("local", SEED)
    with pytest.raises(ValidationFailed, match="does not replace keys"):
        loader.update_provider_config("local", {**SEED, "api_key": "sk-different"})
