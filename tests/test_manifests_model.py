"""The repository's example manifests and JSON Schemas are real and up to date."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from gwconfig.manifests import compile_path, validate_path
from gwconfig.manifests.jsonschema import stale_schemas

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "providers.d"


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in the repository root (values files are looked up from there too)."""
    monkeypatch.chdir(REPO)
    return REPO


@pytest.mark.parametrize("env", [None, "dev", "prod"])
def test_examples_validate_clean(in_repo: Path, env: str | None) -> None:
    assert validate_path("providers.d", env=env) == []


def test_examples_cover_the_documented_providers(in_repo: Path) -> None:
    config = compile_path("providers.d")
    providers = {p["provider_id"]: p for p in config.data["providers"]}
    types = {p["provider_type"] for p in providers.values()}
    assert {"openai", "anthropic", "azure_openai", "mock"} <= types
    mock = providers["mock"]
    assert mock["tags"] == ["local"]
    assert mock["api_keys"] == []
    routes = {r["name"]: r for r in config.data["gateway"]["routes"]}
    target = routes["local-chat"]["targets"][0]
    assert (target["provider_id"], target["model_id"]) == ("mock", "mock-chat")
    assert any(r["fallbacks"] for r in routes.values())
    self_hosted = providers["vllm"]
    assert self_hosted["connection"]["api_base"].startswith("http://")
    assert config.sources["vllm"].path == "providers.d/self-hosted/vllm.yaml.j2"


def test_template_environments_differ(in_repo: Path) -> None:
    dev = compile_path("providers.d", env="dev")
    prod = compile_path("providers.d", env="prod")
    assert dev.content_hash != prod.content_hash


def test_committed_schemas_are_up_to_date() -> None:
    assert stale_schemas(REPO / "schemas") == []


def test_examples_carry_the_schema_line_and_match_it() -> None:
    files = sorted(EXAMPLES.rglob("*.yaml")) + sorted(EXAMPLES.rglob("*.yaml.j2"))
    assert files
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        schema_path = (path.parent / first.split("$schema=", 1)[1]).resolve()
        assert schema_path.is_file(), path
        if path.suffix == ".yaml":
            schema = json.loads(schema_path.read_text())
            for doc in yaml.safe_load_all(path.read_text()):
                jsonschema.validate(doc, schema)
