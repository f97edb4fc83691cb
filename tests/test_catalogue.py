"""The real model catalogue end to end: manifests -> validate -> compile -> apply -> runtime.

Uses ``../shared/data/model_catalogue.json`` (or ``GWCONFIG_CATALOGUE``) through
``bench/corpus.py``; skipped with a reason when the catalogue is not on this machine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gwconfig.manifests import compile_path, validate_path
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions


def test_catalogue_manifests_validate_and_compile(corpus: ModuleType, tmp_path: Path) -> None:
    root = corpus.write_corpus(tmp_path / "providers.d", scale=1)
    docs = corpus.provider_documents(1)
    assert validate_path(root) == []
    config = compile_path(root)
    providers = config.data["providers"]
    assert [p["provider_id"] for p in providers] == sorted(d["provider_id"] for d in docs)
    assert sum(len(p["models"]) for p in providers) == sum(len(d["models"]) for d in docs) > 4000
    assert config.sources["openai"].path.endswith("openai.yaml")
    # the compiled form never holds a resolved secret, only references
    assert providers[0]["api_keys"][0]["value"].keys() == {"env"}


def test_catalogue_applies_once_and_routes(
    corpus: ModuleType,
    tmp_path: Path,
    sqlite_url: str,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gwconfig.db.session import open_database
    from gwconfig.runtime import (
        ConfigLoader,
        InterventionContext,
        LLMConfig,
        LLMGatewayClient,
        LLMRequest,
        ProviderFactory,
    )

    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    for name, value in corpus.corpus_env(1).items():
        monkeypatch.setenv(name, value)
    root = corpus.write_corpus(tmp_path / "providers.d", scale=1)
    # one mock provider beside the catalogue, so a request can be answered without a network
    (root / "zz-mock.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: zz-mock\nprovider_type: mock\n"
        "models:\n  - model_id: echo\n    parameters: {echo: true}\n",
        encoding="utf-8",
    )
    open_database(sqlite_url, upgrade=True).dispose()

    def yes(_plan: Any) -> bool:
        return True

    options = PlanOptions()
    plan, result = commands.apply(str(root), sqlite_url, options, review=yes)
    models = sum(len(d["models"]) for d in corpus.provider_documents(1)) + 1
    assert result.revision == 1
    created = [c.entity for c in plan.changes if c.action == "create"]
    assert created.count("model") == models
    assert created.count("provider") == len(corpus.provider_documents(1)) + 1
    again = commands.plan(str(root), sqlite_url, options)
    assert again.changes == ()

    config = ConfigLoader(sqlite_url).load_config_as_object()
    request = LLMRequest(
        prompt_content="catalogue says hi",
        config=LLMConfig(model_identifier="zz-mock/echo"),
        initial_context=InterventionContext(session_id="catalogue"),
    )

    async def ask() -> str:
        async with LLMGatewayClient(config, ProviderFactory()) as client:
            response = await client.generate(request)
            return response.generated_content

    assert "catalogue says hi" in asyncio.run(ask())
