"""The ``anthropic`` provider translates OpenAI chat requests to Messages bodies and Messages
answers back to OpenAI's vocabulary, refuses what it cannot carry (naming field and provider),
and passes a Messages client's body and answer (and each streamed event) through unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gwconfig.runtime import UnsupportedParameterError
from gwconfig.runtime.config.table import ModelConfig, model_config
from gwconfig.runtime.messages import ANTHROPIC, WireBody
from gwconfig.runtime.providers.anthropic import answer_fields, usage_of
from gwconfig.runtime.providers.base import ProviderCall
from gwconfig.runtime.providers.to_anthropic import (
    messages_body,
    translate_messages,
    translate_tool_choice,
)
from tool_answers import TOOL_INPUT

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}
WEATHER_OUT = {
    "name": "get_weather",
    "description": "The weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PNG = "iVBORw0KGgo="


def model(**extra: Any) -> ModelConfig:
    return model_config({"model_id": "claude-x", **extra})


def wire_call(body: dict[str, Any], m: ModelConfig | None = None) -> ProviderCall:
    """The call the runtime makes for an OpenAI client's ``body`` (as ``serve`` parses it)."""
    from gwconfig.server.openai.wire import parse_chat_request

    request = parse_chat_request(json.dumps({"model": "x", **body}).encode()).request
    cfg = request.config
    return ProviderCall(
        m or model(), request.messages(), "key", cfg.max_tokens, cfg.temperature,
        extra=cfg.extra_params, tools=request.tools, tool_choice=request.tool_choice,
        wire=request.wire,
    )  # fmt: skip


def test_a_whole_tool_conversation_becomes_one_messages_body() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "use tools"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "weather here and there?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url",
                 "image_url": {"url": "https://x.test/a.jpg", "detail": "auto"}},
            ]},
            {"role": "assistant", "content": "checking", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2",
             "content": [{"type": "text", "text": "snow"}]},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False,
        "stop": "END", "max_completion_tokens": 300, "temperature": 0.5, "top_p": 0.9,
        "user": "u-42", "n": 1, "logprobs": False, "stream_options": {"include_usage": True},
    }  # fmt: skip
    assert messages_body(wire_call(body), stream=True) == {
        "model": "claude-x",
        "system": "be brief\n\nuse tools",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "weather here and there?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "checking"},
                {"type": "tool_use", "id": "call_1", "name": "get_weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_weather",
                 "input": {"city": "Oslo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "snow"},
            ]},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [WEATHER_OUT],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"], "max_tokens": 300, "temperature": 0.5, "top_p": 0.9,
        "metadata": {"user_id": "u-42"}, "stream": True,
    }  # fmt: skip


def test_legacy_functions_become_tools_with_one_call_at_most() -> None:
    fn = WEATHER["function"]
    body = {"messages": [{"role": "user", "content": "hi"}], "functions": [fn],
            "function_call": {"name": "get_weather"}}  # fmt: skip
    sent = messages_body(wire_call(body), stream=False)
    assert sent["tools"] == [WEATHER_OUT]
    assert sent["tool_choice"] == {
        "type": "tool", "name": "get_weather", "disable_parallel_tool_use": True
    }  # fmt: skip
    assert "stream" not in sent and sent["max_tokens"] == 4096


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", False, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, True, None),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    assert translate_tool_choice(choice, parallel) == expected


