"""The two ways to a tool call agree: the same conversation through ``/v1/messages`` (the
``anthropic`` package) and ``/v1/chat/completions`` (the ``openai`` package) to the same OpenAI
model reaches the upstream as the same chat request and yields the same tool calls. The guide's
``anthropic`` example runs as written, and the OpenAPI document lists the Messages paths."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import httpx

from messages_helpers import WEATHER_FUNCTION, WEATHER_TOOL, Served

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "serving.md"


def test_the_same_conversation_yields_the_same_tool_calls_on_both_apis(served: Served) -> None:
    question = "weather in Paris?"
    message = served.anthropic().messages.create(
        model="up/gpt-tools", max_tokens=100, tools=[WEATHER_TOOL],
        system="use the tools", messages=[{"role": "user", "content": question}],
    )  # fmt: skip
    _, via_messages = served.last()
    chat = served.openai().chat.completions.create(
        model="up/gpt-tools", max_tokens=100, tools=[WEATHER_FUNCTION],
        messages=[{"role": "system", "content": "use the tools"},
                  {"role": "user", "content": question}],
    )  # fmt: skip
    _, via_chat = served.last()
    assert via_messages == via_chat
    uses = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    calls = chat.choices[0].message.tool_calls or []
    assert uses == [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls]
    assert uses and message.stop_reason == "tool_use"
    assert chat.choices[0].finish_reason == "tool_calls"
    # the tool result turn: the same chat request again
    use = message.content[0]
    served.anthropic().messages.create(
        model="up/gpt-tools", max_tokens=100, tools=[WEATHER_TOOL], system="use the tools",
        messages=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ],
    )  # fmt: skip
    _, via_messages = served.last()
    call = calls[0]
    served.openai().chat.completions.create(
        model="up/gpt-tools", max_tokens=100, tools=[WEATHER_FUNCTION],
        messages=[
            {"role": "system", "content": "use the tools"},
            {"role": "user", "content": question},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )  # fmt: skip
    _, via_chat = served.last()
    assert via_messages == via_chat


def test_the_same_streamed_tool_call_on_both_apis(served: Served) -> None:
    with served.anthropic().messages.stream(
        model="up/gpt-tools", max_tokens=100, tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:  # fmt: skip
        message = stream.get_final_message()
    _, via_messages = served.last()
    with served.openai().chat.completions.stream(
        model="up/gpt-tools", max_tokens=100, tools=[WEATHER_FUNCTION],
        messages=[{"role": "user", "content": "weather?"}],
    ) as chat_stream:  # fmt: skip
        chat = chat_stream.get_final_completion()
    _, via_chat = served.last()
    assert via_messages == via_chat
    uses = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    calls = chat.choices[0].message.tool_calls or []
    assert uses == [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls]
    assert uses


def test_the_guides_anthropic_example_runs(served: Served) -> None:
    text = GUIDE.read_text()
    section = text[text.index("## The Anthropic Messages API") :]
    section = section[: section.index("\n## ")]
    code = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(code) == 1 and "http://127.0.0.1:8080" in code[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code[0].replace("http://127.0.0.1:8080", served.app.base_url), {"token": served.token})
    assert out.getvalue() == "echo: Hello\necho: Hello"
    paths = [p for p, _, _ in served.upstream.requests]
    assert paths == ["/v1/chat/completions"] * 2


def test_openapi_lists_the_messages_paths(served: Served) -> None:
    doc = httpx.get(
        served.app.base_url + "/openapi.json", headers={"Authorization": f"Bearer {served.token}"}
    ).json()
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        operation = doc["paths"][path]["post"]
        assert operation["summary"] and operation["description"]
        assert operation["security"] == [{"AnthropicApiKey": []}, {"HTTPBearer": []}]
        error = operation["responses"]["400"]["content"]["application/json"]["schema"]
        assert error["$ref"].endswith("/AnthropicError")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["AnthropicApiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert "/v1/chat/completions" in doc["paths"]
