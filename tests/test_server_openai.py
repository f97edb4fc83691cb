"""``/v1/chat/completions`` and ``/v1/models`` of ``gwconfig serve`` through the official
``openai`` package (sync, async, streaming), against real loopback upstreams."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import create_engine, text

from gateways import FAIL, Gateway, GatewayFor
from runtime_servers import FakeLLMServer
from serve_helpers import make_token


@pytest.fixture
def gateway(
    db_url: str, gateway_for: GatewayFor, module_server: FakeLLMServer
) -> Iterator[Gateway]:
    with gateway_for(db_url, module_server) as served:
        yield served


@pytest.fixture
def sqlite_gateway(
    sqlite_url: str, gateway_for: GatewayFor, module_server: FakeLLMServer
) -> Iterator[Gateway]:
    """For what the database's engine plays no part in (the wire format, model names)."""
    with gateway_for(sqlite_url, module_server) as served:
        yield served


def test_plain_answer_with_gateway_headers_and_usage_rows(gateway: Gateway) -> None:
    client = gateway.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="main", messages=[{"role": "user", "content": "hello there"}], max_tokens=20
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "main" and completion.object == "chat.completion"
    assert completion.usage is not None and completion.usage.total_tokens == 5
    assert raw.headers["x-gwconfig-provider"] == "up"
    assert raw.headers["x-gwconfig-attempts"] == "1"
    assert raw.headers["x-gwconfig-revision"] == "1"
    runtime = gateway.served.state.runtime
    assert runtime is not None and runtime.client.usage is not None
    assert runtime.client.usage.flush()
    engine = create_engine(gateway.url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT token_name, outcome FROM usage_records")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("app", "ok")]


def test_streamed_answer_sync_and_async(gateway: Gateway) -> None:
    stream = gateway.openai().chat.completions.create(
        model="up/gpt-ok",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text_ = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text_ == "echo: one two three"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4

    async def main() -> list[str]:
        client = gateway.async_openai()
        parts = []
        stream = await client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            # usage only on a usage chunk, and only when asked (as OpenAI sends it)
            assert chunk.usage is None
        await client.close()
        return parts

    assert "".join(asyncio.run(main())) == "from mock"


def test_fallback_from_a_failing_upstream(gateway: Gateway) -> None:
    async def main() -> Any:
        client = gateway.async_openai()
        try:
            return await client.chat.completions.with_raw_response.create(
                model="fallback", messages=[{"role": "user", "content": "x"}]
            )
        finally:
            await client.close()

    raw = asyncio.run(main())
    assert raw.parse().choices[0].message.content == "from mock"
    assert raw.headers["x-gwconfig-provider"] == "mock"
    assert raw.headers["x-gwconfig-attempts"] == "2"


def test_errors_are_what_the_openai_package_expects(sqlite_gateway: Gateway) -> None:
    client = sqlite_gateway.openai()
    msg = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="no-such-model", messages=msg)  # type: ignore[arg-type]
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        sqlite_gateway.openai("gwc_" + "x" * 43).chat.completions.create(model="main", messages=msg)  # type: ignore[arg-type]
    reader = make_token(sqlite_gateway.url, "read")
    with pytest.raises(openai.PermissionDeniedError):
        sqlite_gateway.openai(reader).chat.completions.create(model="main", messages=msg)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="main", messages=[])
    assert bad.value.param == "messages"
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model=f"up/{FAIL}", messages=msg)  # type: ignore[arg-type]
    assert failed.value.status_code == 502
    with pytest.raises(openai.InternalServerError) as late:
        client.chat.completions.create(model="slowp/slow", messages=msg)  # type: ignore[arg-type]
    assert late.value.status_code == 504
    client.chat.completions.create(model="limited/lchat", messages=msg)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as over:  # every target is over its rpm
        client.chat.completions.create(model="limited/lchat", messages=msg)  # type: ignore[arg-type]
    wait = over.value.response.headers["retry-after"]  # the real wait, as the message says
    assert int(wait) > 1 and f"next slot in {wait}s" in over.value.message


def test_token_models_and_rpm_limits(gateway: Gateway) -> None:
    msg = [{"role": "user", "content": "x"}]
    only_local = make_token(gateway.url, "invoke", models=("local", "mock/*"))
    client = gateway.openai(only_local)
    assert client.chat.completions.create(model="local", messages=msg).choices  # type: ignore[arg-type]
    assert client.chat.completions.create(model="chat", messages=msg).choices  # type: ignore[arg-type]
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="main", messages=msg)  # type: ignore[arg-type]
    ids = {m.id for m in client.models.list()}
    assert ids == {"local", "mock/chat"}
    everything = {m.id for m in gateway.openai().models.list()}
    assert {"main", "fallback", "local", "up/gpt-ok", "mock/chat"} <= everything
    once = make_token(gateway.url, "invoke", rpm=1)
    gateway.openai(once).chat.completions.create(model="local", messages=msg)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as limited:
        gateway.openai(once).chat.completions.create(model="local", messages=msg)  # type: ignore[arg-type]
    assert limited.value.code == "rate_limit_exceeded"
    wait = limited.value.response.headers["retry-after"]
    assert int(wait) > 1 and f"next request in {wait}s" in limited.value.message


