"""The runtime against real loopback servers speaking the OpenAI and Anthropic wire formats."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gwconfig.runtime import (
    AllTargetsFailedError,
    BadRequestError,
    ConfigLoader,
    GatewayConfig,
    LLMConfig,
    LLMGatewayClient,
    LLMRequest,
    ProviderResponseError,
)
from runtime_servers import FAST, FakeLLMServer, generate_each, provider_doc, write_compiled

KEY = "sk-test-runtime-0123456789"


@pytest.fixture
def server(module_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    module_server.reset()
    monkeypatch.setenv("RT_TEST_KEY", KEY)
    return module_server


def config(tmp_path: Path, server: FakeLLMServer, models: list[str], **kw: Any) -> GatewayConfig:
    # A generous timeout: an answer that is merely slow on a busy machine must not be retried
    # (tests of timeouts set their own, against a server that waits far longer).
    settings = {**FAST, "max_retries": 2, "timeout_seconds": 30, **kw.pop("settings", {})}
    keys = [{"value": {"env": "RT_TEST_KEY"}}]
    providers = [
        provider_doc(
            "oa",
            "openai",
            models,
            api_keys=keys,
            request_settings=settings,
            connection={"api_base": server.base_url + "/v1", "headers": {"x-team": "runtime"}},
        ),
        provider_doc(
            "an",
            "anthropic",
            models,
            api_keys=keys,
            request_settings=settings,
            connection={"api_base": server.base_url, "api_version": "2023-06-01"},
        ),
        provider_doc(
            "az",
            "azure_openai",
            [{"model_id": "gpt-4o", "parameters": {"deployment": "prod-4o"}}],
            api_keys=keys,
            request_settings=settings,
            connection={"api_base": server.base_url, "api_version": "2024-10-21"},
        ),
    ]
    path = write_compiled(tmp_path / "c.json", providers, **kw)
    return ConfigLoader(path).load_config_as_object()


def generate(cfg: GatewayConfig, *requests: LLMRequest) -> list[Any]:
    return generate_each(cfg, *requests)


def stream(cfg: GatewayConfig, request: LLMRequest) -> tuple[list[str], Any, Exception | None]:
    async def main() -> tuple[list[str], Any, Exception | None]:
        async with LLMGatewayClient(cfg) as client:
            s = client.generate_stream(request)
            chunks: list[str] = []
            try:
                async for c in s:
                    chunks.append(c)
            except Exception as exc:
                return chunks, s.response, exc
            return chunks, s.response, None

    return asyncio.run(main())


def req(model: str, prompt: str = "hello there", **kw: Any) -> LLMRequest:
    return LLMRequest(prompt, LLMConfig(model_identifier=model, **kw))


def test_openai_anthropic_azure_wire_formats(tmp_path: Path, server: FakeLLMServer) -> None:
    cfg = config(tmp_path, server, ["gpt-4o"])
    oa, an, az = generate(
        cfg,
        req("oa/gpt-4o", max_tokens=20, system_prompt="be brief"),
        req("an/gpt-4o", system_prompt="be brief", temperature=0.2),
        req("az/gpt-4o"),
    )
    for r in (oa, an, az):
        assert r.generated_content == "echo: hello there"
        assert r.usage.completion_tokens == 3 and r.usage.prompt_tokens >= 2
        assert len(r.attempts) == 1 and r.latency_ms > 0
    (p1, h1, b1), (p2, h2, b2), (p3, h3, _b3) = server.requests
    assert p1 == "/v1/chat/completions" and h1["authorization"] == f"Bearer {KEY}"
    assert h1["x-team"] == "runtime" and b1["max_tokens"] == 20
    assert b1["messages"][0] == {"role": "system", "content": "be brief"}
    assert p2 == "/v1/messages" and h2["x-api-key"] == KEY and h2["anthropic-version"]
    assert b2["system"] == "be brief" and b2["max_tokens"] > 0 and b2["temperature"] == 0.2
    assert all(m["role"] != "system" for m in b2["messages"])
    assert p3 == "/openai/deployments/prod-4o/chat/completions" and h3["api-key"] == KEY


def test_429_with_retry_after_is_retried(tmp_path: Path, server: FakeLLMServer) -> None:
    cfg = config(tmp_path, server, ["fail:429:2:0.05"], settings={"backoff_max_seconds": 1})
    (resp,) = generate(cfg, req("oa/fail:429:2:0.05"))
    assert resp.generated_content == "echo: hello there"
    assert [a.outcome for a in resp.attempts] == [
        "ProviderUnavailableError",
        "ProviderUnavailableError",
        "ok",
    ]
    assert "HTTP 429" in (resp.attempts[0].error or "")


def test_500_exhausts_retries_then_falls_back(tmp_path: Path, server: FakeLLMServer) -> None:
    routes = [{"name": "r", "targets": [{"model": "oa/fail:500:99"}, {"model": "an/ok"}]}]
    cfg = config(tmp_path, server, ["fail:500:99", "ok"], routes=routes)
    (resp,) = generate(cfg, req("r"))
    assert resp.provider_id == "an" and resp.generated_content == "echo: hello there"
    assert server.calls["fail:500:99"] == 3  # first attempt + max_retries=2
    assert [a.provider_id for a in resp.attempts] == ["oa", "oa", "oa", "an"]


def test_slow_response_times_out(tmp_path: Path, server: FakeLLMServer) -> None:
    cfg = config(
        tmp_path, server, ["slow:600"], settings={"timeout_seconds": 0.2, "max_retries": 1}
    )
    (err,) = generate(cfg, req("oa/slow:600"))
    assert isinstance(err, AllTargetsFailedError)
    assert err.failures[0].attempts == 2 and "no answer within 0.2s" in err.failures[0].reason


def test_slow_stream_times_out_and_falls_back(tmp_path: Path, server: FakeLLMServer) -> None:
    routes = [{"name": "r", "targets": [{"model": "an/slow:600"}, {"model": "oa/fast"}]}]
    cfg = config(
        tmp_path,
        server,
        ["slow:600", "fast"],
        routes=routes,
        settings={"timeout_seconds": 0.2, "max_retries": 0},
    )
    chunks, response, error = stream(cfg, req("r", "quick"))
    assert error is None and "".join(chunks) == "echo: quick"
    assert response.attempts[0].outcome == "ProviderTimeoutError"


def test_malformed_json_is_not_retried(tmp_path: Path, server: FakeLLMServer) -> None:
    cfg = config(tmp_path, server, ["malformed"])
    (err,) = generate(cfg, req("oa/malformed"))
    assert isinstance(err, AllTargetsFailedError) and "not JSON" in err.failures[0].reason
    assert server.calls["malformed"] == 1


def test_bad_request_is_neither_retried_nor_rerouted(tmp_path: Path, server: FakeLLMServer) -> None:
    routes = [{"name": "r", "targets": [{"model": "an/fail:400:99"}, {"model": "oa/ok"}]}]
    cfg = config(tmp_path, server, ["fail:400:99", "ok"], routes=routes)
    (bad,) = generate(cfg, req("r"))
    assert isinstance(bad, BadRequestError) and bad.status == 400 and "scripted failure" in str(bad)
    assert server.calls["fail:400:99"] == 1 and server.calls["ok"] == 0


def test_wrong_key_is_an_authentication_failure_without_leaking_it(
    tmp_path: Path, server: FakeLLMServer
) -> None:
    server.required_key = "the-right-key"
    cfg = config(tmp_path, server, ["gpt-4o"])
    (err,) = generate(cfg, req("oa/gpt-4o"))
    assert isinstance(err, AllTargetsFailedError)
    assert "HTTP 401" in str(err) and KEY not in str(err)
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", ["oa", "an"])
def test_streaming(tmp_path: Path, server: FakeLLMServer, provider: str) -> None:
    cfg = config(tmp_path, server, ["gpt-4o"])
    chunks, response, error = stream(cfg, req(f"{provider}/gpt-4o", "one two three four"))
    assert error is None
    assert "".join(chunks) == "echo: one two three four" and len(chunks) == 5
    assert response.generated_content == "echo: one two three four"
    assert response.usage.completion_tokens == 5 and response.usage.prompt_tokens == 4
    assert server.requests[0][2]["stream"] is True


@pytest.mark.parametrize("provider", ["oa", "an"])
def test_stream_falls_back_only_before_first_chunk(
    tmp_path: Path, server: FakeLLMServer, provider: str
) -> None:
    other = "an" if provider == "oa" else "oa"
    routes = [
        {
            "name": "early",
            "targets": [{"model": f"{provider}/fail:503:99"}, {"model": f"{other}/ok"}],
        },
        {"name": "late", "targets": [{"model": f"{provider}/break"}, {"model": f"{other}/ok"}]},
    ]
    cfg = config(
        tmp_path, server, ["fail:503:99", "ok", "break"], routes=routes, settings={"max_retries": 0}
    )
    chunks, response, error = stream(cfg, req("early", "a b c"))
    assert error is None and "".join(chunks) == "echo: a b c"
    assert response.provider_id == other
    assert [a.outcome for a in response.attempts] == ["ProviderUnavailableError", "ok"]

    chunks, response, error = stream(cfg, req("late", "a b c"))
    assert isinstance(error, ProviderResponseError) and "stream error" in str(error)
    assert chunks == ["echo: ", "a "] and response is None
    assert server.calls["ok"] == 1  # no fallback after the first chunk


def test_malformed_stream_event(tmp_path: Path, server: FakeLLMServer) -> None:
    cfg = config(tmp_path, server, ["malformed"], settings={"max_retries": 0})
    chunks, _response, error = stream(cfg, req("oa/malformed"))
    assert isinstance(error, AllTargetsFailedError) and "not JSON" in str(error)
    assert chunks == []


def test_concurrent_requests_share_one_pooled_client(tmp_path: Path, server: FakeLLMServer) -> None:
    cfg = config(tmp_path, server, ["gpt-4o"])

    async def main() -> tuple[list[str], int]:
        async with LLMGatewayClient(cfg) as client:
            results = await asyncio.gather(
                *[client.generate(req("oa/gpt-4o", f"n{i}")) for i in range(40)]
            )
            provider = client._gen.providers["oa"]
            clients = {id(provider.client)}  # type: ignore[attr-defined]
            return [r.generated_content for r in results], len(clients)

    texts, n_clients = asyncio.run(main())
    assert texts == [f"echo: n{i}" for i in range(40)] and n_clients == 1
