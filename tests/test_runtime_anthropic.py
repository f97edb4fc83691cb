"""The ``anthropic`` provider in the Python runtime, against the loopback Messages upstream:
tool calls for ``LLMRequest(tools=...)`` (plain and streamed), and the native path of a
Messages client (``wire`` in the ANTHROPIC API): its body sent as sent with only ``model``
rewritten, the answer and every streamed event back as they came, with the neutral fields."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from anthropic_serving import WEATHER, WEATHER_TOOL, docs, sent
from gwconfig.runtime import ConfigLoader, GatewayConfig, LLMConfig, LLMGatewayClient, LLMRequest
from gwconfig.runtime.messages import ANTHROPIC, WireBody
from gwconfig.runtime.providers.anthropic import AnthropicProvider
from gwconfig.runtime.providers.base import ProviderCall, StreamChunk
from runtime_servers import FakeLLMServer, write_compiled
from tool_answers import TOOL_INPUT

KEY = "sk-ant-test-0123456789abcdef"


@pytest.fixture
def config(
    tmp_path: Path, module_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> GatewayConfig:
    monkeypatch.setenv("UP_KEY", KEY)
    module_server.reset()
    path = write_compiled(tmp_path / "c.json", docs(module_server))
    return ConfigLoader(path).load_config_as_object()


def test_the_runtime_gets_tool_calls_from_an_anthropic_model(
    config: GatewayConfig, module_server: FakeLLMServer
) -> None:
    def request() -> LLMRequest:
        return LLMRequest(
            [{"role": "user", "content": "weather?"}],
            LLMConfig(model_identifier="claude/sonnet"),
            tools=[WEATHER],
            tool_choice="auto",
        )

    async def main() -> tuple[Any, list[StreamChunk], Any]:
        async with LLMGatewayClient(config) as client:
            plain = await client.generate(request())
            stream = client.generate_stream(request())
            chunks = [c async for c in stream.events()]
            return plain, chunks, stream.response

    plain, chunks, streamed = asyncio.run(main())
    assert plain.generated_content == "" and plain.finish_reason == "tool_calls"
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in plain.tool_calls] == [("toolu_1", "get_weather", TOOL_INPUT)]  # fmt: skip
    body = sent(module_server)
    assert body["tools"] == [WEATHER_TOOL] and body["tool_choice"] == {"type": "auto"}
    deltas = [d for c in chunks for d in c.tool_calls]
    assert deltas[0] == {"index": 0, "id": "toolu_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert json.loads(arguments) == TOOL_INPUT and {d["index"] for d in deltas} == {0}
    assert "".join(c.text for c in chunks) == ""  # the thinking block is not text
    assert streamed is not None and streamed.finish_reason == "tool_calls"
    assert streamed.usage.completion_tokens == 9


def _call(config: GatewayConfig, body: dict[str, Any], model: str = "sonnet") -> ProviderCall:
    pc = config.providers["claude"]
    return ProviderCall(pc.models[model], [], KEY, wire=WireBody(ANTHROPIC, body))


def test_a_messages_client_is_answered_natively(
    config: GatewayConfig, module_server: FakeLLMServer
) -> None:
    body = {"model": "my-alias", "messages": [{"role": "user", "content": "hello there"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024}}  # fmt: skip

    async def main() -> Any:
        provider = AnthropicProvider(config.providers["claude"])
        try:
            return await provider.complete(_call(config, body, "cache"))
        finally:
            await provider.aclose()

    result = asyncio.run(main())
    assert sent(module_server) == {**body, "model": "cache", "max_tokens": 4096}
    assert module_server.requests[-1][1]["x-api-key"] == KEY
    assert result.wire is not None and result.wire.api == ANTHROPIC
    assert result.wire.body["content"] == [{"type": "text", "text": "echo: hello there"}]
    assert result.wire.body["usage"]["cache_read_input_tokens"] == 7
    assert result.text == "echo: hello there" and result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.cached_tokens) == (12, 7)


@pytest.mark.parametrize("tools", [False, True])
def test_a_messages_client_gets_every_streamed_event_as_it_came(
    config: GatewayConfig, module_server: FakeLLMServer, tools: bool
) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 64,
                            "messages": [{"role": "user", "content": "one two three"}]}  # fmt: skip
    if tools:
        body["tools"] = [WEATHER_TOOL]
    request = LLMRequest([], LLMConfig(model_identifier="claude/sonnet"))
    request.wire = WireBody(ANTHROPIC, body)

    async def main() -> tuple[list[StreamChunk], Any]:
        async with LLMGatewayClient(config) as client:
            stream = client.generate_stream(request)
            return [c async for c in stream.events()], stream.response

    chunks, response = asyncio.run(main())
    assert sent(module_server) == {**body, "model": "sonnet", "stream": True}
    assert all(c.api == ANTHROPIC and c.native for c in chunks)
    events = []
    for c in chunks:
        assert c.native is not None
        name, data = c.native.decode().removesuffix("\n\n").split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(event["type"])
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]
    assert response is not None and response.usage.prompt_tokens > 0
    if tools:
        assert "input_json_delta" in b"".join(c.native or b"" for c in chunks).decode()
        arguments = "".join(d["function"].get("arguments", "") for c in chunks
                            for d in c.tool_calls)  # fmt: skip
        assert json.loads(arguments) == TOOL_INPUT and response.finish_reason == "tool_calls"
    else:
        assert "ping" in events
        assert "".join(c.text for c in chunks) == "echo: one two three"
        assert response.finish_reason == "stop"