def test_model_patterns_match_what_the_name_resolves_to(sqlite_gateway: Gateway) -> None:
    msg = [{"role": "user", "content": "x"}]
    # 'openai/gpt-4o' is the model 'openai/gpt-4o' of provider 'up': up/openai/gpt-4o
    spelt = sqlite_gateway.openai(make_token(sqlite_gateway.url, "invoke", models=("openai/*",)))
    with pytest.raises(openai.PermissionDeniedError) as denied:
        spelt.chat.completions.create(model="openai/gpt-4o", messages=msg)  # type: ignore[arg-type]
    assert denied.value.code == "model_not_allowed"
    assert [m.id for m in spelt.models.list()] == []
    resolved = sqlite_gateway.openai(make_token(sqlite_gateway.url, "invoke", models=("up/*",)))
    answer = resolved.chat.completions.create(model="openai/gpt-4o", messages=msg)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "echo: x"
    assert {m.id for m in resolved.models.list()} == {
        "up/gpt-ok",
        f"up/{FAIL}",
        "up/leak:json",
        "up/openai/gpt-4o",
    }
    with pytest.raises(openai.PermissionDeniedError):  # a route is matched by its name
        resolved.chat.completions.create(model="main", messages=msg)  # type: ignore[arg-type]
    local = sqlite_gateway.openai(make_token(sqlite_gateway.url, "invoke", models=("local",)))
    with pytest.raises(openai.NotFoundError) as unknown:  # hints name only allowed models
        local.chat.completions.create(model="mian", messages=msg)  # type: ignore[arg-type]
    assert "main" not in unknown.value.message and "fallback" not in unknown.value.message
    assert "routes: local" in unknown.value.message
    with pytest.raises(openai.NotFoundError) as near:
        local.chat.completions.create(model="locl", messages=msg)  # type: ignore[arg-type]
    assert "did you mean 'local'?" in near.value.message


