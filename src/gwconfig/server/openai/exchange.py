"""One request to ``/v1/chat/completions`` once it is parsed: answering it (plain or streamed),
its error, its metrics and its access-log line.

The upstream call (plain, or a stream up to its first chunk and then its relay) runs in a task
next to a task that waits for the client to go away; the first to finish cancels the other, so a
client that disconnects at any point cancels the upstream call (closing its connection).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from gwconfig.runtime.client import LLMGatewayClient
from gwconfig.runtime.errors import AmbiguousModelError, NoRouteError
from gwconfig.runtime.messages import OPENAI, LLMResponse, Usage
from gwconfig.runtime.providers.base import StreamChunk
from gwconfig.runtime.streaming import LLMStream
from gwconfig.server.auth import Caller
from gwconfig.server.disconnect import unless_gone
from gwconfig.server.metrics import Answered, Metrics, log_access
from gwconfig.server.openai.embeddings import EMBEDDINGS, embeddings_body
from gwconfig.server.openai.errors import WireError
from gwconfig.server.openai.limits import Tally
from gwconfig.server.openai.wire import (
    ChatRequest,
    ChunkWriter,
    completion_body,
    new_id,
    stream_error_event,
    wire_error,
)


async def _first(chunks: AsyncIterator[StreamChunk]) -> StreamChunk | None:
    """The first piece of a stream (None when it has none)."""
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return None


def _event(writer: ChunkWriter, chunk: StreamChunk) -> bytes:
    """The event(s) of one piece: the upstream's own (an OpenAI-shaped upstream's, relayed
    as they came, ``model`` rewritten by the provider), else tool-call deltas (with any text),
    or text."""
    if chunk.native is not None and chunk.api == OPENAI:
        return chunk.native
    if chunk.tool_calls:
        return writer.tool_calls(chunk.tool_calls, chunk.text)
    return writer.text(chunk.text)


CHAT = "/v1/chat/completions"
JSON_TYPE = (b"content-type", b"application/json")
_SSE = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def send_error(send: Send, error: WireError) -> None:
    """Answer ``error`` in OpenAI's shape."""
    headers = [JSON_TYPE, *((k.lower().encode(), v.encode()) for k, v in error.headers.items())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": error.body()})


def access(scope: Scope, caller: Any, status: int, start: float, **more: Any) -> None:
    """The access-log line of a request: method, path, status, time, token name, client
    address and ``more`` (model, provider, counts); never a prompt, a token or a key."""
    client = scope.get("client")
    log_access(
        method=scope["method"],
        path=scope["path"],
        status=status,
        ms=round((time.perf_counter() - start) * 1000.0, 3),
        token=caller.name if caller is not None else None,
        client=client[0] if client else None,
        **more,
    )


@dataclass(frozen=True, slots=True)
class Exchange:
    """A parsed chat request on its way to an answer."""

    scope: Scope
    send: Send
    caller: Caller
    req: ChatRequest
    client: LLMGatewayClient
    metrics: Metrics
    #: the configuration revision the request is answered with
    revision: int | None
    #: when the request arrived (``perf_counter``)
    start: float
    #: the path answered (chat completions or embeddings)
    endpoint: str = CHAT
    #: what became of the request, for its limits (answered, or a stream begun)
    tally: Tally | None = None
    #: headers every answer carries (``x-ratelimit-*``)
    extra: tuple[tuple[bytes, bytes], ...] = ()

    # -- outcomes ---------------------------------------------------------------------------------

    async def failed(self, exc: BaseException) -> None:
        """Answer the error the runtime raised (before any byte of the answer was sent)."""
        error = wire_error(exc)
        # counted and logged before the answer goes out: whoever reads the answer sees them
        self.metrics.failed(
            self.endpoint, error.status, self._label(exc), exc=exc, total=self._elapsed()
        )
        self._log(error.status)
        await send_error(self.send, error)

    def answered(self, response: LLMResponse, ttft: float | None = None) -> None:
        """Count a request answered in full."""
        if self.tally is not None:
            self.tally.response = response
        m = self.metrics
        m.answered(
            Answered(
                endpoint=self.endpoint, status=200, route=response.route,
                provider=response.provider_id,
                model=self.req.model, total=self._elapsed(), attempts=response.attempts,
                usage=response.usage, ttft=ttft,
            )
        )  # fmt: skip
        if len(response.attempts) > 1:
            m.cooldowns_entered(self.client.cooldowns.entered)
        usage = response.usage
        self._log(
            200,
            provider=response.provider_id,
            upstream_model=response.model_id,
            attempts=len(response.attempts),
            tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens,
        )

    def _elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _label(self, exc: BaseException | None = None) -> str:
        """The model as a metric label: ``""`` when the configuration does not know it (the
        runtime said so), else the name asked for (it resolved)."""
        if isinstance(exc, NoRouteError | AmbiguousModelError):
            return ""
        return self.req.model

    def _log(self, status: int, **more: Any) -> None:
        access(
            self.scope,
            self.caller,
            status,
            self.start,
            model=self.req.model,
            revision=self.revision,
            **more,
        )

    def _headers(self, provider: str, attempts: int) -> list[tuple[bytes, bytes]]:
        revision = self.revision
        return [
            (b"x-gwconfig-provider", provider.encode()),
            (b"x-gwconfig-attempts", str(attempts).encode()),
            (b"x-gwconfig-revision", str(revision).encode() if revision is not None else b""),
            *self.extra,
        ]

    # -- answers ----------------------------------------------------------------------------------

    def call(self) -> Coroutine[Any, Any, LLMResponse]:
        """The runtime call that answers the request (a completion, or embeddings)."""
        if self.endpoint == EMBEDDINGS:
            return self.client.embed(self.req.request)
        return self.client.generate(self.req.request)

    def answer_body(self, response: LLMResponse) -> bytes:
        """The JSON answer of a plain request."""
        if self.endpoint == EMBEDDINGS:
            return embeddings_body(response, self.req.model)
        return completion_body(response, self.req.model, new_id(), int(time.time()))

    async def plain(self, receive: Receive) -> None:
        """Send the request, answer it (:meth:`answer_body`); a client that goes away before the
        answer cancels the upstream call."""
        inflight = self.metrics.inflight
        inflight.inc()
        try:
            call = await unless_gone(self.call(), receive)
            if call.cancelled():
                self._gone()
                return
            response = call.result()
        except Exception as exc:
            await self.failed(exc)
            return
        finally:
            inflight.dec()
        body = self.answer_body(response)
        headers = [JSON_TYPE, *self._headers(response.provider_id, len(response.attempts))]
        self.answered(response)
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def streamed(self, receive: Receive) -> None:
        """Send the request, answer server-sent events; stop when the client goes away
        (before the first chunk or after it)."""
        stream = self.client.generate_stream(self.req.request)
        inflight = self.metrics.inflight
        inflight.inc()
        started: list[bool] = []
        try:
            try:
                work = await unless_gone(self._stream(stream, started), receive)
            finally:
                await stream.aclose()
            if work.cancelled():
                self._gone(200 if started else 499)  # 200: the status line went out already
        finally:
            inflight.dec()

    async def _stream(self, stream: LLMStream, started: list[bool]) -> None:
        """Up to the first chunk (an error still has its status), then the relay."""
        chunks = stream.events()
        try:
            first = await _first(chunks)
        except Exception as exc:
            await self.failed(exc)
            return
        ttft = self._elapsed()
        provider = (stream.target or "").partition("/")[0]
        headers = [*_SSE, *self._headers(provider, stream.attempts)]
        if self.tally is not None:
            self.tally.streamed = True
        started.append(True)
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._relay(stream, chunks, first, ttft)

    def _gone(self, status: int = 499) -> None:
        """Count (499, nginx's word for it) and log (``status``, the one sent if any) a request
        whose client went away."""
        self.metrics.failed(self.endpoint, 499, self._label(), total=self._elapsed())
        self._log(status, outcome="disconnected")

    async def _relay(
        self,
        stream: LLMStream,
        chunks: AsyncIterator[StreamChunk],
        first: StreamChunk | None,
        ttft: float,
    ) -> None:
        """Send the stream's events; an error after the first is an ``error`` event. The
        request is counted and logged before the last event goes out.

        A relayed stream (the first chunk is the upstream's own events) is sent as it came,
        role, finish and usage chunks included, then ``[DONE]``; else the events are built
        here (role first; finish, usage when asked, ``[DONE]`` last). A relayed piece that
        holds the finish reason is sent with what follows it (the usage chunk and ``[DONE]``
        come right after it): one write for the end of the answer."""
        send, writer = self.send, ChunkWriter(self.req.model)
        relayed = first is not None and first.native is not None and first.api == OPENAI
        usage_sent = relayed and first is not None and first.usage is not None
        held = b""  # a relayed finish, held back for what follows
        body = b"" if relayed else writer.role()
        if first is not None:
            body += _event(writer, first)
        if relayed and first is not None and first.finish_reason:
            held = body
        else:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        try:
            async for chunk in chunks:
                event = held + _event(writer, chunk)
                held = b""
                if chunk.native is not None:
                    usage_sent = usage_sent or chunk.usage is not None
                    if chunk.finish_reason:
                        held = event
                        continue
                await send({"type": "http.response.body", "body": event, "more_body": True})
        except Exception as exc:  # the upstream broke midway: no fallback any more
            self.metrics.failed(self.endpoint, 502, self._label(), total=self._elapsed())
            self._log(200, outcome="stream_error")
            error = stream_error_event(wire_error(exc))
            await send({"type": "http.response.body", "body": held + error})
            raise
        response = stream.response
        usage = response.usage if response is not None else Usage()
        finish = response.finish_reason if response is not None else None
        if relayed:  # an upstream that sent no usage chunk: the client asked for one, here it is
            asked = self.req.include_usage and not usage_sent
            tail = (writer.usage(usage) if asked else b"") + b"data: [DONE]\n\n"
        else:
            tail = writer.finish(finish, usage, self.req.include_usage)
        tail = held + tail
        if response is not None:
            self.answered(response, ttft)
        await send({"type": "http.response.body", "body": tail})
