"""``gwconfig serve`` in front of the loopback upstream with an ``openai``-type and an
``anthropic``-type provider, for the tests of the translation to the Messages API."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest

from builders import write_manifests
from gwconfig.db.session import open_database
from gwconfig.server.state import ServeSettings
from reconcile_helpers import apply
from runtime_servers import FAST, FakeLLMServer
from serve_helpers import ServedApp, make_token, serve_app

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
#: WEATHER as the Messages API takes it
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather of a city",
    "input_schema": WEATHER["function"]["parameters"],
}
#: the anthropic models served (the loopback upstream's behaviours, see runtime_servers)
CLAUDE_MODELS = ("sonnet", "cache", "think", "stop:max_tokens", "stop:refusal",
                 "stop:stop_sequence")  # fmt: skip
ALL = ["chat", "function_calling", "vision"]


def docs(upstream: FakeLLMServer) -> list[dict[str, Any]]:
    """An openai provider ``up`` (model ``gpt-tools``) and an anthropic provider ``claude``."""
    key = [{"name": "default", "value": {"env": "UP_KEY"}}]
    settings = {**FAST, "max_retries": 0}
    return [
        {
            "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "up",
            "provider_type": "openai", "connection": {"api_base": upstream.base_url + "/v1"},
            "api_keys": key, "request_settings": settings,
            "models": [{"model_id": "gpt-tools", "capabilities": ALL}],
        },
        {
            "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "claude",
            "provider_type": "anthropic", "connection": {"api_base": upstream.base_url},
            "api_keys": key, "request_settings": settings,
            # "bare" declares no capabilities: nothing is judged before the translation
            "models": [{"model_id": "bare"},
                       *({"model_id": m, "capabilities": ALL} for m in CLAUDE_MODELS)],
        },
    ]  # fmt: skip


@contextmanager
def served(
    url: str, upstream: FakeLLMServer, fernet_key: str, monkeypatch: pytest.MonkeyPatch, root: Path
) -> Iterator[tuple[ServedApp, openai.OpenAI]]:
    """``serve`` on the database ``url`` with :func:`docs` applied, and an ``openai`` client
    with an ``invoke`` token; the upstream's records are reset."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("UP_KEY", "sk-up-" + secrets.token_urlsafe(24))
    monkeypatch.chdir(root)
    open_database(url, upgrade=True).dispose()
    apply(write_manifests(root / "m", *docs(upstream)), url)
    token = make_token(url, "invoke", name="app")
    upstream.reset()
    with serve_app(ServeSettings(database_url=url)) as app:
        client = openai.OpenAI(base_url=app.base_url + "/v1", api_key=token, max_retries=0)
        try:
            yield app, client
        finally:
            client.close()


def sent(upstream: FakeLLMServer) -> dict[str, Any]:
    """The body of the upstream's last request."""
    return upstream.requests[-1][2]
