"""A served gateway with consumers: providers over a loopback upstream, routes, two
``kind: Consumer`` manifests and a token for each (the ``consumers_gateway`` fixture, registered
in conftest.py), and waiting for the server to load a new revision."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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

#: the longest a test waits for the server to load a revision (a safety net, not a timing)
BOUND = 30.0
PRICES = {"input_per_1m": 2.0, "output_per_1m": 10.0}

TEAM_A = """\
apiVersion: gwconfig/v1
kind: Consumer
name: team-a
description: Team A
models: [main, ok-alias, up/gpt-solo]
limits: {rpm: 1000}
budget: {usd: 5, period: day}
tags: [a]
"""
TEAM_B = """\
apiVersion: gwconfig/v1
kind: Consumer
name: team-b
models: ["up/*"]
limits: {rpm: 2}
"""


def documents(upstream: FakeLLMServer) -> list[dict[str, Any]]:
    """Provider ``up`` (priced models on the loopback upstream) and routes ``main``, ``other``."""
    up = {
        "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "up",
        "provider_type": "openai", "connection": {"api_base": upstream.base_url + "/v1"},
        "api_keys": [{"name": "default", "value": {"env": "UP_KEY"}}],
        "request_settings": {**FAST, "max_retries": 0},
        "models": [
            {"model_id": "gpt-ok", "pricing": PRICES, "aliases": ["ok-alias"]},
            {"model_id": "gpt-no", "pricing": PRICES},
            {"model_id": "gpt-solo", "pricing": PRICES},
        ],
    }  # fmt: skip
    gateway = {
        "apiVersion": "gwconfig/v1", "kind": "Gateway",
        "routes": [{"name": "main", "targets": [{"model": "up/gpt-ok"}]},
                   {"name": "other", "targets": [{"model": "up/gpt-no"}]}],
    }  # fmt: skip
    return [up, gateway]


@dataclass
class ConsumersGateway:
    """The served gateway, its database, manifests and tokens (``a``, ``b``, ``plain``,
    ``read``, ``admin``)."""

    served: ServedApp
    url: str
    root: Path
    tokens: dict[str, str]

    def openai(self, token: str) -> openai.OpenAI:
        """An OpenAI client with one of :attr:`tokens`."""
        return openai.OpenAI(
            base_url=self.served.base_url + "/v1", api_key=self.tokens[token], max_retries=0
        )

    def served_when(self, ready: Callable[[Any], bool]) -> None:
        """Wait (bounded) until the configuration served satisfies ``ready``."""
        runtime = self.served.state.runtime
        assert runtime is not None
        changed = threading.Event()
        runtime.on_reload.append(changed.set)
        deadline = time.monotonic() + BOUND
        while True:
            changed.clear()
            if ready(runtime.client.config):
                return
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the server did not load the change"
            changed.wait(remaining)

    def flush_usage(self) -> None:
        """Wait until every usage row of the requests answered so far is written."""
        runtime = self.served.state.runtime
        assert runtime is not None and runtime.client.usage is not None
        assert runtime.client.usage.flush()


@pytest.fixture
def consumers_gateway(
    db_url: str,
    module_server: FakeLLMServer,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[ConsumersGateway]:
    """Consumers ``team-a`` and ``team-b`` applied to ``db_url`` and served."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("UP_KEY", "sk-up-" + secrets.token_urlsafe(24))
    monkeypatch.chdir(tmp_path)
    open_database(db_url, upgrade=True).dispose()
    root = write_manifests(tmp_path / "m", *documents(module_server))
    (root / "consumers.yaml").write_text(TEAM_A + "---\n" + TEAM_B)
    apply(root, db_url)
    tokens = {
        "a": make_token(db_url, "invoke", name="tok-a", consumer="team-a"),
        "b": make_token(db_url, "invoke", name="tok-b", consumer="team-b"),
        "plain": make_token(db_url, "invoke", name="plain"),
        "read": make_token(db_url, "read", name="reader"),
        "admin": make_token(db_url, "admin", name="operator"),
    }
    module_server.reset()
    with serve_app(ServeSettings(database_url=db_url)) as served:
        yield ConsumersGateway(served, db_url, root, tokens)
