"""OpenAI's wire format: request bodies to runtime requests, answers and errors to bytes."""

from __future__ import annotations

import orjson
import pytest

from gwconfig.runtime.errors import (
    AllTargetsFailedError,
    AmbiguousModelError,
    DeadlineExceededError,
    NoRouteError,
    TargetFailure,
)
from gwconfig.runtime.messages import OPENAI, LLMResponse, Usage, WireBody
from gwconfig.server.openai.errors import WireError
from gwconfig.server.openai.wire import (
    MAX_MESSAGES,
    ChunkWriter,
    completion_body,
    parse_chat_request,
    wire_error,
)


def body(**fields: object) -> bytes:
    doc = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return orjson.dumps(doc)


def test_a_full_request_becomes_the_runtime_request() -> None:
    parsed = parse_chat_request(
        body(
            messages=[
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                {"role": "assistant", "content": None},
            ],
            max_completion_tokens=7,
            temperature=0.5,
            top_p=0.9,
            stop="END",
            seed=3,
            stream=True,
            stream_options={"include_usage": True},
            user="u1",
        )
    )
    assert parsed.model == "m" and parsed.stream and parsed.include_usage
    req = parsed.request
    assert req.messages() == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": ""},
    ]
    assert req.config.model_identifier == "m" and req.config.max_tokens == 7
    assert req.config.temperature == 0.5
    assert req.config.extra_params == {"top_p": 0.9, "stop": ["END"], "seed": 3}
    assert req.initial_context.user_id == "u1"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{nope", None),
        (b"[]", None),
        (body(model=""), "model"),
        (body(model="x" * 600), "model"),
        (body(messages=[]), "messages"),
        (body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (
            body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            "messages[0].content",
        ),
        (body(messages=[{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1)), "messages"),
        (body(temperature=3), "temperature"),
        (body(temperature=True), "temperature"),
        (body(max_tokens=0), "max_tokens"),
        (body(stop=["a"] * 5), "stop"),
        (body(tools=[{"type": "function"}]), "tools"),
        (body(n=99), "n"),
        (body(tools=[{"type": "function", "function": {"name": "f"}}] * 200), "tools"),
        (body(messages=[{"role": "tool", "content": "x"}]), "messages[0]"),
        (body(messages=[{"role": "user", "content": [{"type": "video"}]}]), "messages[0].content"),
        (body(top_logprobs=50), "top_logprobs"),
        (body(future_field="x" * 70_000), "future_field"),
        (body(stream="yes"), "stream"),
        (body(n=True), "n"),
        (body(n=1.0), "n"),
        (body(n="1"), "n"),
        (body(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        (body(stream_options={"include_usage": 1}), "stream_options.include_usage"),
        (body(messages=[{"role": "user", "content": "x", "name": 7}]), "messages[0].name"),
        (body(messages=[{"role": "user", "content": "x", "name": ""}]), "messages[0].name"),
        (body(messages=[{"role": "user", "content": "x", "name": "n" * 65}]), "messages[0].name"),
        (body(max_tokens=5.0), "max_tokens"),
        (body(max_tokens=True), "max_tokens"),
        (body(max_completion_tokens="5"), "max_completion_tokens"),
        (body(seed=1.0), "seed"),
        (body(top_p="0.5"), "top_p"),
        (body(temperature=None, top_p=False), "top_p"),
        (body(stop=5), "stop"),
        (body(user=5), "user"),
        (body(stream_options=[]), "stream_options"),
    ],
)
def test_bad_bodies_are_400_with_the_parameter(raw: bytes, param: str | None) -> None:
    with pytest.raises(WireError) as exc:
        parse_chat_request(raw)
    assert exc.value.status == 400 and exc.value.param == param
    doc = orjson.loads(exc.value.body())
    assert set(doc["error"]) == {"message", "type", "code", "param"}


def test_answers_in_openai_shape() -> None:
    response = LLMResponse("hello", "p", "m1", Usage(3, 2), 1.0, (), "length", None)
    doc = orjson.loads(completion_body(response, "asked", "chatcmpl-1", 10))
    assert doc["object"] == "chat.completion" and doc["model"] == "asked"
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    writer = ChunkWriter("asked", "chatcmpl-2", 10)
    events = writer.role() + writer.text('say "hi"') + writer.finish("stop", Usage(1, 2), True)
    parts = events.decode().split("\n\n")
    assert parts[-2:] == ["data: [DONE]", ""]
    chunks = [orjson.loads(p.removeprefix("data: ")) for p in parts[:-2]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-2" for c in chunks)
    assert chunks[1]["choices"][0]["delta"] == {"content": 'say "hi"'}
    # usage once, on the usage-only chunk (asked for): not on the finish chunk
    assert chunks[2]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[2]
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["total_tokens"] == 3
    unasked = ChunkWriter("asked").finish("stop", Usage(1, 2), False).decode()
    assert "usage" not in unasked and unasked.endswith("data: [DONE]\n\n")


def test_an_openai_shaped_answer_passes_through() -> None:
    upstream = {
        "id": "chatcmpl-up",
        "object": "chat.completion",
        "model": "gpt-4o-2024",
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function",
                         "function": {"name": "f", "arguments": "{}"}}
                    ],
                    "refusal": None,
                },
                "logprobs": {"content": []},
                "finish_reason": "tool_calls",
            }
            for i in range(2)
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                  "prompt_tokens_details": {"cached_tokens": 1}},
        "system_fingerprint": "fp_1",
    }  # fmt: skip
    response = LLMResponse("", "p", "m1", Usage(1, 2), 1.0, (), "tool_calls", None)
    response.wire = WireBody(OPENAI, upstream)
    doc = orjson.loads(completion_body(response, "asked", "chatcmpl-1", 10))
    assert doc == {**upstream, "model": "asked"}


def test_tools_parts_and_unknown_fields_are_kept_as_sent() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather",
                                                          "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]  # fmt: skip
    raw = orjson.dumps(
        {"model": "m", "messages": messages, "tools": tools, "tool_choice": "auto",
         "max_completion_tokens": 5, "reasoning_effort": "low", "n": 2, "logprobs": True,
         "next_years_parameter": {"x": 1}}
    )  # fmt: skip
    req = parse_chat_request(raw)
    assert req.request.tools == tools and req.request.tool_choice == "auto"
    assert req.request.needs == {"function_calling", "vision"}
    assert req.request.wire is not None and req.request.wire.body == orjson.loads(raw)
    msgs = req.request.messages()
    assert msgs[2]["tool_calls"][0]["id"] == "c1" and msgs[3]["tool_call_id"] == "c1"


def test_runtime_errors_map_to_statuses() -> None:
    limited = TargetFailure("p/m", "rate limit", 1, 429)
    broken = TargetFailure("q/m", "HTTP 500", 1, 500)
    cases = [
        (NoRouteError("no route"), 404, "model_not_found"),
        (AmbiguousModelError("m", ["a/m", "b/m"]), 400, "model_ambiguous"),
        (DeadlineExceededError("late"), 504, "deadline_exceeded"),
        (AllTargetsFailedError("r", [limited, limited]), 429, "upstream_rate_limited"),
        (AllTargetsFailedError("r", [limited, broken]), 502, "upstream_failed"),
        (RuntimeError("bug with a secret"), 500, "internal_error"),
    ]
    for exc, status, code in cases:
        error = wire_error(exc)
        assert (error.status, error.code) == (status, code)
    assert wire_error(RuntimeError("bug with a secret")).message == "internal error"
