"""Anthropic's answers: a ``message`` object and the stream events of one.

An Anthropic model's answer (``LLMResponse.wire`` in the Messages format) and its stream
events (``StreamChunk.native``) pass through with only ``model`` rewritten to the name the
client asked for; any other model's answer is built from the neutral response (text, OpenAI
tool calls, finish reason, usage).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from gwconfig.runtime.errors import ProviderResponseError
from gwconfig.runtime.messages import ANTHROPIC, LLMResponse, Usage
from gwconfig.runtime.providers.base import StreamChunk
from gwconfig.runtime.providers.from_anthropic import stop_reason

_ID_PREFIX = "msg_" + secrets.token_hex(8)
_ids = itertools.count(1)


def new_message_id() -> str:
    """A message id unique to this process's lifetime (``msg_``, random hex, a counter)."""
    return f"{_ID_PREFIX}{next(_ids):x}"


def usage_doc(usage: Usage) -> dict[str, int]:
    """Anthropic's ``usage``: input tokens apart from those read from the cache."""
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def tool_input(call: Mapping[str, Any]) -> dict[str, Any]:
    """The ``input`` of a ``tool_use`` block: an OpenAI tool call's arguments, parsed."""
    arguments = (call.get("function") or {}).get("arguments") or "{}"
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise ProviderResponseError("the model's tool call arguments are not a JSON object")
    return value


def message_body(response: LLMResponse, model: str) -> bytes:
    """The ``message`` answering for ``model``: an Anthropic upstream's as it came (``model``
    rewritten), else one built from the response."""
    wire = response.wire
    if wire is not None and wire.api == ANTHROPIC and isinstance(wire.body.get("content"), list):
        return orjson.dumps({**wire.body, "model": model})
    content: list[dict[str, Any]] = []
    if response.generated_content:
        content.append({"type": "text", "text": response.generated_content})
    for call in response.tool_calls:
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": fn.get("name"),
                "input": tool_input(call),
            }
        )
    return orjson.dumps(
        {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason(response.finish_reason),
            "stop_sequence": None,
            "usage": usage_doc(response.usage),
        }
    )


def count_body(response: LLMResponse) -> bytes:
    """The ``count_tokens`` answer: the upstream's document as it came."""
    wire = response.wire
    doc = dict(wire.body) if wire is not None else {"input_tokens": response.usage.prompt_tokens}
    return orjson.dumps(doc)


def _event(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


_MESSAGE_START = b"event: message_start\n"


class EventWriter:
    """The server-sent events of one streamed message: relayed native events, or events built
    from neutral chunks (text deltas, OpenAI tool-call deltas)."""

    __slots__ = ("_block", "_kind", "_tools", "id", "model", "native", "started")

    def __init__(self, model: str) -> None:
        self.id = new_message_id()
        self.model = model
        self.started = False
        #: True once an upstream event was relayed: the upstream's events end the stream
        self.native = False
        self._block = -1  # the index of the open content block, -1: none
        self._kind = ""
        self._tools: dict[int, int] = {}  # OpenAI tool-call index -> block index

    def chunk(self, chunk: StreamChunk) -> bytes:
        """The events of one piece of the stream."""
        if chunk.native is not None and chunk.api == ANTHROPIC:
            self.native = self.started = True
            return self._relayed(chunk.native)
        out = self._start()
        if chunk.text:
            out += self._open("text", {"type": "text", "text": ""}) if self._kind != "text" else b""
            out += self._delta({"type": "text_delta", "text": chunk.text})
        for delta in chunk.tool_calls:
            out += self._tool_delta(delta)
        return out

    def _relayed(self, event: bytes) -> bytes:
        """An upstream event as received; ``message_start`` names the model asked for."""
        if not event.startswith(_MESSAGE_START):
            return event
        head, sep, data = event.partition(b"data:")
        doc = orjson.loads(data)
        message = doc.get("message") if isinstance(doc, dict) else None
        if not isinstance(message, dict):
            return event
        doc["message"] = {**message, "model": self.model}
        return head + sep + b" " + orjson.dumps(doc) + b"\n\n"

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        message: dict[str, Any] = {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }  # fmt: skip
        return _event("message_start", {"type": "message_start", "message": message}) + _event(
            "ping", {"type": "ping"}
        )

    def _open(self, kind: str, block: Mapping[str, Any]) -> bytes:
        out = self._close()
        self._block += 1
        self._kind = kind
        start = {"type": "content_block_start", "index": self._block, "content_block": block}
        return out + _event("content_block_start", start)

    def _close(self) -> bytes:
        if not self._kind:
            return b""
        self._kind = ""
        return _event("content_block_stop", {"type": "content_block_stop", "index": self._block})

    def _delta(self, delta: Mapping[str, Any], index: int | None = None) -> bytes:
        at = self._block if index is None else index
        return _event(
            "content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta}
        )

    def _tool_delta(self, delta: Mapping[str, Any]) -> bytes:
        """An OpenAI tool-call delta: a new call opens a ``tool_use`` block, argument pieces
        are ``input_json_delta`` events of its block."""
        out = b""
        index = delta.get("index", 0)
        fn = delta.get("function") or {}
        block = self._tools.get(index)
        if block is None:
            block_doc: dict[str, Any] = {
                "type": "tool_use",
                "id": delta.get("id"),
                "name": fn.get("name"),
                "input": {},
            }
            out += self._open("tool_use", block_doc)
            block = self._tools[index] = self._block
        arguments = fn.get("arguments")
        if arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments}, block)
        return out

    def finish(self, finish_reason: str | None, usage: Usage) -> bytes:
        """The last events: the open block's stop, ``message_delta`` (stop reason, usage) and
        ``message_stop``; nothing after relayed events (the upstream's ended the stream)."""
        if self.native:
            return b""
        out = self._start() + self._close()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(finish_reason), "stop_sequence": None},
            "usage": usage_doc(usage),
        }
        return (
            out + _event("message_delta", delta) + _event("message_stop", {"type": "message_stop"})
        )
