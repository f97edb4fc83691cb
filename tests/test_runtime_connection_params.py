"""Every connection setting a provider type documents reaches the provider: one test per type,
against a loopback upstream that records what it received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gwconfig.runtime import LLMConfig, LLMRequest
from gwconfig.runtime.config.sources import ConfigLoader
from runtime_servers import FAST, FakeLLMServer, generate_each, provider_doc, write_compiled

KEY = "sk-test-params-0123456789"
SETTINGS = {**FAST, "max_retries": 0, "timeout_seconds": 30}


@pytest.fixture
def server(module_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    module_server.reset()
    monkeypatch.setenv("PARAMS_TEST_KEY", KEY)
    monkeypatch.setenv("PARAMS_TEST_PROJECT", "proj-secret-42")
    return module_server


def call(tmp_path: Path, provider: dict[str, Any], model: str) -> Any:
    """One request to ``model`` through a configuration of ``provider`` alone."""
    path = write_compiled(tmp_path / "c.json", [provider])
    config = ConfigLoader(path).load_config_as_object()
    (answer,) = generate_each(config, LLMRequest("hi", LLMConfig(model_identifier=model)))
    assert not isinstance(answer, Exception), answer
    return answer


def keyed(provider_id: str, provider_type: str, models: list[Any], **extra: Any) -> dict[str, Any]:
    keys = [{"value": {"env": "PARAMS_TEST_KEY"}}]
    return provider_doc(
        provider_id, provider_type, models, api_keys=keys, request_settings=SETTINGS, **extra
    )


def test_openai_organization_and_project_are_headers(tmp_path: Path, server: FakeLLMServer) -> None:
    params = [
        {"name": "organization", "value": "org-7"},
        {"name": "project", "value": {"env": "PARAMS_TEST_PROJECT"}, "sensitive": True},
    ]
    connection = {"api_base": server.base_url + "/v1", "parameters": params}
    call(tmp_path, keyed("oa", "openai", ["gpt-4o"], connection=connection), "oa/gpt-4o")
    ((path, headers, _body),) = server.requests
    assert path == "/v1/chat/completions" and headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-organization"] == "org-7"
    assert headers["openai-project"] == "proj-secret-42"


def test_an_openai_compatible_server_gets_its_headers_and_no_key(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    connection = {"api_base": server.base_url + "/v1", "headers": {"x-tenant": "blue"}}
    doc = provider_doc(
        "vllm", "openai", ["llama"], request_settings=SETTINGS, connection=connection
    )
    call(tmp_path, doc, "vllm/llama")
    ((path, headers, body),) = server.requests
    assert path == "/v1/chat/completions" and body["model"] == "llama"
    assert headers["x-tenant"] == "blue" and "authorization" not in headers
    assert "openai-organization" not in headers and "openai-project" not in headers


@pytest.mark.parametrize(("version", "sent"), [("2025-01-01-preview", None), (None, "2024-10-21")])
def test_azure_api_version_and_deployment(
    tmp_path: Path, server: FakeLLMServer, version: str | None, sent: str | None
) -> None:
    connection: dict[str, Any] = {"api_base": server.base_url}
    if version is not None:
        connection["api_version"] = version
    models = [{"model_id": "gpt-4o", "parameters": {"deployment": "prod-4o"}}, "gpt-mini"]
    doc = keyed("az", "azure_openai", models, connection=connection)
    call(tmp_path, doc, "az/gpt-4o")
    call(tmp_path, doc, "az/gpt-mini")
    (p1, h1, _), (p2, _, _) = server.requests
    assert p1 == "/openai/deployments/prod-4o/chat/completions" and h1["api-key"] == KEY
    assert p2 == "/openai/deployments/gpt-mini/chat/completions"  # no deployment: the model id
    assert server.queries == [f"api-version={sent or version}"] * 2
    assert "authorization" not in h1


@pytest.mark.parametrize(("version", "sent"), [("2024-02-29", "2024-02-29"), (None, "2023-06-01")])
def test_anthropic_api_version_is_the_anthropic_version_header(
    tmp_path: Path, server: FakeLLMServer, version: str | None, sent: str
) -> None:
    connection: dict[str, Any] = {"api_base": server.base_url, "headers": {"x-team": "core"}}
    if version is not None:
        connection["api_version"] = version
    call(tmp_path, keyed("an", "anthropic", ["claude"], connection=connection), "an/claude")
    ((path, headers, _body),) = server.requests
    assert path == "/v1/messages" and headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == sent and headers["x-team"] == "core"


def test_mock_reads_its_knobs_from_connection_parameters(tmp_path: Path) -> None:
    connection = {"parameters": [{"name": "reply", "value": "from the connection"}]}
    doc = provider_doc("mk", "mock", ["m", {"model_id": "own", "parameters": {"reply": "own"}}])
    doc["connection"] = connection
    assert call(tmp_path, doc, "mk/m").generated_content == "from the connection"
    assert call(tmp_path, doc, "mk/own").generated_content == "own"  # the model's come first
