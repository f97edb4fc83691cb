"""Streaming: ``LLMGatewayClient.generate_stream`` yields text chunks with the same routing."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

from gwconfig.runtime.client import _perf
from gwconfig.runtime.config import Target
from gwconfig.runtime.errors import (
    AllTargetsFailedError,
    BadRequestError,
    ProviderError,
    TargetFailure,
)
from gwconfig.runtime.models import Attempt, LLMRequest, LLMResponse, Usage
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall, StreamChunk
from gwconfig.runtime.resilience import backoff_delay

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
            first = StreamChunk("", Usage())
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
            failures: list[TargetFailure] = []
            for target in targets:
                pc, model = target.provider, target.model
                n = 0
                try:
                    provider = client._provider(gen, pc)
                    call = client._call(request, target, provider)
                    while True:
                        await client._throttle(pc)
                        n += 1
                        t0 = _perf()
                        try:
                            chunks, first = await self._open(provider, call)
                        except ProviderError as exc:
                            attempts.append(
                                Attempt(pc.provider_id, model.model_id, type(exc).__name__,
                                        str(exc), (_perf() - t0) * 1000.0)
                            )  # fmt: skip
                            if isinstance(exc, BadRequestError) or client._give_up(
                                exc, pc.settings, n
                            ):
                                raise
                            rng = client._rng if pc.settings.jitter else None
                            await client._sleep(backoff_delay(pc.settings, n, exc.retry_after, rng))
                            continue
                        break
                except BadRequestError as exc:
                    client._record(request, target, None, start, attempts, "bad_request", str(exc))
                    raise
                except ProviderError as exc:
                    client._cooldowns.failure(target.key, pc.settings)
                    failures.append(TargetFailure(target.key, str(exc), n))
                    continue
                # committed to this target: errors from here on reach the caller
                attempts.append(Attempt(pc.provider_id, model.model_id, "ok", None, 0.0))
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
            client._record(request, target, usage, start, attempts, "stream_error", str(exc))
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
