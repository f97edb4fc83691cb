"""OpenAI answers that call a tool, plain and streamed, for the loopback upstream of the
tests (:class:`runtime_servers.FakeLLMServer` answers with them when a request offers tools)."""

from __future__ import annotations

import json
from typing import Any


def tool_call_answer(body: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI answer calling the request's first tool (``n`` choices, logprobs when asked),
    or, after a tool result, a text answer quoting it."""
    last = body["messages"][-1]
    if last.get("role") == "tool":
        message: dict[str, Any] = {"role": "assistant", "content": f"tool said: {last['content']}"}
        finish = "stop"
    else:
        name = body["tools"][0]["function"]["name"]
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": '{"city": "Paris"}'},
                }
            ],
        }
        finish = "tool_calls"
    logprobs = {"content": []} if body.get("logprobs") else None
    return {
        "id": "chatcmpl-tools",
        "object": "chat.completion",
        "created": 1,
        "model": body["model"],
        "system_fingerprint": "fp_test",
        "choices": [
            {"index": i, "message": message, "finish_reason": finish, "logprobs": logprobs}
            for i in range(body.get("n") or 1)
        ],
        "usage": {**usage, "prompt_tokens_details": {"cached_tokens": 0}},
    }


async def tool_call_events(body: dict[str, Any], usage: dict[str, Any]) -> Any:
    """A streamed answer calling the request's first tool, its arguments in pieces, as OpenAI
    streams them (and usage last when asked)."""
    name = body["tools"][0]["function"]["name"]

    def chunk(choices: list[Any], **more: Any) -> bytes:
        payload = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
                   "model": body["model"], "choices": choices, **more}  # fmt: skip
        return f"data: {json.dumps(payload)}\n\n".encode()

    def delta(d: dict[str, Any], finish: str | None = None) -> bytes:
        return chunk([{"index": 0, "delta": d, "finish_reason": finish}])

    yield delta({"role": "assistant", "content": None})
    first = {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": name, "arguments": ""}}  # fmt: skip
    yield delta({"tool_calls": [first]})
    for piece in ('{"city"', ': "Par', 'is"}'):
        yield delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    yield delta({}, "tool_calls")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield chunk([], usage=usage)
    yield b"data: [DONE]\n\n"


# -- the Anthropic Messages API -------------------------------------------------------------------

#: the input of the tool call the Messages answers make (the OpenAI ones' arguments, parsed)
TOOL_INPUT = {"city": "Paris"}


def _tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    last = body["messages"][-1]
    content = last.get("content")
    if last.get("role") != "user" or not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def anthropic_usage(model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A Messages ``usage``; the model ``cache`` also reads 7 tokens from the cache and
    writes 3 to it."""
    usage: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if model == "cache":
        usage.update(cache_read_input_tokens=7, cache_creation_input_tokens=3)
    return usage


def anthropic_stop(model: str, default: str = "end_turn") -> str:
    """The stop reason of an answer: ``stop:<reason>`` as named, else ``default``."""
    return model.split(":", 1)[1] if model.startswith("stop:") else default


def anthropic_message(body: dict[str, Any], text: str, input_tokens: int) -> dict[str, Any]:
    """A Messages answer: with tools offered, a ``tool_use`` block calling the first (or,
    after tool results, text quoting them); else ``text`` (after a thinking block for the model
    ``think``)."""
    model = str(body["model"])
    blocks: list[dict[str, Any]] = []
    stop = anthropic_stop(model)
    results = _tool_results(body)
    if body.get("tools") and results:
        text = "tool said: " + "; ".join(str(r["content"]) for r in results)
    elif body.get("tools"):
        name = body["tools"][0]["name"]
        blocks = [{"type": "tool_use", "id": "toolu_1", "name": name, "input": TOOL_INPUT}]
        stop, text = "tool_use", ""
    if model == "think":
        blocks.insert(0, {"type": "thinking", "thinking": "let me see", "signature": "sig"})
    if text:
        blocks.append({"type": "text", "text": text})
    return {
        "id": "msg_test", "type": "message", "role": "assistant", "model": model,
        "content": blocks, "stop_reason": stop, "stop_sequence": None,
        "usage": anthropic_usage(model, input_tokens, max(1, len(text.split()))),
    }  # fmt: skip


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


async def anthropic_tool_events(body: dict[str, Any], input_tokens: int) -> Any:
    """A streamed Messages answer calling the request's first tool: a thinking block, then the
    ``tool_use`` block, its input in ``input_json_delta`` pieces, as Anthropic streams them."""
    model = str(body["model"])
    message = {"id": "msg_s", "type": "message", "role": "assistant", "model": model,
               "content": [], "stop_reason": None,
               "usage": anthropic_usage(model, input_tokens, 1)}  # fmt: skip
    yield _event("message_start", {"message": message})
    yield _event("content_block_start", {"index": 0, "content_block": {"type": "thinking"}})
    yield _event(
        "content_block_delta",
        {"index": 0, "delta": {"type": "thinking_delta", "thinking": "a tool"}},
    )
    yield _event("content_block_stop", {"index": 0})
    name = body["tools"][0]["name"]
    block = {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}
    yield _event("content_block_start", {"index": 1, "content_block": block})
    for piece in ("", '{"city"', ': "Par', 'is"}'):
        delta = {"type": "input_json_delta", "partial_json": piece}
        yield _event("content_block_delta", {"index": 1, "delta": delta})
    yield _event("content_block_stop", {"index": 1})
    yield _event(
        "message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}
    )
    yield _event("message_stop", {})
