"""The ``openai`` SDK through ``gwconfig serve`` to an ``anthropic``-type model: tools, tool
results, images, system and developer messages, stop reasons and cache usage are translated
both ways (what the Messages upstream received is recorded and checked exactly); what cannot
be translated is a 400 naming the field and the provider, and the upstream is not called."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from anthropic_serving import WEATHER, WEATHER_TOOL, sent, served
from runtime_servers import FakeLLMServer
from tool_answers import TOOL_INPUT

PNG = "iVBORw0KGgo="


@pytest.fixture
def client(
    sqlite_url: str,
    module_server: FakeLLMServer,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[openai.OpenAI]:
    with served(sqlite_url, module_server, fernet_key, monkeypatch, tmp_path) as (_app, c):
        yield c


def test_a_tool_call_round_trip_is_translated_both_ways(
    client: openai.OpenAI, module_server: FakeLLMServer
) -> None:
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    first = client.chat.completions.create(
        model="claude/sonnet", messages=messages, tools=[WEATHER], parallel_tool_calls=False,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_completion_tokens=50,
    )  # fmt: skip
    body = sent(module_server)
    assert module_server.requests[-1][0] == "/v1/messages"
    assert body["tools"] == [WEATHER_TOOL] and body["max_tokens"] == 50
    assert body["tool_choice"] == {
        "type": "tool", "name": "get_weather", "disable_parallel_tool_use": True
    }  # fmt: skip
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.type, call.function.name) == ("toolu_1", "function", "get_weather")
    assert json.loads(call.function.arguments) == TOOL_INPUT
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(
        model="claude/sonnet", messages=messages, tools=[WEATHER]
    )
    assert second.choices[0].message.content == "tool said: sunny"
    assert second.choices[0].finish_reason == "stop"
    assert sent(module_server)["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": TOOL_INPUT},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        ]},
    ]  # fmt: skip


def test_streamed_tool_calls_are_assembled_by_the_sdk(
    client: openai.OpenAI, module_server: FakeLLMServer
) -> None:
    with client.chat.completions.stream(
        model="claude/sonnet",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        tool_choice="required",
        stream_options={"include_usage": True},
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    message = final.choices[0].message
    call = message.tool_calls[0]  # type: ignore[index]
    assert call.id == "toolu_1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == TOOL_INPUT
    assert not message.content  # the thinking block is not text
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.completion_tokens == 9
    body = sent(module_server)
    assert body["stream"] is True and body["tool_choice"] == {"type": "any"}


def test_images_become_base64_and_url_sources(
    client: openai.OpenAI, module_server: FakeLLMServer
) -> None:
    parts: Any = [
        {"type": "text", "text": "what are these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://images.test/cat.jpg"}},
    ]
    answer = client.chat.completions.create(
        model="claude/sonnet", messages=[{"role": "user", "content": parts}]
    )
    assert answer.choices[0].message.content
    assert sent(module_server)["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "what are these?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://images.test/cat.jpg"}},
        ]},
    ]  # fmt: skip


def test_system_and_developer_messages_become_the_system_prompt(
    client: openai.OpenAI, module_server: FakeLLMServer
) -> None:
    client.chat.completions.create(
        model="claude/sonnet",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "hello"},
        ],
        stop=["END"], temperature=0.5, user="u-7",
    )  # fmt: skip
    body = sent(module_server)
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 0.5
    assert body["metadata"] == {"user_id": "u-7"}


@pytest.mark.parametrize(
    ("model", "finish"),
    [("sonnet", "stop"), ("stop:max_tokens", "length"), ("stop:refusal", "content_filter"),
     ("stop:stop_sequence", "stop")],
)  # fmt: skip
def test_stop_reasons_become_finish_reasons_plain_and_streamed(
    client: openai.OpenAI, model: str, finish: str
) -> None:
    msg: Any = [{"role": "user", "content": "hi"}]
    plain = client.chat.completions.create(model=f"claude/{model}", messages=msg)
    assert plain.choices[0].finish_reason == finish
    chunks = list(
        client.chat.completions.create(model=f"claude/{model}", messages=msg, stream=True)
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == finish


def test_usage_counts_cache_reads_as_cached_prompt_tokens(client: openai.OpenAI) -> None:
    msg: Any = [{"role": "user", "content": "one two"}]
    plain = client.chat.completions.create(model="claude/cache", messages=msg)
    streamed = list(
        client.chat.completions.create(
            model="claude/cache", messages=msg, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    for usage in (plain.usage, streamed[-1].usage):
        assert usage is not None
        # 2 uncached input tokens, 7 read from the cache, 3 written to it
        assert usage.prompt_tokens == 12
        assert usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 7
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_thinking_is_not_text(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="claude/think", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo: hi"


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3, "logprobs": False}, "top_logprobs"),
    ({"seed": 7}, "seed"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"extra_body": {"next_years_parameter": True}}, "next_years_parameter"),
    ({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA",
                                  "filename": "a.pdf"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
]  # fmt: skip


def test_what_cannot_be_translated_is_a_400_and_the_upstream_is_not_called(
    client: openai.OpenAI, module_server: FakeLLMServer
) -> None:
    """Every case against one served gateway (a gateway each would cost more than the case)."""
    for kwargs, name in REFUSED:
        args: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], **kwargs}
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(model="claude/bare", **args)
        assert exc.value.code == "unsupported_parameter", kwargs
        assert f"'{name}' cannot be sent to provider type 'anthropic'" in exc.value.message, name
    assert module_server.requests == []


def test_the_same_conversation_through_openai_and_anthropic_models_gets_the_same_tool_calls(
    client: openai.OpenAI,
) -> None:
    """The differential test of the translation: plain and streamed, first and second turn."""
    question: Any = [{"role": "user", "content": "weather in Paris?"}]

    def plain(model: str) -> tuple[Any, Any]:
        first = client.chat.completions.create(model=model, messages=question, tools=[WEATHER])
        choice = first.choices[0]
        calls = [(c.function.name, json.loads(c.function.arguments))
                 for c in choice.message.tool_calls or ()]  # fmt: skip
        call_id = choice.message.tool_calls[0].id  # type: ignore[index]
        history = [*question, choice.message.model_dump(exclude_none=True),
                   {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]  # fmt: skip
        second = client.chat.completions.create(model=model, messages=history, tools=[WEATHER])
        then = (second.choices[0].message.content, second.choices[0].finish_reason)
        return (calls, choice.finish_reason), then

    def streamed(model: str) -> Any:
        with client.chat.completions.stream(
            model=model, messages=question, tools=[WEATHER]
        ) as stream:
            final = stream.get_final_completion()
        choice = final.choices[0]
        calls = [(c.function.name, json.loads(c.function.arguments))
                 for c in choice.message.tool_calls or ()]  # fmt: skip
        return calls, choice.finish_reason

    openai_side, anthropic_side = plain("up/gpt-tools"), plain("claude/sonnet")
    assert openai_side == anthropic_side
    assert openai_side[0] == ([("get_weather", TOOL_INPUT)], "tool_calls")
    assert openai_side[1] == ("tool said: sunny", "stop")
    assert streamed("up/gpt-tools") == streamed("claude/sonnet") == openai_side[0]


class Weather(BaseModel):
    city: str


def test_a_json_schema_answer_is_parsed_by_the_sdk_plain_and_streamed(
    client: openai.OpenAI, module_server: FakeLLMServer
) -> None:
    msg: Any = [{"role": "user", "content": "where is it sunny?"}]
    plain = client.chat.completions.parse(
        model="claude/sonnet", messages=msg, response_format=Weather
    )
    body = sent(module_server)
    assert [t["name"] for t in body["tools"]] == ["Weather"]
    assert body["tool_choice"] == {"type": "tool", "name": "Weather"}
    with client.chat.completions.stream(
        model="claude/sonnet", messages=msg, response_format=Weather
    ) as stream:
        streamed = stream.get_final_completion()
    for answer in (plain, streamed):
        choice = answer.choices[0]
        assert choice.message.parsed == Weather(city="Paris")
        assert choice.finish_reason == "stop" and not choice.message.tool_calls