def test_bodies_are_bounded_and_methods_checked(sqlite_gateway: Gateway) -> None:
    with httpx.Client(base_url=sqlite_gateway.served.base_url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {sqlite_gateway.token}"}
        big = (
            b'{"model": "main", "messages": [{"role": "user", "content": "'
            + b"a" * (2 * 1024 * 1024)
            + b'"}]}'
        )
        resp = http.post("/v1/chat/completions", content=big, headers=auth)
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"
        resp = http.post("/v1/chat/completions", content=b"{not json", headers=auth)
        assert resp.status_code == 400 and "error" in resp.json()
        resp = http.get("/v1/chat/completions", headers=auth)
        assert resp.status_code == 405
        resp = http.get("/v1/models")
        assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")


def test_unknown_models_get_a_hint_and_huge_names_are_refused_first(
    sqlite_gateway: Gateway,
) -> None:
    with httpx.Client(base_url=sqlite_gateway.served.base_url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {sqlite_gateway.token}"}
        msg = [{"role": "user", "content": "x"}]
        near = http.post(
            "/v1/chat/completions", json={"model": "mian", "messages": msg}, headers=auth
        )
        assert near.status_code == 404, near.text
        assert "did you mean 'main'?" in near.json()["error"]["message"]
        huge = {"model": "z" * 4_000, "messages": msg}
        refused = http.post("/v1/chat/completions", json=huge, headers=auth)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "model"
        assert "z" * 100 not in refused.text  # the name is not echoed back


def test_no_secret_token_or_prompt_in_answers_logs_or_metrics(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    key = os.environ["UP_KEY"]
    prompt = "canary-prompt-" + secrets.token_hex(8)
    client = gateway.openai()
    msg = [{"role": "user", "content": prompt}]
    with caplog.at_level("INFO"):
        with pytest.raises(openai.InternalServerError) as leaked:
            client.chat.completions.create(model="up/leak:json", messages=msg)  # type: ignore[arg-type]
        client.chat.completions.create(model="main", messages=msg)  # type: ignore[arg-type]
        with httpx.Client(base_url=gateway.served.base_url, timeout=30) as http:
            auth = {"Authorization": f"Bearer {gateway.token}"}
            metrics = http.get("/metrics", headers=auth).text
    answer = str(leaked.value.body) + leaked.value.message
    assert "HTTP 401" in answer  # the upstream's error, scrubbed
    lines = [r.getMessage() for r in caplog.records if r.name == "gwconfig.access"]
    assert len(lines) == 3 and '"token":"app"' in lines[0]
    for out in (answer, metrics, *lines):
        assert all(key[i : i + 8] not in out for i in range(len(key) - 7))
        assert gateway.token not in out
    for out in (metrics, *lines):
        assert prompt not in out


def test_retrieve_a_model_by_an_id_with_slashes(sqlite_gateway: Gateway) -> None:
    client = sqlite_gateway.openai()
    model = client.models.retrieve("openai/gpt-4o")  # provider up's model 'openai/gpt-4o'
    assert (model.id, model.object, model.owned_by) == ("openai/gpt-4o", "model", "up")
    listed = {m.id: m for m in client.models.list()}
    for name in ("up/openai/gpt-4o", "up/leak:json", "main"):  # as /v1/models lists it
        assert client.models.retrieve(name).model_dump() == listed[name].model_dump()
    assert client.models.retrieve("main").owned_by == "gwconfig"
    resolved = sqlite_gateway.openai(make_token(sqlite_gateway.url, "invoke", models=("up/*",)))
    assert resolved.models.retrieve("up/openai/gpt-4o").owned_by == "up"
    assert resolved.models.retrieve("openai/gpt-4o").id == "openai/gpt-4o"


def test_retrieve_unknown_or_not_permitted_is_openai_404(sqlite_gateway: Gateway) -> None:
    spelt = sqlite_gateway.openai(make_token(sqlite_gateway.url, "invoke", models=("openai/*",)))
    for client, name in (
        (sqlite_gateway.openai(), "no-such/model"),
        (sqlite_gateway.openai(), "up/no-such@1.0"),
        (spelt, "openai/gpt-4o"),  # resolves to up/openai/gpt-4o: not permitted
        (spelt, "main"),
    ):
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve(name)
        assert missing.value.code == "model_not_found" and missing.value.param == "model"
        assert f"the model '{name}' does not exist" in missing.value.message
    with httpx.Client(base_url=sqlite_gateway.served.base_url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {sqlite_gateway.token}"}
        resp = http.get("/v1/models/nope", headers=auth)
        assert resp.status_code == 404
        error = resp.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == "model_not_found"
        assert error["param"] == "model" and "'nope'" in error["message"]
        assert http.get("/v1/models/", headers=auth).status_code == 404  # not the default route
        assert http.get("/v1/models/main").status_code == 401  # the auth of /v1/models
        assert http.post("/v1/models/main", headers=auth).status_code == 405
        reader = {"Authorization": f"Bearer {make_token(sqlite_gateway.url, 'read')}"}
        assert http.get("/v1/models/main", headers=reader).status_code == 403


def test_unknown_v1_paths_are_openai_404s(sqlite_gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        sqlite_gateway.openai().completions.create(model="main", prompt="x")
    assert "Invalid URL (POST /v1/completions)" in unknown.value.message
    assert "POST /v1/chat/completions" in unknown.value.message
    with httpx.Client(base_url=sqlite_gateway.served.base_url, timeout=30) as http:
        for path in ("/v1/nope", "/v1", "/v1/chat/completions/x"):
            resp = http.get(path)  # no token needed
            assert resp.status_code == 404, path
            assert resp.headers["content-type"] == "application/json"
            error = resp.json()["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == "unknown_url"
            assert f"GET {path})" in error["message"] and "GET /v1/models" in error["message"]
        assert http.get("/api/v1/nope").headers["content-type"] == "application/problem+json"


def test_openapi_lists_the_v1_endpoints_and_metrics(sqlite_gateway: Gateway) -> None:
    with httpx.Client(base_url=sqlite_gateway.served.base_url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {sqlite_gateway.token}"}
        doc = http.get("/openapi.json", headers=auth).json()
        assert http.get("/openapi.json", headers=auth).json() == doc  # added once
    paths = doc["paths"]
    for path, method in (
        ("/v1/chat/completions", "post"),
        ("/v1/embeddings", "post"),
        ("/v1/models", "get"),
        ("/v1/models/{model_id}", "get"),
        ("/metrics", "get"),
    ):
        operation = paths[path][method]
        assert operation["summary"] and operation["description"]
        assert operation["security"] == [{"HTTPBearer": []}]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/api/v1/config" in paths  # the FastAPI routes stay
    model = paths["/v1/models/{model_id}"]["get"]["responses"]["200"]
    assert model["content"]["application/json"]["schema"]["$ref"].endswith("/OpenAIModel")
