"""The ``mock`` provider: deterministic replies, configurable latency and failures, no network.

Knobs come from the model's ``parameters`` (falling back to the provider's connection parameters):
``reply`` (fixed text), ``echo`` (reply with the prompt), ``latency_ms``, ``fail_times`` (the
first N calls fail), ``fail_rate`` (0..1, from a generator seeded with ``seed``), ``fail_status``
(default 503), ``retry_after`` (seconds, sent with failures) and ``chunk_size`` (words per
streamed chunk).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gwconfig.runtime.config.gateway import ProviderConfig
from gwconfig.runtime.errors import (
    BadRequestError,
    DeadlineExceededError,
    ProviderError,
    ProviderUnavailableError,
)
from gwconfig.runtime.messages import ProviderResult, Usage
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall, StreamChunk


def _count_tokens(text: str) -> int:
    return len(text.split())


class MockProvider(BaseProvider):
    """Answers from configuration alone; used for local runs, demos and benchmarks."""

    provider_type = "mock"
    requires_api_key = False
    enforces_deadline = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.calls: dict[str, int] = {}
        self._rngs: dict[str, random.Random] = {}

    def _knob(self, params: Mapping[str, Any], name: str, default: Any = None) -> Any:
        if name in params:
            return params[name]
        return self.config.params.get(name, default)

    async def _before(self, call: ProviderCall) -> Mapping[str, Any]:
        params = call.model.parameters
        mid = call.model.model_id
        n = self.calls.get(mid, 0) + 1
        self.calls[mid] = n
        latency = self._knob(params, "latency_ms")
        if latency:
            wait = float(latency) / 1000.0
            if call.deadline is not None and time.monotonic() + wait >= call.deadline:
                await asyncio.sleep(max(call.deadline - time.monotonic(), 0.0))
                raise DeadlineExceededError("the request deadline was reached (mock latency)")
            await asyncio.sleep(wait)
        fail = n <= int(self._knob(params, "fail_times", 0) or 0)
        rate = self._knob(params, "fail_rate")
        if not fail and rate:
            rng = self._rngs.get(mid)
            if rng is None:
                rng = self._rngs[mid] = random.Random(self._knob(params, "seed", 0))
            fail = rng.random() < float(rate)
        if fail:
            status = int(self._knob(params, "fail_status", 503))
            retry_after = self._knob(params, "retry_after")
            message = f"mock failure (HTTP {status})"
            if status in (400, 413, 422):
                raise BadRequestError(message, status=status)
            if status in self.config.settings.retry_on_status:
                raise ProviderUnavailableError(
                    message,
                    status=status,
                    retry_after=float(retry_after) if retry_after is not None else None,
                )
            raise ProviderError(message, status=status)
        return params

    def _reply(self, params: Mapping[str, Any], call: ProviderCall) -> str:
        reply = self._knob(params, "reply")
        if reply is not None:
            return str(reply)
        prompt = call.prompt_text()
        if self._knob(params, "echo", False):
            return prompt
        return f"[mock {self.config.provider_id}/{call.model.model_id}] You said: {prompt}"

    async def complete(self, call: ProviderCall) -> ProviderResult:
        """A deterministic reply (after the configured latency, or a configured failure)."""
        params = await self._before(call)
        text = self._reply(params, call)
        usage = Usage(_count_tokens(call.prompt_text()), _count_tokens(text))
        return ProviderResult(text, usage, "stop")

    async def stream(self, call: ProviderCall) -> AsyncIterator[StreamChunk]:
        """The same reply in chunks of ``chunk_size`` words."""
        params = await self._before(call)
        text = self._reply(params, call)
        size = max(int(self._knob(params, "chunk_size", 1) or 1), 1)
        words = text.split(" ")
        for i in range(0, len(words), size):
            piece = " ".join(words[i : i + size])
            yield StreamChunk(piece if i + size >= len(words) else piece + " ")
            await asyncio.sleep(0)
        yield StreamChunk("", Usage(_count_tokens(call.prompt_text()), _count_tokens(text)), "stop")
