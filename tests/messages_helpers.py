"""A served gateway for the Messages API tests: an OpenAI-shaped provider and an Anthropic
provider on the loopback upstream (:class:`runtime_servers.FakeLLMServer`, recording what it
receives), behind a real ``gwconfig serve``, with tokens to call it through the ``anthropic``
and ``openai`` packages."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from builders import write_manifests
from gwconfig.db.session import open_database
from gwconfig.server.state import ServeSettings
from reconcile_helpers import apply
from runtime_servers import FAST, FakeLLMServer
from serve_helpers import ServedApp, make_token, serve_app

#: the Anthropic tool of the tests, and the OpenAI function tool it translates to
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "The weather of a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
WEATHER_FUNCTION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": WEATHER_TOOL["input_schema"],
    },
}
PNG = "iVBORw0KGgo="


def docs(upstream: FakeLLMServer) -> list[dict[str, Any]]:
    """Providers ``up`` (openai) and ``claude`` (anthropic) on ``upstream``; routes over them."""
    key = [{"name": "default", "value": {"env": "UP_KEY"}}]
    settings = {**FAST, "max_retries": 0}
    return [
        {
            "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "up",
            "provider_type": "openai", "connection": {"api_base": upstream.base_url + "/v1"},
            "api_keys": key, "request_settings": settings,
            "models": [
                {"model_id": "gpt-tools", "capabilities": ["chat", "function_calling", "vision"]},
                {"model_id": "gpt-text", "capabilities": ["chat"]},
                {"model_id": "break"}, {"model_id": "leak:stream"}, {"model_id": "leak:json"},
            ],
        },
        {
            "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "claude",
            "provider_type": "anthropic", "connection": {"api_base": upstream.base_url},
            "api_keys": key, "request_settings": settings, "models": [{"model_id": "sonnet"}],
        },
        {
            "apiVersion": "gwconfig/v1", "kind": "Gateway",
            "routes": [
                {"name": "agents",
                 "targets": [{"model": "up/gpt-text"}, {"model": "up/gpt-tools"}]},
                {"name": "fast-chat", "targets": [{"model": "up/gpt-tools"}]},
            ],
        },
    ]  # fmt: skip


@dataclass
class Served:
    """The served gateway, its ``invoke`` token and the upstream behind it."""

    app: ServedApp
    token: str
    upstream: FakeLLMServer
    url: str

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        """An ``anthropic`` client on the gateway (the token as ``x-api-key`` by default)."""
        kwargs.setdefault("api_key", self.token)
        return anthropic.Anthropic(base_url=self.app.base_url, max_retries=0, **kwargs)

    def openai(self) -> openai.OpenAI:
        """An ``openai`` client on the gateway."""
        return openai.OpenAI(base_url=self.app.base_url + "/v1", api_key=self.token, max_retries=0)

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        """A raw POST (``x-api-key`` set to the token unless ``headers`` say otherwise)."""
        sent = {"x-api-key": self.token, **headers}
        with httpx.Client(base_url=self.app.base_url, timeout=30) as client:
            if isinstance(body, bytes):
                return client.post(path, content=body, headers=sent)
            return client.post(path, json=body, headers=sent)

    def events(self, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The server-sent events (name, data) of a streamed POST to ``/v1/messages``."""
        out: list[tuple[str, dict[str, Any]]] = []
        headers = {"x-api-key": self.token}
        with (
            httpx.Client(base_url=self.app.base_url, timeout=30) as client,
            client.stream("POST", "/v1/messages", json=body, headers=headers) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            name = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    out.append((name, json.loads(line[len("data: ") :])))
        return out

    def last(self) -> tuple[str, dict[str, Any]]:
        """The path and body of the last request the upstream received."""
        path, _, body = self.upstream.requests[-1]
        return path, body


@contextmanager
def serve_messages(
    sqlite_url: str,
    upstream: FakeLLMServer,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Served]:
    """Apply :func:`docs` to ``sqlite_url`` and serve it (a token named ``app``)."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("UP_KEY", "sk-up-" + secrets.token_urlsafe(24))
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    open_database(sqlite_url, upgrade=True).dispose()
    apply(write_manifests(tmp_path / "m", *docs(upstream)), sqlite_url)
    token = make_token(sqlite_url, "invoke", name="app")
    upstream.reset()
    with serve_app(ServeSettings(database_url=sqlite_url)) as app:
        yield Served(app, token, upstream, sqlite_url)


@pytest.fixture
def served(
    sqlite_url: str,
    module_server: FakeLLMServer,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Served]:
    """The Messages API's served gateway on a SQLite database (a fixture, in conftest.py's
    plugins)."""
    with serve_messages(sqlite_url, module_server, fernet_key, monkeypatch, tmp_path) as s:
        yield s


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` of an answer in Anthropic's error shape (asserting the shape)."""
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["type"] == "error" and set(doc) == {"type", "error"}
    assert set(doc["error"]) == {"type", "message"}
    error: dict[str, Any] = doc["error"]
    return error
