"""Served gateways for the server tests: a database with applied manifests behind a real
``gwconfig serve`` on a loopback port, and the tokens to call it.

``gateway_for`` (``/v1`` through the ``openai`` package, upstreams given by the test) and
``setup`` (the REST and configuration API on each engine) are fixtures, registered in
conftest.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from builders import gateway_doc, provider_doc, write_manifests
from gwconfig.db.session import open_database
from gwconfig.db.watch import stop_shared_watchers
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.secrets.keys import generate_key
from gwconfig.server.state import ServeSettings
from reconcile_helpers import apply, yes
from runtime_servers import FAST, FakeLLMServer
from serve_helpers import ServedApp, make_token, serve_app

FAIL = "fail:503:100000"


def manifests(upstream: FakeLLMServer, *, reply: str = "from mock") -> list[dict[str, Any]]:
    """Providers ``up`` (the loopback upstream) and ``mock``; routes over them."""
    up = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "up",
        "provider_type": "openai",
        "connection": {"api_base": upstream.base_url + "/v1"},
        "api_keys": [{"name": "default", "value": {"env": "UP_KEY"}}],
        "request_settings": {**FAST, "max_retries": 0, "timeout_seconds": 30},
        "models": [
            {"model_id": "gpt-ok"},
            {"model_id": FAIL},
            {"model_id": "leak:json"},
            {"model_id": "openai/gpt-4o"},
        ],
    }
    mock = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "mock",
        "provider_type": "mock",
        "models": [{"model_id": "chat", "parameters": {"reply": reply}}],
    }
    slow = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "slowp",
        "provider_type": "mock",
        "models": [{"model_id": "slow", "parameters": {"reply": "late", "latency_ms": 60000}}],
        "request_settings": {"deadline_seconds": 0.2},
    }
    limited = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "limited",
        "provider_type": "mock",
        "models": [{"model_id": "lchat", "parameters": {"reply": "limited"}}],
        "request_settings": {"rate_limit_rpm": 1, "backoff_max_seconds": 1, "max_retries": 0},
    }
    gateway = {
        "apiVersion": "gwconfig/v1",
        "kind": "Gateway",
        "routes": [
            {"name": "main", "targets": [{"model": "up/gpt-ok"}]},
            {"name": "fallback", "targets": [{"model": f"up/{FAIL}"}, {"model": "mock/chat"}]},
            {"name": "local", "targets": [{"model": "mock/chat"}]},
        ],
    }
    return [up, mock, slow, limited, gateway]


@dataclass
class Gateway:
    """A served gateway: the server, its database URL and an ``invoke`` token."""

    served: ServedApp
    url: str
    token: str
    root: Path

    def openai(self, token: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.served.base_url + "/v1", api_key=token or self.token, max_retries=0
        )

    def async_openai(self, token: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.served.base_url + "/v1", api_key=token or self.token, max_retries=0
        )


GatewayFor = Callable[[str, Any], AbstractContextManager[Gateway]]


@pytest.fixture
def gateway_for(fernet_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> GatewayFor:
    """``with gateway_for(db_url, upstream) as gateway``: the :func:`manifests` of ``upstream``
    applied to ``db_url`` and served (with an ``invoke`` token named ``app``)."""

    @contextmanager
    def serve(db_url: str, upstream: Any) -> Iterator[Gateway]:
        monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
        monkeypatch.setenv("UP_KEY", "sk-up-" + secrets.token_urlsafe(24))
        monkeypatch.chdir(tmp_path)
        open_database(db_url, upgrade=True).dispose()
        root = write_manifests(tmp_path / "m", *manifests(upstream))
        apply(root, db_url)
        token = make_token(db_url, "invoke", name="app")
        with serve_app(ServeSettings(database_url=db_url)) as served:
            yield Gateway(served, db_url, token, root)

    return serve


class Setup:
    """A served database with one applied revision, its secrets, and a token per scope."""

    def __init__(self, url: str, root: Path, server: ServedApp, api_key: str) -> None:
        self.url, self.root, self.server, self.api_key = url, root, server, api_key
        self.tokens = {s: make_token(url, s) for s in ("runtime", "admin", "read", "invoke")}

    def get(self, token: str | None = None, **kw: Any) -> httpx.Response:
        with self.server.client(token or self.tokens["runtime"]) as client:
            return client.get("/api/v1/config", **kw)

    def apply(self, monkeypatch: pytest.MonkeyPatch, api_key: str) -> None:
        monkeypatch.setenv("GWT_API_KEY", api_key)
        commands.apply(str(self.root), self.url, PlanOptions(), review=yes)


@pytest.fixture
def setup(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    api_key = "sk-canary-" + secrets.token_hex(12)
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("GWT_API_KEY", api_key)
    monkeypatch.setenv("GWT_PROJECT", "proj-" + secrets.token_hex(6))
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.delenv("GWCONFIG_API_TOKEN", raising=False)
    open_database(db_url, upgrade=True).dispose()
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    commands.apply(str(root), db_url, PlanOptions(), review=yes)
    try:
        with serve_app(db_url) as server:
            yield Setup(db_url, root, server, api_key)
    finally:
        stop_shared_watchers()
