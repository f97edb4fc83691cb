"""The ``anthropic`` package against ``gwconfig serve`` in front of an OpenAI-shaped model: the
Messages request reaches the upstream translated to chat completions (checked exactly), and
the answer comes back as a Messages ``message`` (plain and streamed, tools, images)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from messages_helpers import PNG, WEATHER_FUNCTION, WEATHER_TOOL, Served


def test_a_message_is_translated_for_an_openai_model_and_answered_as_a_message(
    served: Served,
) -> None:
    client = served.anthropic()
    message = client.messages.create(
        model="up/gpt-tools", max_tokens=50, system="be brief", stop_sequences=["END"],
        metadata={"user_id": "u-1"}, extra_body={"temperature": 0.5, "top_p": 0.9},
        messages=[{"role": "user", "content": "hello"}],
    )  # fmt: skip
    path, sent = served.last()
    assert path == "/v1/chat/completions"
    assert sent == {
        "model": "gpt-tools",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ],
        "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "user": "u-1",
    }  # fmt: skip
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == "up/gpt-tools"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hello"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens == 3 and message.usage.output_tokens == 2
    assert message.usage.cache_read_input_tokens == 0


def test_a_streamed_message_has_the_sdk_event_sequence(served: Served) -> None:
    events = served.events(
        {"model": "fast-chat", "max_tokens": 50, "stream": True,
         "messages": [{"role": "user", "content": "hello there"}]}
    )  # fmt: skip
    assert [name for name, _ in events] == [
        "message_start", "ping", "content_block_start", *["content_block_delta"] * 3,
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["model"] == "fast-chat" and start["id"].startswith("msg_")
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "echo: "}
    _, sent = served.last()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    client = served.anthropic()
    with client.messages.stream(
        model="fast-chat", max_tokens=50, messages=[{"role": "user", "content": "one two"}]
    ) as stream:
        assert "".join(stream.text_stream) == "echo: one two"
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "echo: one two"
    assert final.model == "fast-chat" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3 and final.usage.input_tokens == 2


def test_a_tool_round_trip_through_an_openai_model(served: Served) -> None:
    client = served.anthropic(default_headers={"anthropic-version": "2099-01-01"})
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    first = client.messages.create(
        model="agents", max_tokens=100, messages=messages, tools=[WEATHER_TOOL],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )  # fmt: skip
    _, sent = served.last()
    # the route skipped up/gpt-text: it lacks function_calling
    assert sent == {
        "model": "gpt-tools", "messages": [{"role": "user", "content": "weather in Paris?"}],
        "max_tokens": 100, "tools": [WEATHER_FUNCTION], "tool_choice": "auto",
        "parallel_tool_calls": False,
    }  # fmt: skip
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and use.id == "call_1" and use.name == "get_weather"
    assert use.input == {"city": "Paris"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"},
        ]},
    ]  # fmt: skip
    second = client.messages.create(
        model="agents", max_tokens=100, messages=messages, tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    )  # fmt: skip
    _, sent = served.last()
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}  # fmt: skip
    assert sent["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert second.content[0].type == "text"
    assert second.content[0].text == "tool said: sunny" and second.stop_reason == "end_turn"


def test_streamed_tool_calls_become_tool_use_blocks(served: Served) -> None:
    client = served.anthropic()
    with client.messages.stream(
        model="agents", max_tokens=100, tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:  # fmt: skip
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas == ["input_json_delta"] * 3
    assert final.stop_reason == "tool_use" and len(final.content) == 1
    use = final.content[0]
    assert use.type == "tool_use" and use.name == "get_weather" and use.id == "call_1"
    assert use.input == {"city": "Paris"}


def test_images_become_image_url_parts_and_need_vision(served: Served) -> None:
    client = served.anthropic()
    content: list[Any] = [
        {"type": "text", "text": "what is it?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
    ]
    client.messages.create(
        model="up/gpt-tools", max_tokens=20, messages=[{"role": "user", "content": content}]
    )
    _, sent = served.last()
    assert sent["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ]},
    ]  # fmt: skip
    served.upstream.reset()
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(
            model="up/gpt-text", max_tokens=20, messages=[{"role": "user", "content": content}]
        )
    assert "vision" in exc.value.message
    assert exc.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert served.upstream.requests == []


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"extra_body": {"top_k": 5}}, "'top_k'"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "'thinking'"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "'tools[0]'"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "'stop_sequences'"),
        ({"extra_body": {"container": "c-1"}}, "'container'"),
    ],
)
def test_what_the_chat_format_cannot_carry_is_refused_by_name(
    served: Served, extra: dict[str, Any], named: str
) -> None:
    client = served.anthropic()
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(
            model="up/gpt-tools", max_tokens=20, messages=[{"role": "user", "content": "x"}],
            **extra,
        )  # fmt: skip
    assert named in exc.value.message and "provider type 'openai'" in exc.value.message
    assert exc.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert served.upstream.requests == []


def test_thinking_blocks_in_the_history_are_refused_for_an_openai_model(served: Served) -> None:
    client = served.anthropic()
    history: list[Any] = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                          {"type": "text", "text": "y"}]},
        {"role": "user", "content": "z"},
    ]  # fmt: skip
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model="up/gpt-tools", max_tokens=20, messages=history)
    assert "'messages[1].content[0]'" in exc.value.message and "thinking" in exc.value.message


def test_a_tool_result_marked_as_an_error_says_so_and_text_after_it_follows(served: Served) -> None:
    served.anthropic().messages.create(
        model="up/gpt-tools", max_tokens=20, tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "X"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                 "content": [{"type": "text", "text": "no such city"}]},
                {"type": "text", "text": "try Paris"}]},
        ],
    )  # fmt: skip
    _, sent = served.last()
    assert sent["messages"][2] == {
        "role": "tool", "tool_call_id": "t1", "content": "Error: no such city"
    }  # fmt: skip
    assert sent["messages"][3] == {
        "role": "user",
        "content": [{"type": "text", "text": "try Paris"}],
    }
    assert json.loads(sent["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "X"
    }
