"""Streaming: ``LLMGatewayClient.generate_stream`` yields text chunks with the same routing.

The routing loop (:mod:`gwconfig.runtime.routing`) opens the stream on each target in turn,
up to its first chunk; once a target has sent one, the stream is committed to it and a later
failure reaches the caller (text already yielded cannot be taken back). Chunks that carry the
upstream's own events (``StreamChunk.native``, for a client of the upstream's API) are passed
on even when they hold no text.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from gwconfig.runtime.errors import ProviderError, ProviderResponseError
from gwconfig.runtime.generation import Generations
from gwconfig.runtime.messages import LLMRequest, LLMResponse, Usage
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall, StreamChunk
from gwconfig.runtime.routing import Routed, Router, bounded

Opened = tuple[AsyncIterator[StreamChunk], StreamChunk]


class LLMStream:
    """An async iterator of text chunks; ``response`` is filled in once the stream has ended."""

    def __init__(self, router: Router, generations: Generations, request: LLMRequest) -> None:
        self._router = router
        self._generations = generations
        self._request = request
        self._chunks = self._run()
        self.response: LLMResponse | None = None
        #: once the first chunk has come: the ``provider/model`` answering, and the attempts so far
        self.target: str | None = None
        self.attempts = 0

    def __aiter__(self) -> AsyncIterator[str]:
        return self._texts()

    def events(self) -> AsyncIterator[StreamChunk]:
        """The stream as chunks: text and tool-call deltas (iterate this or the text, not both)."""
        return self._chunks

    async def _texts(self) -> AsyncGenerator[str, None]:
        try:
            async for chunk in self._chunks:
                if chunk.text:
                    yield chunk.text
        finally:
            await self._chunks.aclose()

    async def aclose(self) -> None:
        """Stop early and release the connection."""
        await self._chunks.aclose()

    async def _run(self) -> AsyncGenerator[StreamChunk, None]:
        # the generation is pinned when iteration starts, as a plain request pins it when sent
        gen = self._generations.acquire()
        try:
            routed = await self._router.route(gen, self._request, open_stream)
            self.target = routed.target.key
            self.attempts = len(routed.attempts) + 1
            chunks, first = routed.result
            if not routed.provider.enforces_deadline:
                chunks = _bounded_chunks(chunks, routed.deadline)
            async for chunk in self._relay(routed, chunks, first):
                yield chunk
        finally:
            self._generations.release(gen)

    async def _relay(
        self, routed: Routed[Opened], chunks: AsyncIterator[StreamChunk], first: StreamChunk
    ) -> AsyncIterator[StreamChunk]:
        parts: list[str] = []
        usage, finish = first.usage, first.finish_reason
        try:
            # a chunk with an upstream event to relay as it came (``native``) is passed on too
            if first.text or first.tool_calls or first.native is not None:
                parts.append(first.text)
                yield first
            async for chunk in chunks:
                if chunk.text or chunk.tool_calls or chunk.native is not None:
                    parts.append(chunk.text)
                    yield chunk
                if chunk.usage is not None:
                    usage = chunk.usage
                finish = chunk.finish_reason or finish
        except ProviderError as exc:
            self._router.fail_midway(routed, exc, usage)
            raise
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        self.response = self._router.succeed(routed, "".join(parts), usage or Usage(), finish)


async def open_stream(provider: BaseProvider, call: ProviderCall) -> Opened:
    """Open ``provider``'s stream for ``call`` up to its first chunk (the routing loop's call).

    A stream that ends before any data is a failed attempt like any other.
    """
    chunks = provider.stream(call)
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        raise ProviderResponseError("the stream ended before any data") from None
    except BaseException:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise
    return chunks, first


async def _bounded_chunks(
    chunks: AsyncIterator[StreamChunk], deadline: float
) -> AsyncIterator[StreamChunk]:
    """``chunks``, each awaited until the deadline (for providers that do not enforce it)."""
    try:
        while True:
            try:
                chunk = await bounded(chunks.__anext__(), deadline)
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
