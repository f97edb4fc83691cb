"""Anthropic messages API (``POST /v1/messages``), including its streaming event format.

A client of the Messages API (``call.wire`` in the ANTHROPIC API) has its body sent as it sent
it (only ``model`` rewritten) and gets the answer, and each streamed event, as they came; any
other call is translated (:mod:`gwconfig.runtime.providers.to_anthropic`) and its answer comes
back in neutral fields in OpenAI's vocabulary: text, ``tool_calls``, finish reason, usage.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gwconfig.runtime.errors import ProviderResponseError
from gwconfig.runtime.messages import ANTHROPIC, ProviderResult, Usage, WireBody
from gwconfig.runtime.providers.base import ProviderCall, StreamChunk
from gwconfig.runtime.providers.http import HTTPProvider, load_event
from gwconfig.runtime.providers.to_anthropic import (
    DEFAULT_MAX_TOKENS,
    answer_schema,
    messages_body,
    native_body,
)
from gwconfig.runtime.scrub import may_hold, scrub_tree
from gwconfig.secrets.origin import DEFAULT_BASES

__all__ = ["DEFAULT_MAX_TOKENS", "STOP_REASONS", "AnthropicProvider", "answer_fields", "usage_of"]

#: the finish reason (OpenAI's words) of each Messages stop reason
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str | None:
    """OpenAI's finish reason for a Messages ``stop_reason`` (an unknown one as it came)."""
    if not isinstance(stop_reason, str):
        return None
    return STOP_REASONS.get(stop_reason, stop_reason)


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def usage_of(usage: Any) -> Usage:
    """OpenAI-style usage of a Messages ``usage`` object.

    Prompt tokens are all the tokens read: ``input_tokens`` (the uncached rest) plus the ones
    read from the cache (also :attr:`Usage.cached_tokens`) plus the ones written to it. Thinking
    is inside ``output_tokens``; the API reports no separate count, so reasoning tokens stay 0.
    """
    u = usage if isinstance(usage, Mapping) else {}
    read = _count(u.get("cache_read_input_tokens"))
    created = _count(u.get("cache_creation_input_tokens"))
    prompt = _count(u.get("input_tokens")) + read + created
    return Usage(prompt, _count(u.get("output_tokens")), read, 0)


