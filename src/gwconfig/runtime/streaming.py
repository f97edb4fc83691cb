"""Streaming: ``LLMGatewayClient.generate_stream`` yields text chunks with the same routing."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from functools import partial
from typing import TYPE_CHECKING

from gwconfig.runtime.client import _perf, bounded
from gwconfig.runtime.config import Target
from gwconfig.runtime.errors import (
    AllTargetsFailedError,
    BadRequestError,
    DeadlineExceededError,
    ProviderError,
    ProviderResponseError,
    TargetFailure,
)
from gwconfig.runtime.models import Attempt, LLMRequest, LLMResponse, Usage
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall, StreamChunk
from gwconfig.runtime.scrub import scrub_error

if TYPE_CHECKING:
    from gwconfig.runtime.client import LLMGatewayClient


class LLMStream:
    """An async iterator of text chunks; ``response`` is filled in once the stream has ended."""

    def __init__(self, client: LLMGatewayClient, request: LLMRequest) -> None:
        self._client = client
        self._request = request
        self._chunks = self._run()
        self.response: LLMResponse | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._chunks

    async def aclose(self) -> None:
        """Stop early and release the connection."""
        await self._chunks.aclose()

    async def _open(
        self, provider: BaseProvider, call: ProviderCall
    ) -> tuple[AsyncIterator[StreamChunk], StreamChunk]:
        chunks = provider.stream(call)
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            raise ProviderResponseError("the stream ended before any data") from None
        except BaseException:
            await chunks.aclose()  # type: ignore[attr-defined]
            raise
        return chunks, first

    async def _run(self) -> AsyncGenerator[str, None]:
        client, request = self._client, self._request
        gen = client._gen
        gen.inflight += 1
        start = _perf()
        attempts: list[Attempt] = []
        try:
            identifier, route, targets = client._targets(gen, request)
            budget, deadline = client._deadline(request, targets)
            failures: list[TargetFailure] = []
            for target in targets:
                pc, model = target.provider, target.model
                before = len(attempts)
                try:
                    if failures and time.monotonic() >= deadline:
                        raise DeadlineExceededError("the request deadline has passed")
                    provider = client._provider(gen, pc)
                    call = client._call(request, target, provider, deadline)
                    op = partial(self._open, provider, call)
                    await client._throttle(pc, deadline)
                    t0 = _perf()
                    try:
                        if provider.enforces_deadline:
                            chunks, first = await op()
                        else:
                            chunks, first = await bounded(op(), deadline)
                    except ProviderError as exc:
                        (chunks, first), t0 = await client._with_retries(
                            provider, model, op, attempts, deadline, exc, t0
                        )
                except BadRequestError as exc:
                    client._record(request, target, None, start, attempts, "bad_request", str(exc))
                    raise
                except DeadlineExceededError as exc:
                    if len(attempts) > before:
                        client._cooldowns.failure(target.key, pc.settings)
                    raise client._deadline_error(
                        request, target, identifier, budget, start, attempts
                    ) from exc
                except ProviderError as exc:
                    client._cooldowns.failure(target.key, pc.settings)
                    reason = scrub_error(exc, pc.secrets)
                    failures.append(TargetFailure(target.key, reason, len(attempts) - before))
                    continue
                # committed to this target: errors from here on reach the caller
                attempts.append(Attempt(pc.provider_id, model.model_id, "ok", None, 0.0))
                if not provider.enforces_deadline:
                    chunks = _bounded_chunks(chunks, deadline)
                async for text in self._relay(chunks, first, target, route, start, attempts, t0):
                    yield text
                return
            error = AllTargetsFailedError(identifier, failures)
            client._record(request, targets[-1], None, start, attempts, "failed", str(error))
            raise error
        finally:
            client._release(gen)

    async def _relay(
        self,
        chunks: AsyncIterator[StreamChunk],
        first: StreamChunk,
        target: Target,
        route: str | None,
        start: float,
        attempts: list[Attempt],
        t0: float,
    ) -> AsyncIterator[str]:
        client, request = self._client, self._request
        parts: list[str] = []
        usage, finish = first.usage, first.finish_reason
        try:
            if first.text:
                parts.append(first.text)
                yield first.text
            async for chunk in chunks:
                if chunk.text:
                    parts.append(chunk.text)
                    yield chunk.text
                if chunk.usage is not None:
                    usage = chunk.usage
                finish = chunk.finish_reason or finish
        except ProviderError as exc:
            client._cooldowns.failure(target.key, target.provider.settings)
            error = scrub_error(exc, target.provider.secrets)
            deadline = isinstance(exc, DeadlineExceededError)
            outcome = "deadline" if deadline else "stream_error"
            client._record(request, target, usage, start, attempts, outcome, error)
            raise
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        client._cooldowns.success(target.key)
        now = _perf()
        pc, model = target.provider, target.model
        attempts[-1] = Attempt(pc.provider_id, model.model_id, "ok", None, (now - t0) * 1000.0)
        final_usage = usage or Usage()
        client._charge(pc, final_usage)
        self.response = LLMResponse(
            "".join(parts),
            pc.provider_id,
            model.model_id,
            final_usage,
            (now - start) * 1000.0,
            tuple(attempts),
            finish,
            route,
            request.initial_context.session_id,
        )
        client._record(request, target, final_usage, start, attempts, "ok", None)


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
