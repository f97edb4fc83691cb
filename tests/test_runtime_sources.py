"""The runtime on the gateway database: DB vs file equality, usage records, reload on revision."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from gwconfig.db.models import ConfigRevision, ProviderModel, UsageRecord
from gwconfig.db.rows import insert_config
from gwconfig.db.session import open_database
from gwconfig.reconcile.state import read_state
from gwconfig.runtime import (
    ConfigLoader,
    InterventionContext,
    LLMConfig,
    LLMGatewayClient,
    LLMRequest,
    NoRouteError,
)
from gwconfig.secrets.keys import EncryptionKeys
from gwconfig.secrets.resolve import resolve_secret
from runtime_servers import compile_docs, provider_doc, write_compiled


def manifests() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    keys = [
        {"name": "default", "value": {"env": "RT_DB_KEY"}},
        {
            "name": "default",
            "environment": "prod",
            "value": {"env": "RT_DB_PROD_KEY"},
            "expires_at": "2099-01-01T00:00:00Z",
        },
    ]
    params = [
        {"name": "organization", "value": "org-1"},
        {"name": "project", "value": {"env": "RT_DB_PROJECT"}, "sensitive": True},
    ]
    providers = [
        provider_doc(
            "local",
            "mock",
            [
                {
                    "model_id": "chat",
                    "parameters": {"reply": "from the db", "latency_ms": 0},
                    "aliases": ["local-alias"],
                    "capabilities": ["streaming"],
                    "pricing": {"input_per_1m": 1.5},
                },
                {"model_id": "off", "enabled": False},
            ],
            tags=["local"],
            request_settings={"max_retries": 1, "timeout_seconds": 5},
        ),
        provider_doc(
            "openai",
            "openai",
            ["gpt-4o"],
            api_keys=keys,
            connection={"api_base": "http://127.0.0.1:9/v1", "parameters": params},
        ),
    ]
    routes = [{"name": "local-chat", "targets": [{"model": "local/chat"}]}]
    return providers, routes


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, fernet_key: str) -> str:
    monkeypatch.setenv("RT_DB_KEY", "sk-default-abc")
    monkeypatch.setenv("RT_DB_PROD_KEY", "sk-prod-xyz")
    monkeypatch.setenv("RT_DB_PROJECT", "proj-secret")
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    return fernet_key


def seed_db(url: str, fernet_key: str) -> Any:
    providers, routes = manifests()
    compiled = compile_docs(providers, routes=routes, default_route="local-chat")
    db = open_database(url, upgrade=True)
    with db.engine.begin() as conn:
        insert_config(conn, compiled.data, EncryptionKeys(fernet_key), resolve_secret)
    return db


@pytest.mark.parametrize("environment", ["default", "prod"])
def test_db_and_file_give_the_same_config(
    db_url: str, tmp_path: Path, secret_env: str, environment: str
) -> None:
    db = seed_db(db_url, secret_env)
    providers, routes = manifests()
    path = write_compiled(tmp_path / "c.json", providers, routes=routes, default_route="local-chat")
    from_db = ConfigLoader(db_url, environment=environment).load_config_as_object()
    from_file = ConfigLoader(path, environment=environment).load_config_as_object()
    assert from_db == from_file
    oa = from_db.providers["openai"]
    expected = "sk-prod-xyz" if environment == "prod" else "sk-default-abc"
    assert oa.api_key(0).value == expected
    assert oa.params == {"organization": "org-1", "project": "proj-secret"}
    # a Session and an Engine give the same result as the URL
    with db.session() as session:
        assert ConfigLoader(session, environment=environment).load_config_as_object() == from_db
    assert ConfigLoader(db.engine, environment=environment).load_config_as_object() == from_db
    db.dispose()


def test_db_config_reads_models_lazily_and_hashes_like_the_state(
    db_url: str, secret_env: str
) -> None:
    db = seed_db(db_url, secret_env)
    config = ConfigLoader(db_url).load_config_as_object()
    with db.engine.connect() as conn:
        state = read_state(conn)
    # resolution straight from the raw rows: alias, bare id, disabled model
    assert config.resolve("local-alias").groups[0].targets[0].key == "local/chat"
    assert config.resolve("chat").groups[0].targets[0].key == "local/chat"
    with pytest.raises(NoRouteError, match="disabled"):
        config.resolve("off")
    local = config.providers["local"]
    assert local.models["chat"].parameters == {"reply": "from the db", "latency_ms": 0}
    assert local.models["chat"].aliases == ("local-alias",)
    assert local.models["off"].enabled is False
    assert local.models.get("missing") is None and "missing" not in local.models
    local_state = state.provider("local")
    assert local_state is not None
    assert dict(local.models.raw_items()) == {m["model_id"]: m for m in local_state["models"]}
    # computed on first access, equal to what read_state reports
    assert config.content_hash == state.state_hash
    db.dispose()


def test_usage_records_are_written_in_batches(memory_url: str, secret_env: str) -> None:
    db = seed_db(memory_url, secret_env)
    config = ConfigLoader(db.engine).load_config_as_object()

    async def main() -> None:
        client = LLMGatewayClient(config, None, db.engine, usage_flush_interval=0.05)
        async with client:
            for i in range(25):
                await client.generate(
                    LLMRequest("hello world", LLMConfig("local-chat"), InterventionContext(f"s{i}"))
                )
            await client.generate(
                LLMRequest("keep me", LLMConfig("local/chat"), record_prompt=True)
            )

    asyncio.run(main())

    async def with_session() -> None:  # the seed passes a Session as ``db``
        with db.session() as session:
            async with LLMGatewayClient(config, None, session) as client:
                stream = client.generate_stream(
                    LLMRequest("streamed", LLMConfig("local-chat"), InterventionContext("st"))
                )
                assert "".join([c async for c in stream]) == "from the db"

    asyncio.run(with_session())
    with db.engine.connect() as conn:
        rows = conn.execute(select(UsageRecord.__table__).order_by(UsageRecord.id)).mappings().all()
    assert len(rows) == 27
    first = rows[0]
    assert (first["provider_id"], first["model_id"], first["session_id"]) == ("local", "chat", "s0")
    assert (first["prompt_tokens"], first["completion_tokens"], first["total_tokens"]) == (2, 3, 5)
    assert first["outcome"] == "ok" and first["attempts"] == 1 and first["prompt"] is None
    assert rows[-2]["prompt"] == "keep me"
    assert (rows[-1]["session_id"], rows[-1]["outcome"], rows[-1]["completion_tokens"]) == (
        "st",
        "ok",
        3,
    )
    db.dispose()


def test_reload_follows_new_revision_and_keeps_last_good(sqlite_url: str, secret_env: str) -> None:
    db = seed_db(sqlite_url, secret_env)
    loader = ConfigLoader(sqlite_url)
    config = loader.load_config_as_object()

    async def main() -> list[Any]:
        out: list[Any] = []
        async with LLMGatewayClient(config, None, loader=loader) as client:
            req = LLMRequest("x", LLMConfig("local-chat"))
            out.append((await client.generate(req)).generated_content)
            out.append(await client.reload())  # nothing changed
            with db.engine.begin() as conn:
                conn.execute(
                    update(ProviderModel.__table__)
                    .where(ProviderModel.__table__.c.model_id == "chat")
                    .values(parameters={"reply": "revision two"})
                )
                conn.execute(
                    insert(ConfigRevision.__table__).values(
                        number=1,
                        content_hash="sha256:x",
                        state_hash="sha256:y",
                        snapshot={},
                        actor="test",
                        summary={},
                    )
                )
            out.append(await client.reload())
            out.append((await client.generate(req)).generated_content)
            out.append(client.config.version[1])
        return out

    before, unchanged, reloaded, after, revision = asyncio.run(main())
    assert (before, unchanged, reloaded, after) == ("from the db", False, True, "revision two")
    assert revision == "1"
    db.dispose()
