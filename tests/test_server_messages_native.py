"""The ``anthropic`` package against ``gwconfig serve`` in front of an Anthropic model: the
client's body reaches the upstream as sent (only ``model`` rewritten), and the upstream's answer
and stream events come back as they came (only ``model`` rewritten)."""

from __future__ import annotations

from typing import Any

from messages_helpers import PNG, WEATHER_TOOL, Served


def test_the_body_and_the_answer_pass_through(served: Served) -> None:
    system = [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]
    message = served.anthropic().messages.create(
        model="claude/sonnet", max_tokens=64, system=system,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "hello"}], metadata={"user_id": "u-1"},
        extra_body={"top_k": 5, "next_years_field": {"depth": 2}},
    )  # fmt: skip
    path, sent = served.last()
    assert path == "/v1/messages"
    assert sent == {
        "model": "sonnet", "max_tokens": 64, "system": system,
        "messages": [{"role": "user", "content": "hello"}], "metadata": {"user_id": "u-1"},
        "top_k": 5, "next_years_field": {"depth": 2},
    }  # fmt: skip
    # the upstream's own id: its answer came back as it was, the model named as asked
    assert message.id == "msg_test" and message.model == "claude/sonnet"
    assert message.content[0].type == "text" and message.content[0].text == "echo: hello"
    assert message.stop_reason == "end_turn"


def test_tools_images_and_thinking_pass_through_as_sent(served: Served) -> None:
    messages: list[Any] = [
        {"role": "user", "content": [
            {"type": "text", "text": "weather here?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "look it up", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "sunny"}]},
        ]},
    ]  # fmt: skip
    tools: list[Any] = [WEATHER_TOOL, {"type": "web_search_20250305", "name": "web_search"}]
    thinking = {"type": "enabled", "budget_tokens": 2048}
    answer = served.anthropic().messages.create(
        model="claude/sonnet", max_tokens=4096, messages=messages, tools=tools,
        tool_choice={"type": "any"}, thinking=thinking,  # type: ignore[arg-type]
    )  # fmt: skip
    _, sent = served.last()
    assert sent == {
        "model": "sonnet", "max_tokens": 4096, "messages": messages, "tools": tools,
        "tool_choice": {"type": "any"}, "thinking": thinking,
    }  # fmt: skip
    assert answer.id == "msg_test" and answer.model == "claude/sonnet"


def test_stream_events_are_relayed_with_the_model_rewritten(served: Served) -> None:
    body = {
        "model": "claude/sonnet", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "hello there"}],
    }  # fmt: skip
    events = served.events(body)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping", *["content_block_delta"] * 3,
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    start = events[0][1]["message"]
    assert start["id"] == "msg_test" and start["model"] == "claude/sonnet"
    _, sent = served.last()
    assert sent == {**body, "model": "sonnet"}
    # the SDK's raw event stream (the loopback upstream's message_start is a minimal one)
    stream = served.anthropic().messages.create(
        model="claude/sonnet", max_tokens=64, stream=True,
        messages=[{"role": "user", "content": "one two"}],
    )  # fmt: skip
    raw = list(stream)
    text = "".join(
        e.delta.text
        for e in raw
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "echo: one two"
    assert raw[0].type == "message_start" and raw[0].message.model == "claude/sonnet"
    assert raw[-2].type == "message_delta" and raw[-2].delta.stop_reason == "end_turn"
