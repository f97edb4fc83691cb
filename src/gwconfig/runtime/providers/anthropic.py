"""Anthropic messages API (``POST /v1/messages``), including its streaming event format."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gwconfig.runtime.errors import ProviderResponseError, UnsupportedParameterError
from gwconfig.runtime.messages import ANTHROPIC, OPENAI, ProviderResult, Usage, WireBody
from gwconfig.runtime.providers.base import ProviderCall, StreamChunk
from gwconfig.runtime.providers.http import HTTPProvider, load_event
from gwconfig.secrets.origin import DEFAULT_BASES

DEFAULT_MAX_TOKENS = 4096
#: the OpenAI chat fields this provider carries to the Messages API (or that change nothing)
TRANSLATED = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
        "temperature", "top_p", "stop", "user", "metadata", "store", "service_tier",
    }
)  # fmt: skip


def refuse_untranslated(call: ProviderCall) -> None:
    """Raise :class:`UnsupportedParameterError` naming the first field of an OpenAI client's
    request that the Messages API cannot carry (never dropped silently)."""
    wire = call.wire
    if wire is None or wire.api != OPENAI:
        return
    body = wire.body
    for name, value in body.items():
        if name == "n" and value in (None, 1):
            continue
        if name not in TRANSLATED and value not in (None, False):
            raise UnsupportedParameterError(
                f"'{name}' cannot be sent to provider type 'anthropic' (the Messages API has "
                "no such parameter here)"
            )
    for i, m in enumerate(call.messages):
        if not isinstance(m.get("content"), str) or "tool_calls" in m or m.get("role") == "tool":
            raise UnsupportedParameterError(
                f"'messages[{i}]' (tool calls, tool results or non-text content parts) cannot "
                "be sent to provider type 'anthropic' yet"
            )


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

    def body(self, call: ProviderCall, stream: bool) -> dict[str, Any]:
        """The JSON request body: system prompt apart, ``max_tokens`` always set."""
        refuse_untranslated(call)
        system = [str(m.get("content", "")) for m in call.messages if m.get("role") == "system"]
        messages = [m for m in call.messages if m.get("role") != "system"]
        opts = call.options()
        opts.pop("presence_penalty", None)
        opts.pop("frequency_penalty", None)
        opts.pop("seed", None)
        opts.pop("response_format", None)
        if "stop" in opts:
            stop = opts.pop("stop")
            opts["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        max_tokens = opts.pop("max_tokens", None) or min(
            call.model.max_tokens or DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS
        )
        body: dict[str, Any] = {
            "model": call.model.model_id,
            "messages": messages,
            "max_tokens": max_tokens,
        }
        if system:
            body["system"] = "\n\n".join(system)
        body.update(opts)
        if stream:
            body["stream"] = True
        return body

    async def complete(self, call: ProviderCall) -> ProviderResult:
        """One message."""
        data = await self.post_json(
            self.url(call), self.body(call, False), self.headers(call), call
        )
        try:
            blocks = data["content"]
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProviderResponseError("reply has no content blocks") from exc
        usage = data.get("usage") or {}
        return ProviderResult(
            text,
            Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)),
            data.get("stop_reason"),
            data,
        )

    async def stream(self, call: ProviderCall) -> AsyncIterator[StreamChunk]:
        """A streamed message: message_start, content_block_delta..., message_delta, stop."""
        url, body, headers = self.url(call), self.body(call, True), self.headers(call)
        async with self.open_stream(url, body, headers, call) as resp:
            prompt_tokens = completion_tokens = 0
            finish: str | None = None
            stopped = False
            async for event_name, data in self.events(resp, call):
                event = load_event(data)
                if not isinstance(event, dict):
                    raise ProviderResponseError("a streamed event is not an object")
                kind = event.get("type", event_name)
                if kind == "content_block_delta":
                    text = (event.get("delta") or {}).get("text")
                    if text:
                        yield StreamChunk(text)
                elif kind == "message_start":
                    usage = (event.get("message") or {}).get("usage") or {}
                    prompt_tokens = int(usage.get("input_tokens") or 0)
                    completion_tokens = int(usage.get("output_tokens") or 0)
                elif kind == "message_delta":
                    usage = event.get("usage") or {}
                    completion_tokens = int(usage.get("output_tokens") or completion_tokens)
                    finish = (event.get("delta") or {}).get("stop_reason") or finish
                elif kind == "error":
                    raise self.stream_error(event.get("error") or event)
                elif kind == "message_stop":
                    stopped = True
                    break
            if not stopped and finish is None:  # cut off: the answer may be incomplete
                raise ProviderResponseError("the stream ended before message_stop")
            yield StreamChunk("", Usage(prompt_tokens, completion_tokens), finish)

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