def test_a_runtime_call_is_translated_the_same_way() -> None:
    messages = [{"role": "user", "content": "weather?"}]
    call = ProviderCall(
        model(max_tokens=1000, parameters={"top_k": 5, "temperature": 0.3}), messages, "k",
        tools=[WEATHER], tool_choice="auto", extra={"stop": ["x"]},
    )  # fmt: skip
    assert messages_body(call, stream=False) == {
        "model": "claude-x", "messages": messages, "max_tokens": 1000, "temperature": 0.3,
        "top_k": 5, "stop_sequences": ["x"], "tools": [WEATHER_OUT],
        "tool_choice": {"type": "auto"},
    }  # fmt: skip
    with pytest.raises(UnsupportedParameterError, match="'seed' cannot be sent to provider"):
        messages_body(ProviderCall(model(), messages, extra={"seed": 1}), stream=False)


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
USER = {"role": "user", "content": "x"}
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 2, "logprobs": False}, "top_logprobs"),
    ({"seed": 7}, "seed"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": -1}, "frequency_penalty"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "s"}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
     "response_format.json_schema.name"),
    ({"response_format": {"type": "json_schema",
                          "json_schema": {"name": "s", "schema": {"type": "object"}}},
      "tools": [WEATHER]}, "response_format"),
    ({"reasoning_effort": "low"}, "reasoning_effort"),
    ({"metadata": {"k": "v"}}, "metadata"),
    ({"logit_bias": {"1": 2}}, "logit_bias"),
    ({"next_years_parameter": 1}, "next_years_parameter"),
    ({"temperature": 1.5}, "temperature"),
    ({"tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools[0].type"),
    ({"messages": [{"role": "user", "name": "bob", "content": "x"}]}, "messages[0].name"),
    (
        {"messages": [USER, {"role": "assistant", "content": None,
                             "tool_calls": [CALL, {**CALL, "function": {"name": "f",
                                                                        "arguments": "{oops"}}]}]},
        "messages[1].tool_calls[1].function.arguments",
    ),
    (
        {"messages": [USER, {"role": "assistant", "content": None,
                             "tool_calls": [{**CALL, "function": {"name": "f",
                                                                  "arguments": "[1]"}}]}]},
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        {"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
        "messages[0].content[0]",
    ),
    (
        {"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA"}}]}]},
        "messages[0].content[0]",
    ),
    (
        {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA"}}]}]},
        "messages[0].content[0].image_url.url",
    ),
    (
        {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x.test/a", "detail": "high"}}]}]},
        "messages[0].content[0].image_url.detail",
    ),
    (
        {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://x.test/a.png"}}]}]},
        "messages[0].content[0].image_url.url",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "name"), REFUSED)
def test_what_cannot_be_translated_is_refused_naming_field_and_provider(
    fields: dict[str, Any], name: str
) -> None:
    body = {"messages": [USER], **fields}
    with pytest.raises(UnsupportedParameterError) as exc:
        messages_body(wire_call(body), stream=False)
    assert str(exc.value).startswith(f"'{name}' cannot be sent to provider type 'anthropic' (")


def test_values_that_ask_for_nothing_are_accepted() -> None:
    body = {"messages": [USER], "n": 1, "logprobs": False, "presence_penalty": 0,
            "response_format": {"type": "text"}, "store": False, "service_tier": "auto",
            "modalities": ["text"], "metadata": {}}  # fmt: skip
    sent = messages_body(wire_call(body), stream=False)
    assert sent == {"model": "claude-x", "messages": [USER], "max_tokens": 4096}


def test_consecutive_tool_results_merge_and_a_new_turn_starts_after_them() -> None:
    system, messages = translate_messages([
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "2"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "tool", "tool_call_id": "c", "content": "3"},
    ])  # fmt: skip
    assert system == ""
    assert [len(m["content"]) for m in messages] == [2, 2, 1]
    assert messages[0]["content"][1]["content"] == [{"type": "text", "text": "2"}]
    assert messages[1] == {"role": "assistant", "content": "ok"}


# -- answers --------------------------------------------------------------------------------------


def test_an_answer_becomes_text_tool_calls_finish_reason_and_usage() -> None:
    data = {
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Let me look. "},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": TOOL_INPUT},
            {"type": "text", "text": "Done."},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 5},
    }  # fmt: skip
    result = answer_fields(data)
    assert result.text == "Let me look. Done."
    assert result.tool_calls == (
        {"id": "toolu_9", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    )  # fmt: skip
    assert result.finish_reason == "tool_calls" and result.wire is None
    usage = result.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (115, 20, 100)


@pytest.mark.parametrize(
    ("stop", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls"), ("refusal", "content_filter"), (None, None)],
)  # fmt: skip
def test_stop_reasons(stop: str | None, finish: str | None) -> None:
    assert answer_fields({"content": [], "stop_reason": stop}).finish_reason == finish


def test_usage_without_cache_fields_and_with_nonsense() -> None:
    assert usage_of({"input_tokens": 3, "output_tokens": 4}).total_tokens == 7
    assert usage_of({"input_tokens": "3", "output_tokens": -1}).total_tokens == 0
    assert usage_of(None).total_tokens == 0


def test_a_messages_client_body_is_sent_as_sent_with_only_model_and_defaults_added() -> None:
    from gwconfig.runtime.providers.anthropic import AnthropicProvider

    provider = AnthropicProvider.__new__(AnthropicProvider)  # body() needs no connection
    sent = {"model": "alias", "messages": [USER], "thinking": {"type": "enabled"}, "top_k": 2}
    call = ProviderCall(
        model(parameters={"top_k": 9, "temperature": 0.1, "max_tokens": 777}), [],
        wire=WireBody(ANTHROPIC, sent),
    )  # fmt: skip
    assert provider.body(call, stream=True) == {
        "model": "claude-x", "messages": [USER], "thinking": {"type": "enabled"}, "top_k": 2,
        "temperature": 0.1, "max_tokens": 777, "stream": True,
    }  # fmt: skip
    assert provider.body(call, stream=False)["max_tokens"] == 777
    assert sent["model"] == "alias"  # the client's body is not changed in place
    with pytest.raises(UnsupportedParameterError, match="'n'"):
        provider.body(wire_call({"messages": [USER], "n": 3}), stream=False)


def test_a_json_schema_answer_is_asked_for_as_a_forced_tool_and_read_back_as_text() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "Weather", "schema": schema,
                                                  "strict": True}}  # fmt: skip
    sent = messages_body(wire_call({"messages": [USER], "response_format": fmt}), stream=False)
    assert sent["tools"] == [{"name": "Weather", "input_schema": schema,
                              "description": "Give the answer as this tool's input."}]  # fmt: skip
    assert sent["tool_choice"] == {"type": "tool", "name": "Weather"}
    data = {"content": [{"type": "tool_use", "id": "t", "name": "Weather", "input": TOOL_INPUT}],
            "stop_reason": "tool_use"}  # fmt: skip
    result = answer_fields(data, "Weather")
    assert json.loads(result.text) == TOOL_INPUT and result.tool_calls == ()
    assert result.finish_reason == "stop"
