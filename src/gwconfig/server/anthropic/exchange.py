"""One Messages API request once it is parsed: the chat path's :class:`Exchange` (metrics,
access log, disconnect cancellation, stream limits) answering in Anthropic's format."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from gwconfig.runtime.messages import LLMResponse, Usage
from gwconfig.runtime.providers.base import StreamChunk
from gwconfig.runtime.streaming import LLMStream
from gwconfig.server.anthropic.answers import EventWriter, count_body, message_body
from gwconfig.server.anthropic.errors import error_event, send_error
from gwconfig.server.anthropic.wire import COUNT_TOKENS
from gwconfig.server.openai.exchange import Exchange
from gwconfig.server.openai.wire import wire_error


@dataclass(frozen=True, slots=True)
class MessagesExchange(Exchange):
    """A parsed Messages request on its way to an answer (``endpoint``: the path answered)."""

    async def failed(self, exc: BaseException) -> None:
        """Answer the error the runtime raised, in Anthropic's shape."""
        error = wire_error(exc)
        self.metrics.failed(
            self.endpoint, error.status, self._label(exc), exc=exc, total=self._elapsed()
        )
        self._log(error.status)
        await send_error(self.send, error)

    def call(self) -> Coroutine[Any, Any, LLMResponse]:
        """A message, or a token count."""
        if self.endpoint == COUNT_TOKENS:
            return self.client.count_tokens(self.req.request)
        return self.client.generate(self.req.request)

    def answer_body(self, response: LLMResponse) -> bytes:
        """The ``message`` (or the token count) answering for the model asked for."""
        if self.endpoint == COUNT_TOKENS:
            return count_body(response)
        return message_body(response, self.req.model)

    async def _relay(
        self,
        stream: LLMStream,
        chunks: AsyncIterator[StreamChunk],
        first: StreamChunk | None,
        ttft: float,
    ) -> None:
        """Send the stream's events (an Anthropic upstream's relayed, any other's built); an
        error after the first is an ``error`` event. Counted and logged before the last event."""
        send, writer = self.send, EventWriter(self.req.model)
        body = writer.chunk(first) if first is not None else b""
        await send({"type": "http.response.body", "body": body, "more_body": True})
        try:
            async for chunk in chunks:
                event = writer.chunk(chunk)
                await send({"type": "http.response.body", "body": event, "more_body": True})
        except Exception as exc:  # the upstream broke midway: no fallback any more
            self.metrics.failed(self.endpoint, 502, self._label(), total=self._elapsed())
            self._log(200, outcome="stream_error")
            await send({"type": "http.response.body", "body": error_event(wire_error(exc))})
            raise
        response = stream.response
        usage = response.usage if response is not None else Usage()
        tail = writer.finish(response.finish_reason if response is not None else None, usage)
        if response is not None:
            self.answered(response, ttft)
        await send({"type": "http.response.body", "body": tail})
