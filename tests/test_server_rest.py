"""The REST API under /api/v1 through LLMGatewayClient against a real uvicorn server, on
SQLite, PostgreSQL and MariaDB: the guide's flow, model ids with '/', write-only keys (a canary
never in a response or a log), If-Match races, --read-only, drift in the next plan."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from gwconfig.api_client import (
    AsyncLLMGatewayClient,
    Conflict,
    Forbidden,
    LLMGatewayClient,
    NotFound,
    PreconditionFailed,
    ReadOnly,
    Unauthorized,
    ValidationFailed,
)
from gwconfig.db.models import AuditEvent
from gwconfig.db.session import open_database
from gwconfig.reconcile import commands, revisions
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.server.rest.etags import etag_of, if_match_passes
from gwconfig.server.rest.paging import decode_cursor, encode_cursor
from gwconfig.server.state import ServeSettings
from serve_helpers import ServedApp, make_token, serve_app

MODEL_ID = "meta/llama-3.1:8b@v1.2"


class Recording(httpx.HTTPTransport):
    """A real HTTP transport that keeps every response's status, headers and body."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        body = response.read()
        self.seen.append(f"{response.status_code} {dict(response.headers)} {body.decode()}")
        return response


@pytest.fixture
def gw_url(db_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An upgraded database of each engine and its encryption key in the environment."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    open_database(db_url, upgrade=True).dispose()
    return db_url


@pytest.fixture
def served(gw_url: str) -> Iterator[ServedApp]:
    """The server on that database."""
    with serve_app(gw_url) as app:
        yield app


def seed(pid: str, key: str, **extra: Any) -> dict[str, Any]:
    """The guide's create_provider dict (section 2.2) with a model id full of separators."""
    return {
        "provider_id": pid,
        "provider_type": "openai",
        "display_name": "OpenAI",
        "enabled": True,
        "connection_params": {"api_base": "https://api.openai.com/v1"},
        "models": [
            {"model_id": "gpt-4-turbo-preview", "display_name": "GPT-4 Turbo",
             "context_window": 128000, "max_tokens": 4096},
            {"model_id": MODEL_ID, "context_window": 8192},
        ],
        "api_key": {"key_value": key, "is_encrypted": True},
        **extra,
    }  # fmt: skip


def test_guide_flow_end_to_end(
    served: ServedApp,
    gw_url: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "sk-canary-" + secrets.token_hex(16)
    param_canary = "org-canary-" + secrets.token_hex(16)
    token = make_token(gw_url, "write", name="backoffice")
    recording = Recording()
    client = LLMGatewayClient(served.base_url, token, transport=recording)
    with client:
        created = client.create_provider(seed("openai", canary))
        assert created["display_name"] == "OpenAI" and created.etag
        assert [m["model_id"] for m in created["models"]] == ["gpt-4-turbo-preview", MODEL_ID]
        (key,) = created["api_keys"]
        assert key["name"] == "default" and key["key_value"] == "(sensitive)"
        assert len(key["fingerprint"]) == len("hmac-sha256:") + 12

        provider = client.get_provider("openai")
        assert provider == created and provider.etag == created.etag
        assert client.get_providers() == [{k: v for k, v in created.items() if k not in (
            "models", "api_keys", "connection_parameters")}]  # fmt: skip

        updated = client.update_provider(
            "openai", {"display_name": "OpenAI EU"}, if_match=provider.etag
        )
        assert updated["display_name"] == "OpenAI EU" and updated.etag != provider.etag
        with pytest.raises(PreconditionFailed) as stale:
            client.update_provider("openai", {"display_name": "Lost"}, if_match=provider.etag)
        assert stale.value.status == 412 and "changed since you read it" in str(stale.value)

        # models, with '/', ':', '.' and '@' in the id
        model = client.get_model("openai", MODEL_ID)
        assert model["model_id"] == MODEL_ID and model["context_window"] == 8192
        changed = client.update_model("openai", MODEL_ID, {"max_tokens": 512}, if_match=model.etag)
        assert changed["max_tokens"] == 512
        other = client.create_model("openai", {"model_id": "org/sub/model:v2"})
        assert other["display_name"] == "org/sub/model:v2"
        client.delete_model("openai", "org/sub/model:v2")
        with pytest.raises(NotFound):
            client.get_model("openai", "org/sub/model:v2")
        with pytest.raises(Conflict):
            client.create_model("openai", {"model_id": MODEL_ID})

        # API keys: write-only
        staging = client.create_api_key(
            "openai", {"key_value": canary + "-staging", "environment": "staging"}
        )
        assert staging["environment"] == "staging" and staging["key_value"] == "(sensitive)"
        keys = client.get_api_keys("openai")
        assert [(k["name"], k["environment"]) for k in keys] == [
            ("default", "default"), ("default", "staging")]  # fmt: skip
        assert client.get_api_key("openai", environment="staging")["fingerprint"]
        client.delete_api_key("openai", environment="staging")
        assert len(client.get_api_keys("openai")) == 1

        # connection parameters: sensitive values masked
        param = client.set_connection_parameter(
            "openai",
            {"param_name": "organization", "param_value": param_canary, "is_sensitive": True},
        )
        assert param["param_value"] == "(sensitive)"
        plain = client.set_connection_parameter(
            "openai", {"param_name": "region", "param_value": "eu-west-1"}
        )
        assert plain["param_value"] == "eu-west-1"
        assert [p["param_name"] for p in client.get_connection_parameters("openai")] == [
            "organization", "region"]  # fmt: skip
        client.delete_connection_parameter("openai", "region")

        with pytest.raises(ValidationFailed) as bad:
            client.create_provider(
                seed("broken", canary, models=[{"model_id": "m", "max_tokens": 0}])
            )
        assert bad.value.field_errors[0]["loc"] == "body.models.0.max_tokens"

        assert client.delete_provider("openai")["deleted"] is True
        with pytest.raises(NotFound):
            client.get_provider("openai")

    # the token's name is the actor of every audit row the API caused
    db = open_database(gw_url)
    try:
        with db.session() as session:
            actors = set(session.scalars(select(AuditEvent.actor)))
    finally:
        db.dispose()
    assert actors == {"backoffice"}

    captured = capfd.readouterr()
    everything = "\n".join([*recording.seen, caplog.text, captured.out, captured.err])
    assert recording.seen and canary not in everything and param_canary not in everything


def test_pages_and_tags(served: ServedApp, gw_url: str) -> None:
    token = make_token(gw_url, "write")
    with LLMGatewayClient(served.base_url.rstrip("/"), token) as client:
        for i in range(7):
            tags = ["eu"] if i % 2 == 0 else []
            client.create_provider(
                {"provider_id": f"p{i}", "provider_type": "openai", "tags": tags}
            )
        assert [p["provider_id"] for p in client.get_providers(page_size=2)] == [
            f"p{i}" for i in range(7)
        ]
        assert [p["provider_id"] for p in client.get_providers(tag="eu", page_size=1)] == [
            "p0", "p2", "p4", "p6"]  # fmt: skip
    with served.client(token) as http:
        first = http.get("/api/v1/providers", params={"limit": 3})
        body = first.json()
        assert len(body["items"]) == 3 and first.headers["link"] == f'<{body["next"]}>; rel="next"'
        assert (
            http.get(
                "/api/v1/providers",
                params={"limit": 3},
                headers={"If-None-Match": first.headers["etag"]},
            ).status_code
            == 304
        )
        again = http.get(body["next"]).json()
        assert [p["provider_id"] for p in again["items"]] == ["p3", "p4", "p5"]
        bad = http.get("/api/v1/providers", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert http.get("/api/v1/providers", params={"limit": 0}).status_code == 422


def test_two_puts_with_the_same_if_match_one_412(served: ServedApp, gw_url: str) -> None:
    token = make_token(gw_url, "write")
    with LLMGatewayClient(served.base_url, token) as client:
        client.create_provider({"provider_id": "race", "provider_type": "openai"})
        etag = client.get_provider("race").etag
    barrier = threading.Barrier(2)
    results: list[int] = []

    def put(name: str) -> None:
        with served.client(token) as http:
            barrier.wait(30)
            r = http.put(
                "/api/v1/providers/race", json={"display_name": name}, headers={"If-Match": etag}
            )
            results.append(r.status_code)

    threads = [threading.Thread(target=put, args=(n,)) for n in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), f"{t.name} did not return within 60 s"
    assert sorted(results) == [200, 412]
    with served.client(token) as http:
        gone = http.delete("/api/v1/providers/race", headers={"If-Match": etag})
        assert gone.status_code == 412 and gone.headers["etag"] != etag


def test_auth_and_read_only(gw_url: str) -> None:
    reader, writer = make_token(gw_url, "read"), make_token(gw_url, "write")
    with serve_app(gw_url) as app:
        with LLMGatewayClient(app.base_url, writer) as client:
            client.create_provider({"provider_id": "openai", "provider_type": "openai"})
        with LLMGatewayClient(app.base_url, reader) as client:
            assert client.get_provider("openai")["provider_id"] == "openai"
            with pytest.raises(Forbidden):
                client.update_provider("openai", {"display_name": "x"})
        with LLMGatewayClient(app.base_url) as client, pytest.raises(Unauthorized):
            client.get_providers()
    with serve_app(ServeSettings(database_url=gw_url, read_only=True)) as app:
        with app.client(reader) as http:
            spec = http.get("/openapi.json").json()
        writes = [
            (method, path)
            for path, ops in spec["paths"].items()
            if path.startswith("/api/v1/providers") or path.startswith("/api/v1/revisions")
            for method in ops
            if method in ("post", "put", "delete", "patch")
        ]
        assert len(writes) == 10
        with app.client(writer) as http:
            for method, path in writes:
                url = path.format(provider_id="openai", model_id="a/b:c", name="default")
                r = http.request(method.upper(), url, json={})
                assert r.status_code == 405, (method, path, r.text)
                problem = r.json()
                assert "managed by manifests" in problem["detail"]
                assert (
                    "gwconfig plan" in problem["detail"] and "gwconfig apply" in problem["detail"]
                )
            assert http.get("/api/v1/providers/openai").status_code == 200
        with LLMGatewayClient(app.base_url, writer) as client, pytest.raises(ReadOnly):
            client.delete_provider("openai")


def test_api_write_is_drift_in_the_next_plan(
    served: ServedApp, gw_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "providers.d"
    root.mkdir()
    doc = {"apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "openai",
           "provider_type": "openai", "models": [{"model_id": MODEL_ID}]}  # fmt: skip
    (root / "openai.yaml").write_text(yaml.safe_dump(doc))
    options = PlanOptions()
    commands.apply(str(root), gw_url, options, review=lambda _plan: True)
    assert commands.plan(str(root), gw_url, options).changes == ()
    token = make_token(gw_url, "write", name="ops")
    with LLMGatewayClient(served.base_url, token) as client:
        client.update_model("openai", MODEL_ID, {"max_tokens": 77})
        (revision,) = client.get_revisions()
        assert revision["number"] == 1 and revision["actor"]
        shown = client.get_revision(1)
        assert shown == revisions.show_revision(gw_url, 1)
        assert [revision] == [r.to_json() for r in revisions.history(gw_url)]
        assert shown["config"]["providers"][0]["provider_id"] == "openai"
        assert {"entity": "provider", "key": "openai", "action": "create"} in shown["changes"]
        with pytest.raises(NotFound):
            client.get_revision(2)
    plan = commands.plan(str(root), gw_url, options)
    assert plan.drift_revision == 1
    assert [c.key for c in plan.changes if c.drift] == [f"openai/{MODEL_ID}"]


def test_async_client(served: ServedApp, gw_url: str) -> None:
    token = make_token(gw_url, "write")

    async def flow() -> list[str]:
        async with AsyncLLMGatewayClient(served.base_url, token) as client:
            await client.create_provider({"provider_id": "a", "provider_type": "openai"})
            got = await client.get_provider("a")
            await client.update_provider("a", {"tags": ["x"]}, if_match=got.etag)
            names = [p["provider_id"] for p in await client.get_providers(tag="x")]
            await client.delete_provider("a")
            with pytest.raises(NotFound):
                await client.get_provider("a")
            return names

    assert asyncio.run(flow()) == ["a"]


def test_etags_and_cursors() -> None:
    assert etag_of({"a": 1, "b": 2}) == etag_of({"b": 2, "a": 1}) != etag_of({"a": 2, "b": 2})
    tag = etag_of([1])
    assert if_match_passes(None, tag) and if_match_passes("*", tag)
    assert if_match_passes(f'"x", {tag}', tag) and not if_match_passes(f"W/{tag}", tag)
    assert decode_cursor(encode_cursor("openai/x"), str) == "openai/x"
    assert decode_cursor(encode_cursor(41), int) == 41 and decode_cursor(None, int) is None


def test_body_limit_and_problem_shapes(gw_url: str) -> None:
    token = make_token(gw_url, "write")
    with serve_app(ServeSettings(database_url=gw_url, max_body_bytes=2048)) as app:
        with LLMGatewayClient(app.base_url, token) as client:
            with pytest.raises(ValidationFailed) as big:
                client.create_provider(
                    {"provider_id": "big", "provider_type": "openai", "description": "x" * 4096}
                )
            assert big.value.status == 413
            with pytest.raises(ValidationFailed) as bad:
                client.create_provider({"provider_id": "x", "provider_type": "openai", "nope": 1})
            assert bad.value.status == 422 and bad.value.field_errors[0]["loc"] == "body.nope"
            with pytest.raises(NotFound) as missing:
                client.get_model("nowhere", "a/b")
            assert missing.value.problem["instance"] == "/api/v1/providers/nowhere/models/a/b"
        with app.client(token) as http:
            gone = http.get("/api/v1/providers/nowhere")
            assert gone.headers["content-type"] == "application/problem+json"
            assert http.get("/api/v1/providers/Not_A_Slug!").status_code == 422


def test_client_urls_and_repr() -> None:
    from gwconfig.api_client import calls

    token = "gwc_" + secrets.token_urlsafe(32)
    with LLMGatewayClient("http://gw:8080", token) as client:
        assert client.base_url == "http://gw:8080/api/v1" and token not in repr(client)
    with LLMGatewayClient("https://host/gw/api/v1/", token) as behind_proxy:
        nxt = calls.Call("GET", "/api/v1/providers?limit=2&cursor=abc")
        assert behind_proxy._url(nxt) == "https://host/gw/api/v1/providers?limit=2&cursor=abc"
    assert calls.model("p", "meta/llama 3:8b@v1?#%") == (
        "/providers/p/models/meta/llama%203:8b@v1%3F%23%25"
    )
    assert calls.key("p", "a/b") == "/providers/p/api-keys/a%2Fb"
    with pytest.raises(ValueError, match="http"):
        LLMGatewayClient("ftp://gw")