def tool_call(block: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI tool call of a ``tool_use`` block (its input as a JSON string)."""
    arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
    return {
        "id": str(block.get("id") or ""),
        "type": "function",
        "function": {"name": str(block.get("name") or ""), "arguments": arguments},
    }


def answer_fields(data: Any, schema: str | None = None) -> ProviderResult:
    """The neutral fields of a Messages answer: text blocks joined (thinking is not text),
    ``tool_use`` blocks as tool calls, finish reason and usage. With ``schema`` (the forced
    tool of a ``json_schema`` response format), that tool's input is the answer's text."""
    blocks = data.get("content") if isinstance(data, dict) else None
    if not isinstance(blocks, list):
        raise ProviderResponseError("reply has no content blocks")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            raise ProviderResponseError("a content block is not an object")
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use" and schema is not None and block.get("name") == schema:
            texts.append(json.dumps(block.get("input") or {}, ensure_ascii=False))
        elif kind == "tool_use":
            calls.append(tool_call(block))
    finish = finish_reason(data.get("stop_reason"))
    if schema is not None and finish == "tool_calls" and not calls:
        finish = "stop"
    return ProviderResult("".join(texts), usage_of(data.get("usage")), finish, data, tuple(calls))


class _Events:
    """The neutral fields of a Messages event stream, event by event."""

    __slots__ = ("answers", "counts", "finish", "schema", "tools")

    def __init__(self, schema: str | None = None) -> None:
        #: the forced tool whose input is the answer's text (a json_schema response format)
        self.schema = schema
        #: the tool_use block indexes whose input is text (the schema tool's)
        self.answers: set[Any] = set()
        #: the Messages usage counts so far (message_delta's replace message_start's)
        self.counts: dict[str, Any] = {}
        self.finish: str | None = None
        #: the tool-call index (in OpenAI's deltas) of each tool_use block index
        self.tools: dict[Any, int] = {}

    def chunk(self, kind: Any, event: Mapping[str, Any]) -> StreamChunk | None:
        """The text or tool-call delta ``event`` carries, if any (usage and stop reason kept)."""
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "input_json_delta":
                index = self.tools.get(event.get("index"))
                piece = delta.get("partial_json")
                if index is None or not isinstance(piece, str):
                    raise ProviderResponseError("an input_json_delta outside a tool_use block")
                if event.get("index") in self.answers:
                    return StreamChunk(piece) if piece else None
                if piece:
                    args = {"index": index, "function": {"arguments": piece}}
                    return StreamChunk(tool_calls=(args,))
            elif dtype in (None, "text_delta") and isinstance(delta.get("text"), str):
                return StreamChunk(delta["text"]) if delta["text"] else None
            return None  # thinking, signatures, citations: not text
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use" and self.schema == block.get("name"):
                self.tools[event.get("index")] = -1
                self.answers.add(event.get("index"))
            elif block.get("type") == "tool_use":
                index = self.tools[event.get("index")] = len(self.tools) - len(self.answers)
                first = tool_call({**block, "input": {}})
                first["function"]["arguments"] = ""
                return StreamChunk(tool_calls=({"index": index, **first},))
            if block.get("type") == "text" and block.get("text"):
                return StreamChunk(str(block["text"]))
        elif kind == "message_start":
            self._count((event.get("message") or {}).get("usage"))
        elif kind == "message_delta":
            self._count(event.get("usage"))
            finish = finish_reason((event.get("delta") or {}).get("stop_reason"))
            if finish == "tool_calls" and self.answers and len(self.answers) == len(self.tools):
                finish = "stop"  # the only tool called was the answer's
            self.finish = finish or self.finish
        return None

    def _count(self, usage: Any) -> None:
        if isinstance(usage, Mapping):
            self.counts.update(usage)

    @property
    def usage(self) -> Usage:
        """The usage so far."""
        return usage_of(self.counts)


class AnthropicProvider(HTTPProvider):
    """``POST {api_base}/v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    provider_type = "anthropic"
    default_api_base = DEFAULT_BASES["anthropic"]
    default_api_version = "2023-06-01"

    def url(self, call: ProviderCall) -> str:
        """The messages URL (``api_base`` may or may not end in ``/v1``)."""
        base = self.api_base
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    def headers(self, call: ProviderCall) -> dict[str, str]:
        """Authentication and API version headers."""
        headers = {"anthropic-version": self.config.api_version or self.default_api_version}
        if call.api_key:
            headers["x-api-key"] = call.api_key
        return headers

    @staticmethod
    def native(call: ProviderCall) -> bool:
        """Whether the client speaks the Messages API (its body and answer pass through)."""
        return call.wire is not None and call.wire.api == ANTHROPIC

    def body(self, call: ProviderCall, stream: bool) -> dict[str, Any]:
        """The JSON request body: a Messages client's as sent (``model`` rewritten), else
        translated from OpenAI's shape (400 for what cannot be)."""
        wire = call.wire
        if wire is not None and wire.api == ANTHROPIC:
            return native_body(call, wire.body, stream)
        return messages_body(call, stream)

    async def complete(self, call: ProviderCall) -> ProviderResult:
        """One message."""
        data = await self.post_json(
            self.url(call), self.body(call, False), self.headers(call), call
        )
        if not self.native(call):
            return answer_fields(data, answer_schema(call))
        result = answer_fields(data)
        return ProviderResult(
            result.text, result.usage, result.finish_reason, data, result.tool_calls,
            WireBody(ANTHROPIC, data),
        )  # fmt: skip

    async def stream(self, call: ProviderCall) -> AsyncIterator[StreamChunk]:
        """A streamed message: message_start, content blocks and their deltas, message_delta,
        message_stop; each event's bytes too (``native``) for a Messages client."""
        url, body, headers = self.url(call), self.body(call, True), self.headers(call)
        native = self.native(call)
        state = _Events(None if native else answer_schema(call))
        scrubber = self.config.secrets.scrubber  # an upstream may echo a secret in its events
        async with self.open_stream(url, body, headers, call) as resp:
            stopped = False
            async for event_name, data in self.events(resp, call):
                event = load_event(data)
                if not isinstance(event, dict):
                    raise ProviderResponseError("a streamed event is not an object")
                kind = event.get("type", event_name)
                if kind == "error":
                    raise self.stream_error(event.get("error") or event)
                chunk = state.chunk(kind, event)
                if kind == "message_stop":
                    stopped = True
                    self.finished(resp)  # the fast client may keep the connection
                    chunk = StreamChunk("", state.usage, state.finish)
                if chunk is not None and may_hold(scrubber, chunk.text, chunk.tool_calls):
                    text, calls = scrub_tree((chunk.text, chunk.tool_calls), scrubber)
                    chunk = StreamChunk(text, chunk.usage, chunk.finish_reason, calls)
                if native:
                    if scrubber.may_hold(data.encode("utf-8", "surrogatepass")):
                        data = json.dumps(scrub_tree(event, scrubber), separators=(",", ":"))
                    raw = f"event: {event_name}\ndata: {data}\n\n".encode()
                    base = chunk or StreamChunk()
                    chunk = StreamChunk(
                        base.text, base.usage, base.finish_reason, base.tool_calls, raw, ANTHROPIC
                    )
                if chunk is not None:
                    yield chunk
                if stopped:
                    return
            if state.finish is None:  # cut off: the answer may be incomplete
                raise ProviderResponseError("the stream ended before message_stop")
            yield StreamChunk("", state.usage, state.finish)

    async def count_tokens(self, call: ProviderCall) -> ProviderResult:
        """``POST {api_base}/v1/messages/count_tokens``: an Anthropic client's body (``model``
        rewritten); the answer (``{"input_tokens": n}``) as it came."""
        body: dict[str, Any] = (
            dict(call.wire.body) if call.wire is not None else {"messages": call.messages}
        )
        body["model"] = call.model.model_id
        body.pop("max_tokens", None)
        body.pop("stream", None)
        url = self.url(call) + "/count_tokens"
        data = await self.post_json(url, body, self.headers(call), call)
        if not isinstance(data, dict) or type(data.get("input_tokens")) is not int:
            raise ProviderResponseError("reply has no input_tokens")
        return ProviderResult("", Usage(), None, data, (), WireBody(ANTHROPIC, data))
