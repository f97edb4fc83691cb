"""What an OpenAI client sends passes ``gwconfig serve`` as sent: tools and tool results,
content parts, ``n``, logprobs and fields the gateway does not know reach an OpenAI-shaped
upstream unchanged (only ``model`` rewritten), and its answer comes back whole; a provider that
cannot carry a field, or a model without a needed capability, is a 400 that names it."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from builders import write_manifests
from gwconfig.db.session import open_database
from gwconfig.runtime import (
    ConfigLoader,
    LLMConfig,
    LLMGatewayClient,
    LLMRequest,
    ProviderFactory,
    UnsupportedParameterError,
)
from gwconfig.server.state import ServeSettings
from reconcile_helpers import apply
from runtime_servers import FAST, FakeLLMServer
from serve_helpers import ServedApp, make_token, serve_app

WEATHER = {
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


def docs(upstream: FakeLLMServer) -> list[dict[str, Any]]:
    base = upstream.base_url + "/v1"
    key = [{"name": "default", "value": {"env": "UP_KEY"}}]
    settings = {**FAST, "max_retries": 0}
    return [
        {
            "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "up",
            "provider_type": "openai", "connection": {"api_base": base}, "api_keys": key,
            "request_settings": settings,
            "models": [
                {"model_id": "gpt-tools", "capabilities": ["chat", "function_calling", "vision"]},
                {"model_id": "gpt-text", "capabilities": ["chat"]},
                {"model_id": "embed-small", "model_type": "embedding"},
            ],
        },
        {
            "apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": "claude",
            "provider_type": "anthropic", "connection": {"api_base": upstream.base_url},
            "api_keys": key, "request_settings": settings,
            "models": [{"model_id": "sonnet"}, {"model_id": "voyage", "model_type": "embedding"}],
        },
        {
            "apiVersion": "gwconfig/v1", "kind": "Gateway",
            "routes": [
                {"name": "agents",
                 "targets": [{"model": "up/gpt-text"}, {"model": "up/gpt-tools"}]},
                {"name": "text", "targets": [{"model": "up/gpt-text"}]},
            ],
        },
    ]  # fmt: skip


@pytest.fixture
def served(
    sqlite_url: str,
    module_server: FakeLLMServer,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[tuple[ServedApp, openai.OpenAI]]:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("UP_KEY", "sk-up-" + secrets.token_urlsafe(24))
    monkeypatch.chdir(tmp_path)
    open_database(sqlite_url, upgrade=True).dispose()
    apply(write_manifests(tmp_path / "m", *docs(module_server)), sqlite_url)
    token = make_token(sqlite_url, "invoke", name="app")
    module_server.reset()
    with serve_app(ServeSettings(database_url=sqlite_url)) as app:
        client = openai.OpenAI(base_url=app.base_url + "/v1", api_key=token, max_retries=0)
        yield app, client
        client.close()


def test_a_tool_call_round_trip_reaches_the_upstream_as_sent(
    served: tuple[ServedApp, openai.OpenAI], module_server: FakeLLMServer
) -> None:
    _, client = served
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    first = client.chat.completions.create(
        model="agents", messages=messages, tools=[WEATHER], tool_choice="auto",
        parallel_tool_calls=False, max_completion_tokens=50, reasoning_effort="low",
        extra_body={"next_years_parameter": {"depth": 2}},
    )  # fmt: skip
    # the route skipped up/gpt-text (no function_calling)
    _, _, sent = module_server.requests[-1]
    assert sent["model"] == "gpt-tools"
    assert sent["tools"] == [WEATHER] and sent["tool_choice"] == "auto"
    assert sent["parallel_tool_calls"] is False and sent["reasoning_effort"] == "low"
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    assert sent["next_years_parameter"] == {"depth": 2}
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Paris"
    }
    assert first.system_fingerprint == "fp_test"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model="agents", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "tool said: sunny"
    _, _, sent = module_server.requests[-1]
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_images_n_and_logprobs_pass_through(
    served: tuple[ServedApp, openai.OpenAI], module_server: FakeLLMServer
) -> None:
    _, client = served
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    answer = client.chat.completions.create(
        model="up/gpt-tools",
        messages=[{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}],
        tools=[WEATHER], n=2, logprobs=True, top_logprobs=2,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    )  # fmt: skip
    assert [c.index for c in answer.choices] == [0, 1]
    assert answer.choices[0].logprobs is not None
    _, _, sent = module_server.requests[-1]
    assert sent["messages"][0]["content"][1] == image
    assert sent["n"] == 2 and sent["top_logprobs"] == 2
    assert sent["response_format"]["type"] == "json_schema"


def test_a_model_without_the_capability_is_a_400_naming_it(
    served: tuple[ServedApp, openai.OpenAI], module_server: FakeLLMServer
) -> None:
    _, client = served
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(
            model="text", messages=[{"role": "user", "content": "x"}], tools=[WEATHER]
        )
    assert "function_calling" in exc.value.message
    assert module_server.requests == []


def test_what_anthropic_cannot_carry_is_a_400_naming_field_and_provider(
    served: tuple[ServedApp, openai.OpenAI], module_server: FakeLLMServer
) -> None:
    _, client = served
    for kwargs in ({"n": 2}, {"logprobs": True}, {"seed": 7}):
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(
                model="claude/sonnet",
                messages=[{"role": "user", "content": "x"}],
                **kwargs,  # type: ignore[arg-type]
            )
        name = next(iter(kwargs))
        assert f"'{name}'" in exc.value.message and "anthropic" in exc.value.message
        assert exc.value.code == "unsupported_parameter"
    assert module_server.requests == []
    plain = client.chat.completions.create(
        model="claude/sonnet", messages=[{"role": "user", "content": "hello"}]
    )
    assert plain.choices[0].message.content


def test_the_python_runtime_offers_tools_and_returns_tool_calls(
    served: tuple[ServedApp, openai.OpenAI], module_server: FakeLLMServer, sqlite_url: str
) -> None:
    async def main() -> tuple[Any, str]:
        config = ConfigLoader(sqlite_url).load_config_as_object()
        async with LLMGatewayClient(config, ProviderFactory()) as client:
            request = LLMRequest(
                [{"role": "user", "content": "weather?"}],
                LLMConfig(model_identifier="agents"),
                tools=[WEATHER],
                tool_choice="auto",
            )
            response = await client.generate(request)
            try:
                await client.generate(
                    LLMRequest("x", LLMConfig(model_identifier="text"), tools=[WEATHER])
                )
            except UnsupportedParameterError as exc:
                return response, str(exc)
            return response, ""

    response, refused = asyncio.run(main())
    assert response.model_id == "gpt-tools" and response.generated_content == ""
    assert response.tool_calls[0]["function"]["name"] == "get_weather"
    assert "function_calling" in refused
    _, _, sent = module_server.requests[-1]
    assert sent["tools"] == [WEATHER] and sent["tool_choice"] == "auto"


def test_streamed_tool_calls_are_assembled_by_the_sdk(
    served: tuple[ServedApp, openai.OpenAI], module_server: FakeLLMServer
) -> None:
    _, client = served
    with client.chat.completions.stream(
        model="agents",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        stream_options={"include_usage": True},
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.id == "call_1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.total_tokens > 0
    _, _, sent = module_server.requests[-1]
    assert sent["tools"] == [WEATHER] and sent["stream"] is True


def test_langchain_bind_tools_gets_the_tool_call(
    served: tuple[ServedApp, openai.OpenAI], module_server: FakeLLMServer
) -> None:
    from langchain_openai import ChatOpenAI  # an optional test dependency, imported late

    app, client = served
    model = ChatOpenAI(
        model="agents",
        base_url=app.base_url + "/v1",
        api_key=client.api_key,  # type: ignore[arg-type]
        max_retries=0,
    ).bind_tools([WEATHER])
    answer = model.invoke("weather in Paris?")
    assert answer.tool_calls[0]["name"] == "get_weather"  # type: ignore[attr-defined]
    assert answer.tool_calls[0]["args"] == {"city": "Paris"}  # type: ignore[attr-defined]
    _, _, sent = module_server.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_embeddings_pass_through_and_chat_models_are_refused(
    served: tuple[ServedApp, openai.OpenAI], module_server: FakeLLMServer
) -> None:
    _, client = served
    result = client.embeddings.create(
        model="up/embed-small", input=["one two", "three"], dimensions=3, encoding_format="float"
    )
    assert [d.index for d in result.data] == [0, 1] and result.data[1].embedding[1] == 1.0
    assert result.model == "up/embed-small" and result.usage.prompt_tokens == 3
    path, _, sent = module_server.requests[-1]
    assert path == "/v1/embeddings"
    assert sent == {"model": "embed-small", "input": ["one two", "three"], "dimensions": 3,
                    "encoding_format": "float"}  # fmt: skip
    listed = {m.id for m in client.models.list()}
    assert "up/embed-small" in listed
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model="up/gpt-text", input="x")
    assert "model_type" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model="claude/voyage", input="x")
    assert "anthropic" in exc.value.message and "embeddings" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model="up/embed-small", input=["x"] * 3000)
    assert exc.value.param == "input"
