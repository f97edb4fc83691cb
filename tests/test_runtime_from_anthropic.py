"""The pure translation of a Messages request to chat completions, and the Messages answer
and stream events built from neutral pieces (no server: values in, values out)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gwconfig.runtime.errors import ProviderResponseError, UnsupportedParameterError
from gwconfig.runtime.messages import ANTHROPIC, LLMResponse, Usage
from gwconfig.runtime.providers.base import StreamChunk
from gwconfig.runtime.providers.from_anthropic import chat_body, stop_reason
from gwconfig.server.anthropic.answers import EventWriter, message_body


def _body(**fields: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "q"}],
        **fields,
    }


def test_system_blocks_assistant_texts_and_tool_only_turns() -> None:
    body = _body(
        system=[{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                              {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t", "name": "f", "input": {"x": [1, 2]}}]},
        ],
        stream=True, cache_control={"type": "ephemeral"}, thinking={"type": "disabled"},
    )  # fmt: skip
    out = chat_body(body, "openai")
    assert out == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "one\n\ntwo"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                              {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "t", "type": "function",
                 "function": {"name": "f", "arguments": '{"x":[1,2]}'}}]},
        ],
        "max_tokens": 10, "stream": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "f", "disable_parallel_tool_use": True},
         {"tool_choice": {"type": "function", "function": {"name": "f"}},
          "parallel_tool_calls": False}),
    ],
)  # fmt: skip
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    out = chat_body(_body(tools=tools, tool_choice=choice), "azure_openai")
    assert out["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert {k: out[k] for k in expected} == expected
    assert "parallel_tool_calls" in out or "parallel_tool_calls" not in expected


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"metadata": {"user_id": "u", "team": "x"}}, "'metadata.team'"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
         "'messages[0].content[0].source'"),
        ({"messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "data": "d"}}]}]},
         "'messages[0].content[0]'"),
        ({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [
                {"type": "image", "source": {"type": "url", "url": "u"}}]}]}]},
         "'messages[0].content[0].content[0]'"),
        ({"thinking": {"type": "adaptive"}}, "'thinking'"),
        ({"service_tier": "auto"}, "'service_tier'"),
    ],
)  # fmt: skip
def test_what_cannot_be_carried_is_named_with_the_provider_type(
    fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(UnsupportedParameterError) as exc:
        chat_body(_body(**fields), "openai")
    assert named in str(exc.value) and "provider type 'openai'" in str(exc.value)


def test_stop_reasons() -> None:
    assert [stop_reason(r) for r in ("stop", "length", "tool_calls", "content_filter", None)] == [
        "end_turn", "max_tokens", "tool_use", "refusal", "end_turn",
    ]  # fmt: skip
    assert stop_reason("stop_sequence") == "stop_sequence"


def _response(**fields: Any) -> LLMResponse:
    return LLMResponse("", "up", "gpt", Usage(10, 4, cached_tokens=6), 1.0, (), **fields)


def test_a_message_built_from_neutral_fields() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    doc = json.loads(
        message_body(_response(finish_reason="tool_calls", tool_calls=(call,)), "asked")
    )
    assert doc["model"] == "asked" and doc["stop_reason"] == "tool_use"
    assert doc["content"] == [{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}]
    assert doc["usage"] == {
        "input_tokens": 4, "output_tokens": 4, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 6,
    }  # fmt: skip
    bad = {**call, "function": {"name": "f", "arguments": "[1"}}
    with pytest.raises(ProviderResponseError):
        message_body(_response(tool_calls=(bad,)), "asked")


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event in raw.decode().split("\n\n"):
        if event:
            name, data = event.split("\n")
            out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_built_events_open_and_close_one_block_at_a_time() -> None:
    writer = EventWriter("asked")
    first = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}
    raw = writer.chunk(StreamChunk("hi"))
    raw += writer.chunk(StreamChunk(tool_calls=(first,)))
    raw += writer.chunk(StreamChunk(tool_calls=({"index": 0, "function": {"arguments": "{}"}},)))
    raw += writer.finish("tool_calls", Usage(3, 2))
    events = _events(raw)
    names = [name for name, _ in events]
    assert names == [
        "message_start", "ping", "content_block_start", "content_block_delta",
        "content_block_stop", "content_block_start", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "c1", "name": "f",
                                             "input": {}}  # fmt: skip
    json_delta = {"type": "input_json_delta", "partial_json": "{}"}
    assert events[6][1] == {"type": "content_block_delta", "index": 1, "delta": json_delta}
    assert events[8][1]["delta"]["stop_reason"] == "tool_use"


def test_relayed_events_name_the_model_asked_for_and_end_the_stream() -> None:
    writer = EventWriter("asked")
    start = (
        b'event: message_start\ndata: {"type":"message_start",'
        b'"message":{"id":"m","model":"up"}}\n\n'
    )
    delta = b'event: content_block_delta\ndata: {"type":"content_block_delta","model":"up"}\n\n'
    out = writer.chunk(StreamChunk(native=start, api=ANTHROPIC))
    assert _events(out) == [
        ("message_start", {"type": "message_start", "message": {"id": "m", "model": "asked"}})
    ]
    assert writer.chunk(StreamChunk("x", native=delta, api=ANTHROPIC)) == delta
    assert writer.finish("end_turn", Usage()) == b""
