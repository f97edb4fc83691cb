"""Runtime resolution, keys, retries, fallbacks, cooldown and streaming on the mock provider."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gwconfig.runtime import (
    AllTargetsFailedError,
    AmbiguousModelError,
    BadRequestError,
    ConfigLoader,
    ConfigLoadError,
    GatewayConfig,
    InterventionContext,
    LLMConfig,
    LLMGatewayClient,
    LLMRequest,
    NoRouteError,
    ProviderFactory,
)
from gwconfig.runtime.providers.mock import MockProvider
from runtime_servers import FAST, generate_each, provider_doc, write_compiled


def load(tmp_path: Path, providers: list[dict[str, Any]], **kw: Any) -> GatewayConfig:
    path = write_compiled(tmp_path / "compiled.json", providers, **kw)
    return ConfigLoader(path).load_config_as_object()


def req(model: str | None, prompt: str = "hi", **kw: Any) -> LLMRequest:
    return LLMRequest(prompt, LLMConfig(model_identifier=model, **kw), InterventionContext("s-1"))


def run(config: GatewayConfig, *requests: LLMRequest, **client_kw: Any) -> list[Any]:
    return generate_each(config, *requests, factory=ProviderFactory(), **client_kw)


@pytest.fixture
def catalog(tmp_path: Path) -> GatewayConfig:
    a = provider_doc(
        "alpha",
        "mock",
        [
            {"model_id": "shared", "parameters": {"reply": "alpha-shared"}},
            {"model_id": "only-a", "parameters": {"reply": "a"}, "aliases": ["fast"]},
            {"model_id": "off", "enabled": False},
        ],
    )
    b = provider_doc(
        "beta", "mock", [{"model_id": "shared", "parameters": {"reply": "beta-shared"}}]
    )
    c = provider_doc("gamma", "mock", [{"model_id": "only-c"}], enabled=False)
    routes = [
        {"name": "main", "targets": [{"model": "gamma/only-c"}, {"model": "beta/shared"}]},
        {"name": "dead", "targets": [{"model": "alpha/off"}]},
    ]
    return load(tmp_path, [a, b, c], routes=routes, default_route="main")


def test_resolution_kinds(catalog: GatewayConfig) -> None:
    results = run(
        catalog,
        req("alpha/shared"),
        req("fast"),
        req("only-a"),
        req("main"),
        req(None),
        req("shared", provider_id="beta"),
    )
    assert [r.generated_content for r in results] == [
        "alpha-shared",
        "a",
        "a",
        "beta-shared",
        "beta-shared",
        "beta-shared",
    ]
    assert results[3].route == "main" and results[3].provider_id == "beta"
    assert results[0].session_id == "s-1"


def test_ambiguous_bare_model_lists_candidates(catalog: GatewayConfig) -> None:
    (err,) = run(catalog, req("shared"))
    assert isinstance(err, AmbiguousModelError)
    assert err.candidates == ("alpha/shared", "beta/shared")
    assert "alpha/shared, beta/shared" in str(err)


def test_disabled_and_unknown_are_never_routed(catalog: GatewayConfig) -> None:
    errs = run(catalog, req("alpha/off"), req("gamma/only-c"), req("only-c"), req("dead"), req("x"))
    assert all(isinstance(e, NoRouteError) for e in errs)
    assert "disabled" in str(errs[0]) and "disabled" in str(errs[1])
    assert "provider is disabled" in str(errs[2])
    assert "no enabled target" in str(errs[3])
    assert "no route, alias or model named 'x'" in str(errs[4])


def test_key_for_runtime_environment_and_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K_DEFAULT", "key-default")
    monkeypatch.setenv("K_PROD", "key-prod")
    keys = [
        {"name": "default", "value": {"env": "K_DEFAULT"}},
        {"name": "default", "environment": "prod", "value": {"env": "K_PROD"}},
        {
            "name": "old",
            "environment": "staging",
            "value": {"env": "K_PROD"},
            "expires_at": "2001-01-01T00:00:00Z",
        },
    ]
    doc = provider_doc("p", "mock", ["m"], api_keys=keys)
    path = write_compiled(tmp_path / "c.json", [doc])
    prod = ConfigLoader(path, environment="prod").load_config_as_object()
    dev = ConfigLoader(path, environment="dev").load_config_as_object()
    assert prod.providers["p"].api_key(0).value == "key-prod"
    assert dev.providers["p"].api_key(0).value == "key-default"
    staging = ConfigLoader(path, environment="staging").load_config_as_object()
    import time

    assert staging.providers["p"].api_key(time.time()).name == "default"  # expired key skipped
    assert "key-prod" not in repr(prod) and "key-prod" not in repr(prod.providers["p"])


def test_expired_or_missing_keys_are_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLD_KEY", "sk-old-secret")
    monkeypatch.delenv("NOPE_KEY", raising=False)
    expired = provider_doc(
        "exp",
        "mock",
        ["m"],
        api_keys=[{"value": {"env": "OLD_KEY"}, "expires_at": "2001-01-01T00:00:00Z"}],
    )
    missing = provider_doc("miss", "mock", ["m"], api_keys=[{"value": {"env": "NOPE_KEY"}}])
    cfg = load(tmp_path, [expired, missing])
    e1, e2 = run(cfg, req("exp/m"), req("miss/m"))
    assert isinstance(e1, AllTargetsFailedError) and "expired" in str(e1)
    assert isinstance(e2, AllTargetsFailedError) and "NOPE_KEY is not set" in str(e2)
    assert "sk-old-secret" not in str(e1)


def test_retry_then_fallback_with_attempts(tmp_path: Path) -> None:
    settings = {**FAST, "max_retries": 1}
    p = provider_doc(
        "p",
        "mock",
        [
            {"model_id": "flaky", "parameters": {"fail_times": 1, "reply": "recovered"}},
            {"model_id": "dead", "parameters": {"fail_times": 99}},
            {"model_id": "ok", "parameters": {"reply": "fallback"}},
        ],
        request_settings=settings,
    )
    routes = [{"name": "r", "targets": [{"model": "p/dead"}, {"model": "p/ok"}]}]
    cfg = load(tmp_path, [p], routes=routes)
    flaky, fell = run(cfg, req("p/flaky"), req("r"))
    assert flaky.generated_content == "recovered"
    assert [a.outcome for a in flaky.attempts] == ["ProviderUnavailableError", "ok"]
    assert fell.generated_content == "fallback" and fell.model_id == "ok"
    assert [(a.model_id, a.outcome) for a in fell.attempts] == [
        ("dead", "ProviderUnavailableError"),
        ("dead", "ProviderUnavailableError"),
        ("ok", "ok"),
    ]
    assert fell.usage.total_tokens == fell.usage.prompt_tokens + fell.usage.completion_tokens > 0


def test_all_targets_failed_lists_each_reason(tmp_path: Path) -> None:
    p = provider_doc(
        "p",
        "mock",
        [
            {"model_id": "a", "parameters": {"fail_times": 9}},
            {"model_id": "b", "parameters": {"fail_times": 9, "fail_status": 401}},
        ],
        request_settings={**FAST, "max_retries": 2},
    )
    cfg = load(
        tmp_path, [p], routes=[{"name": "r", "targets": [{"model": "p/a"}, {"model": "p/b"}]}]
    )
    (err,) = run(cfg, req("r"))
    assert isinstance(err, AllTargetsFailedError)
    assert [(f.target, f.attempts) for f in err.failures] == [("p/a", 3), ("p/b", 1)]
    assert "HTTP 503" in err.failures[0].reason and "HTTP 401" in err.failures[1].reason


def test_bad_request_is_not_retried_or_rerouted(tmp_path: Path) -> None:
    p = provider_doc(
        "p",
        "mock",
        [{"model_id": "bad", "parameters": {"fail_times": 9, "fail_status": 400}}, "ok"],
        request_settings=FAST,
    )
    cfg = load(
        tmp_path, [p], routes=[{"name": "r", "targets": [{"model": "p/bad"}, {"model": "p/ok"}]}]
    )
    (err,) = run(cfg, req("r"))
    assert isinstance(err, BadRequestError) and err.status == 400


def test_retry_after_is_a_floor_for_backoff(tmp_path: Path) -> None:
    p = provider_doc(
        "p",
        "mock",
        [
            {
                "model_id": "m",
                "parameters": {"fail_times": 2, "fail_status": 429, "retry_after": 0.5},
            }
        ],
        request_settings={**FAST, "backoff_max_seconds": 1.0, "max_retries": 3},
    )
    cfg = load(tmp_path, [p])
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    (resp,) = run(cfg, req("p/m"), sleep=fake_sleep)
    assert resp.generated_content and len(resp.attempts) == 3
    assert slept == [0.5, 0.5]


def test_cooldown_skips_a_failing_target(tmp_path: Path) -> None:
    p = provider_doc(
        "p",
        "mock",
        [
            {"model_id": "bad", "parameters": {"fail_times": 999}},
            {"model_id": "good", "parameters": {"reply": "ok"}},
        ],
        request_settings={**FAST, "max_retries": 0, "cooldown_failures": 2, "cooldown_seconds": 60},
    )
    cfg = load(
        tmp_path, [p], routes=[{"name": "r", "targets": [{"model": "p/bad"}, {"model": "p/good"}]}]
    )

    async def main() -> tuple[list[int], list[str]]:
        async with LLMGatewayClient(cfg) as client:
            counts = [len((await client.generate(req("r"))).attempts) for _ in range(4)]
            return counts, client.cooling_targets()

    counts, cooling = asyncio.run(main())
    assert counts == [2, 2, 1, 1]  # after 2 failures p/bad is skipped
    assert cooling == ["p/bad"]


def test_weighted_route_spreads_by_weight(tmp_path: Path) -> None:
    p = provider_doc(
        "p",
        "mock",
        [
            {"model_id": "a", "parameters": {"reply": "a"}},
            {"model_id": "b", "parameters": {"reply": "b"}},
        ],
    )
    routes = [
        {
            "name": "w",
            "strategy": "weighted",
            "targets": [{"model": "p/a", "weight": 3}, {"model": "p/b", "weight": 1}],
        }
    ]
    cfg = load(tmp_path, [p], routes=routes)
    results = run(cfg, *[req("w") for _ in range(400)], rng=random.Random(7))
    counts = Counter(r.generated_content for r in results)
    assert 250 < counts["a"] < 350 and counts["a"] + counts["b"] == 400


def test_route_fallbacks_follow_other_routes(tmp_path: Path) -> None:
    p = provider_doc(
        "p",
        "mock",
        [
            {"model_id": "down", "parameters": {"fail_times": 99}},
            {"model_id": "up", "parameters": {"reply": "up"}},
        ],
        request_settings={**FAST, "max_retries": 0},
    )
    routes = [
        {"name": "primary", "targets": [{"model": "p/down"}], "fallbacks": ["backup"]},
        {"name": "backup", "targets": [{"model": "p/up"}], "fallbacks": ["primary"]},
    ]
    (resp,) = run(load(tmp_path, [p], routes=routes), req("primary"))
    assert resp.generated_content == "up" and resp.route == "primary"


def test_streaming_on_mock_with_fallback_before_first_chunk(tmp_path: Path) -> None:
    p = provider_doc(
        "p",
        "mock",
        [
            {"model_id": "down", "parameters": {"fail_times": 99}},
            {"model_id": "up", "parameters": {"reply": "one two three", "chunk_size": 1}},
        ],
        request_settings={**FAST, "max_retries": 0},
    )
    cfg = load(
        tmp_path, [p], routes=[{"name": "r", "targets": [{"model": "p/down"}, {"model": "p/up"}]}]
    )

    async def main() -> tuple[list[str], Any]:
        async with LLMGatewayClient(cfg) as client:
            stream = client.generate_stream(req("r"))
            chunks = [c async for c in stream]
            return chunks, stream.response

    chunks, response = asyncio.run(main())
    assert chunks == ["one ", "two ", "three"]
    assert response.generated_content == "one two three" and response.model_id == "up"
    assert [a.outcome for a in response.attempts] == ["ProviderUnavailableError", "ok"]


def test_factory_registration_and_unknown_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Shouty(MockProvider):
        provider_type = "shouty"

        def _reply(self, params: Any, call: Any) -> str:
            return call.prompt_text().upper()

    cfg = load(tmp_path, [provider_doc("s", "shouty", ["m"]), provider_doc("u", "unknown", ["m"])])
    factory = ProviderFactory(use_entry_points=False)
    factory.register("shouty", Shouty)

    async def main() -> tuple[Any, Exception]:
        async with LLMGatewayClient(cfg, factory) as client:
            ok = await client.generate(req("s/m", "hello"))
            with pytest.raises(ConfigLoadError) as info:
                await client.generate(req("u/m"))
            return ok, info.value

    ok, err = asyncio.run(main())
    assert ok.generated_content == "HELLO"
    assert "no provider implementation for provider_type 'unknown'" in str(err)
    assert err.hint and "gwconfig.providers" in err.hint


def test_factory_loads_entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import gwconfig.runtime.factory as factory_mod

    ep = EntryPoint("echo", "gwconfig.runtime.providers.mock:MockProvider", "gwconfig.providers")
    monkeypatch.setattr(
        factory_mod, "entry_points", lambda group: [ep] if group == "gwconfig.providers" else []
    )
    factory = ProviderFactory()
    assert "echo" in factory.provider_types()
    assert factory.provider_class("echo") is MockProvider


def test_gateway_config_is_immutable(catalog: GatewayConfig) -> None:
    with pytest.raises(AttributeError):
        catalog.default_route = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        catalog.providers["alpha"] = catalog.providers["beta"]  # type: ignore[index]
    with pytest.raises(TypeError):
        catalog.providers["alpha"].models["shared"].parameters["reply"] = "x"  # type: ignore[index]


def test_rate_limit_rpm_moves_on_to_the_next_target(tmp_path: Path) -> None:
    limited = provider_doc(
        "limited",
        "mock",
        [{"model_id": "m", "parameters": {"reply": "limited"}}],
        request_settings={**FAST, "rate_limit_rpm": 2},
    )
    spare = provider_doc("spare", "mock", [{"model_id": "m", "parameters": {"reply": "spare"}}])
    routes = [{"name": "r", "targets": [{"model": "limited/m"}, {"model": "spare/m"}]}]
    cfg = load(tmp_path, [limited, spare], routes=routes)
    results = run(cfg, req("r"), req("r"), req("r"), req("limited/m"))
    assert [getattr(r, "generated_content", None) for r in results[:3]] == [
        "limited",
        "limited",
        "spare",
    ]
    assert isinstance(results[3], AllTargetsFailedError)
    assert "rate limit of 2 requests/minute reached" in str(results[3])


def test_rate_limit_tpm_counts_the_tokens_used_and_moves_on(tmp_path: Path) -> None:
    limited = provider_doc(
        "limited",
        "mock",
        [{"model_id": "m", "parameters": {"reply": "one two three four five"}}],
        request_settings={**FAST, "rate_limit_tpm": 12},
    )
    spare = provider_doc("spare", "mock", [{"model_id": "m", "parameters": {"reply": "spare"}}])
    routes = [{"name": "r", "targets": [{"model": "limited/m"}, {"model": "spare/m"}]}]
    cfg = load(tmp_path, [limited, spare], routes=routes)
    # each answer from "limited" uses 1 prompt + 5 completion tokens: two fill the 12-token minute
    results = run(cfg, req("r"), req("r"), req("r"), req("limited/m"))
    assert [r.provider_id for r in results[:3]] == ["limited", "limited", "spare"]
    assert [r.usage.total_tokens for r in results[:2]] == [6, 6]
    assert isinstance(results[3], AllTargetsFailedError)
    assert "rate limit of 12 tokens/minute reached" in str(results[3])


def test_rate_limit_tpm_counts_streamed_answers(tmp_path: Path) -> None:
    limited = provider_doc(
        "limited",
        "mock",
        [{"model_id": "m", "parameters": {"reply": "one two three four five"}}],
        request_settings={**FAST, "rate_limit_tpm": 6},
    )
    cfg = load(tmp_path, [limited])

    async def main() -> tuple[str, Exception]:
        async with LLMGatewayClient(cfg) as client:
            stream = client.generate_stream(req("limited/m"))
            text = "".join([chunk async for chunk in stream])
            with pytest.raises(AllTargetsFailedError) as info:
                await client.generate(req("limited/m"))
            return text, info.value

    text, err = asyncio.run(main())
    assert text == "one two three four five"
    assert "rate limit of 6 tokens/minute reached" in str(err)
