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
