"""Client-side rate limits: ``rate_limit_rpm`` and ``rate_limit_tpm`` per provider."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gwconfig.runtime.config.gateway import ProviderConfig
from gwconfig.runtime.errors import DeadlineExceededError, ProviderUnavailableError
from gwconfig.runtime.messages import Usage
from gwconfig.runtime.resilience import RateLimiter, TokenLimiter


def _room(limiter: RateLimiter | TokenLimiter, pc: ProviderConfig, limit: str, next_: str) -> float:
    """How long until ``limiter`` has room; a failure of this target (not retried) when that is
    longer than ``backoff_max_seconds``."""
    wait = limiter.delay(time.monotonic())
    if wait > pc.settings.backoff_max_seconds:
        seconds = math.ceil(wait)
        raise ProviderUnavailableError(
            f"rate limit of {limit} reached ({next_} in {seconds}s)",
            status=429,
            retry_after=seconds,
            retryable=False,
        )
    return wait


class SharedWindow(Protocol):
    """A request window every replica shares (``gwconfig.shared``, with Redis)."""

    async def admit(self, kind: str, name: str, limit: int) -> float:
        """0 when a request of ``name`` is admitted now (and counted), else seconds to wait."""


class Throttle:
    """The request and token windows of every provider a client calls.

    With ``shared`` set, ``rate_limit_rpm`` is counted in the window every replica shares;
    ``rate_limit_tpm`` stays per process.
    """

    __slots__ = ("_limiters", "_sleep", "_token_limiters", "shared")

    def __init__(self, sleep: Callable[[float], Awaitable[Any]]) -> None:
        self._sleep = sleep
        self._limiters: dict[str, RateLimiter] = {}
        self._token_limiters: dict[str, TokenLimiter] = {}
        self.shared: SharedWindow | None = None

    async def _shared_wait(self, pc: ProviderConfig, rpm: int, deadline: float) -> None:
        """Wait for a place in the shared window of ``pc`` (as long as the settings allow)."""
        assert self.shared is not None
        while (wait := await self.shared.admit("p", pc.provider_id, rpm)) > 0:
            if wait > pc.settings.backoff_max_seconds:
                seconds = math.ceil(wait)
                raise ProviderUnavailableError(
                    f"rate limit of {rpm} requests/minute reached (next slot in {seconds}s)",
                    status=429,
                    retry_after=seconds,
                    retryable=False,
                )
            if time.monotonic() + wait >= deadline:
                raise DeadlineExceededError("the request deadline comes before the rate limit")
            await self._sleep(wait)

    async def wait(self, pc: ProviderConfig, deadline: float) -> None:
        """Honour ``rate_limit_rpm`` and ``rate_limit_tpm``: wait for room, or fail this target
        when the wait would be longer than ``backoff_max_seconds``."""
        rpm, tpm = pc.settings.rate_limit_rpm, pc.settings.rate_limit_tpm
        if rpm is None and tpm is None:
            return
        if rpm is not None and self.shared is not None:
            if tpm is not None:
                wait = _room(self._token_limiter(pc, tpm), pc, f"{tpm} tokens/minute", "room")
                if wait > 0:
                    await self._sleep(wait)
            return await self._shared_wait(pc, rpm, deadline)
        waits: list[float] = []
        if tpm is not None:
            tokens = self._token_limiter(pc, tpm)
            waits.append(_room(tokens, pc, f"{tpm} tokens/minute", "room again"))
        limiter = None
        if rpm is not None:
            limiter = self._limiters.get(pc.provider_id)
            if limiter is None or limiter.rpm != rpm:
                limiter = self._limiters[pc.provider_id] = RateLimiter(rpm)
            waits.append(_room(limiter, pc, f"{rpm} requests/minute", "next slot"))
        if max(waits) > 0:
            if time.monotonic() + max(waits) >= deadline:
                raise DeadlineExceededError("the request deadline comes before the rate limit")
            await self._sleep(max(waits))
        if limiter is not None:
            limiter.take(time.monotonic())

    def charge(self, pc: ProviderConfig, usage: Usage | None) -> None:
        """Count a finished request's tokens against ``rate_limit_tpm``."""
        tpm = pc.settings.rate_limit_tpm
        if tpm is not None and usage is not None:
            self._token_limiter(pc, tpm).add(time.monotonic(), usage.total_tokens)

    def _token_limiter(self, pc: ProviderConfig, tpm: int) -> TokenLimiter:
        limiter = self._token_limiters.get(pc.provider_id)
        if limiter is None or limiter.tpm != tpm:
            limiter = self._token_limiters[pc.provider_id] = TokenLimiter(tpm)
        return limiter
