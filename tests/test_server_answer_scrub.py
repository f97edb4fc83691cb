"""A secret an upstream echoes in a *successful* answer never reaches the client: not in the
text, not in a tool call's arguments, not in a relayed body or event, plain or streamed,
through ``/v1/chat/completions`` and ``/v1/messages``, for OpenAI- and Anthropic-shaped
upstreams. The upstream here writes the key the gateway sent it into every answer."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from builders import write_manifests
from gwconfig.db.session import open_database
from gwconfig.server.state import ServeSettings
from raw_upstream import RawUpstream, Request, sse_answer
from reconcile_helpers import apply
from serve_helpers import ServedApp, make_token, serve_app

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def _json_answer(doc: dict[str, Any]) -> bytes:
    body = json.dumps(doc).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _openai(key: str, stream: bool) -> bytes:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": json.dumps({"q": key})}}  # fmt: skip
    if not stream:
        message = {"role": "assistant", "content": f"the key is {key}", "tool_calls": [call]}
        return _json_answer({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        })  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        doc = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(doc)}\n\n".encode()

    return sse_answer([
        chunk({"role": "assistant", "content": f"the key is {key}"}),
        chunk({"tool_calls": [{"index": 0, **call}]}),
        chunk({}, "tool_calls"),
        b"data: [DONE]\n\n",
    ])  # fmt: skip


def _anthropic(key: str, stream: bool) -> bytes:
    if not stream:
        return _json_answer({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "text", "text": f"the key is {key}"},
                        {"type": "tool_use", "id": "toolu_1", "name": "lookup",
                         "input": {"q": key}}],
            "stop_reason": "tool_use", "stop_sequence": None,
            "usage": {"input_tokens": 3, "output_tokens": 4},
        })  # fmt: skip

    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 3, "output_tokens": 1}}  # fmt: skip
    tool = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}
    arguments = json.dumps({"q": key})
    return sse_answer([
        event("message_start", {"message": message}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("content_block_delta",
              {"index": 0, "delta": {"type": "text_delta", "text": f"the key is {key}"}}),
        event("content_block_stop", {"index": 0}),
        event("content_block_start", {"index": 1, "content_block": tool}),
        event("content_block_delta",
              {"index": 1, "delta": {"type": "input_json_delta", "partial_json": arguments}}),
        event("content_block_stop", {"index": 1}),
        event("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                "usage": {"output_tokens": 4}}),
        event("message_stop", {}),
    ])  # fmt: skip


async def echo(request: Request, writer: asyncio.StreamWriter) -> None:
    """Answer with the key the gateway sent (Bearer or x-api-key) in text and tool call."""
    body = request.json()
    stream = bool(body.get("stream"))
    if "/v1/messages" in request.line:
        writer.write(_anthropic(request.headers["x-api-key"], stream))
    else:
        writer.write(_openai(request.headers["authorization"].removeprefix("Bearer "), stream))


class Echoing:
    def __init__(self, served: ServedApp, token: str, keys: dict[str, str]) -> None:
        self.served, self.token, self.keys = served, token, keys

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.served.base_url + "/v1", api_key=self.token)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.served.base_url, api_key=self.token)

    def clean(self, text: str) -> None:
        for key in self.keys.values():
            assert key not in text
            assert key[6:30] not in text  # not even a long fragment


@pytest.fixture
def echoing(
    sqlite_url: str, fernet_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Echoing]:
    keys = {"OA_KEY": "sk-oa-" + secrets.token_urlsafe(24),
            "AN_KEY": "sk-an-" + secrets.token_urlsafe(24)}  # fmt: skip
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    with RawUpstream(echo).thread() as upstream:
        providers = [
            {"apiVersion": "gwconfig/v1", "kind": "Provider", "provider_id": pid,
             "provider_type": ptype, "connection": {"api_base": upstream.base_url + "/v1"},
             "api_keys": [{"name": "default", "value": {"env": env}}],
             "request_settings": {"max_retries": 0, "timeout_seconds": 30},
             "models": [{"model_id": "m", "capabilities": ["function_calling"]}]}
            for pid, ptype, env in (("oa", "openai", "OA_KEY"), ("an", "anthropic", "AN_KEY"))
        ]  # fmt: skip
        open_database(sqlite_url, upgrade=True).dispose()
        apply(write_manifests(tmp_path / "m", *providers), sqlite_url)
        token = make_token(sqlite_url, "invoke", name="app")
        with serve_app(ServeSettings(database_url=sqlite_url)) as served:
            yield Echoing(served, token, keys)


@pytest.mark.parametrize("model", ["oa/m", "an/m"])
def test_a_plain_chat_answer_echoing_the_key_is_masked(echoing: Echoing, model: str) -> None:
    answer = echoing.openai().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], tools=[TOOL]
    )
    message = answer.choices[0].message
    assert message.content is not None and message.content.startswith("the key is ")
    assert message.tool_calls and message.tool_calls[0].function.name == "lookup"
    echoing.clean(answer.model_dump_json())


@pytest.mark.parametrize("model", ["oa/m", "an/m"])
def test_a_streamed_chat_answer_echoing_the_key_is_masked(echoing: Echoing, model: str) -> None:
    with httpx.stream(
        "POST",
        echoing.served.base_url + "/v1/chat/completions",
        json={"model": model, "stream": True, "tools": [TOOL],
              "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {echoing.token}"},
        timeout=60,
    ) as response:  # fmt: skip
        assert response.status_code == 200
        body = response.read().decode()
    assert "the key is " in body and '"lookup"' in body
    echoing.clean(body)


@pytest.mark.parametrize("model", ["oa/m", "an/m"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_messages_answer_echoing_the_key_is_masked(
    echoing: Echoing, model: str, stream: bool
) -> None:
    body = {"model": model, "max_tokens": 64, "stream": stream,
            "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    response = httpx.post(
        echoing.served.base_url + "/v1/messages",
        json=body,
        headers={"x-api-key": echoing.token, "anthropic-version": "2023-06-01"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert "the key is " in response.text and "lookup" in response.text
    echoing.clean(response.text)
    if not stream:  # what the SDK reads is masked too
        message = echoing.anthropic().messages.create(**body)
        kinds = [block.type for block in message.content]
        assert kinds == ["text", "tool_use"]
        echoing.clean(message.model_dump_json())
