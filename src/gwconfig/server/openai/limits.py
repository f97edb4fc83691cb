"""The limits of ``/v1`` requests: the token's and its consumer's request limits, the
consumer's token limit and budget (:mod:`gwconfig.shared`), answered in OpenAI's shape.

One :class:`LimitGuard` per worker process. With a Redis URL the counters, the providers'
``rate_limit_rpm`` and the cooldowns are shared by every process naming it; without one each
worker keeps its share.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gwconfig.errors import GwconfigError
from gwconfig.runtime.client import LLMGatewayClient
from gwconfig.runtime.config.consumers import ConsumerPolicy
from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.runtime.config.shared_state import SharedStatePolicy
from gwconfig.runtime.messages import LLMResponse
from gwconfig.server.answers import retry_after
from gwconfig.server.auth import Caller
from gwconfig.server.metrics import Metrics
from gwconfig.server.openai.errors import WireError
from gwconfig.server.openai.wire import ChatRequest, wire_error
from gwconfig.shared.breaker import STATE_VALUES
from gwconfig.shared.cost import answered_cost, output_bound, prompt_bound, targets_of, worst_case
from gwconfig.shared.ledger import Ledger
from gwconfig.shared.limits import (
    BUDGET,
    UNAVAILABLE,
    Admission,
    Ask,
    Decision,
    Refused,
    SharedLimits,
)

log = logging.getLogger("gwconfig.server")
#: how long past the request deadline a reservation outlives a replica that crashed
RESERVATION_MARGIN_SECONDS = 60.0


def consumers_of(config: GatewayConfig) -> Mapping[str, ConsumerPolicy]:
    """The consumers of a configuration (``GatewayConfig.consumers``)."""
    return config.consumers


def refusal(decision: Decision) -> WireError:
    """A refused request in OpenAI's shape: 429 ``rate_limit_exceeded`` (with ``Retry-After``
    and ``x-ratelimit-*``), 429 ``insufficient_quota``, or 503 when the shared state is
    unavailable."""
    if decision.outcome == BUDGET:
        return WireError(429, decision.message, "insufficient_quota", "insufficient_quota")
    headers = {**decision.headers, **retry_after(decision.retry_after)}
    if decision.outcome == UNAVAILABLE:
        return WireError(
            503, decision.message, "api_error", "shared_state_unavailable", headers=headers
        )
    return WireError(
        429,
        f"{decision.message} (next request in {headers['retry-after']}s)",
        "rate_limit_error",
        "rate_limit_exceeded",
        headers=headers,
    )


@dataclass(slots=True)
class Tally:
    """What became of an admitted request: its answer, or whether a stream had begun."""

    response: LLMResponse | None = None
    streamed: bool = False


class LimitGuard:
    """The limits of one worker process, over Redis or this process's counters."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        redis_url: str | None = None,
        redis_timeout: float = 0.05,
        workers: int = 1,
        ledger: Ledger | None = None,
        consumers: Callable[[GatewayConfig], Mapping[str, ConsumerPolicy]] = consumers_of,
    ) -> None:
        self.metrics = metrics
        self.consumers = consumers
        self.backend: Any = None
        self.cooldowns: Any = None
        if redis_url is not None:
            from gwconfig.shared.cooldowns import RedisCooldowns
            from gwconfig.shared.redis_backend import RedisBackend

            self.backend = RedisBackend(
                redis_url, timeout=redis_timeout, on_error=metrics.shared_state_errors.inc
            )
            self.cooldowns = RedisCooldowns(self.backend)
        decisions = metrics.limit_decisions
        self.limits = SharedLimits(
            self.backend, ledger=ledger, workers=workers,
            on_decision=lambda outcome: decisions.labels(outcome).inc(),
        )  # fmt: skip
        self._policy: SharedStatePolicy | None = None
        self._warming: asyncio.Task[None] | None = None

    @property
    def mode(self) -> str:
        """``redis`` or ``per-process``."""
        return self.limits.mode

    def describe(self) -> str:
        """The start-up line: where the limits are kept (no password)."""
        if self.backend is None:
            return "shared state: per-process (limits and budgets are counted in each worker)"
        return f"shared state: redis at {self.backend.url} (limits hold across every replica)"

    def start(self, client: LLMGatewayClient) -> None:
        """Share the providers' request windows and the cooldowns (with Redis)."""
        log.info(self.describe())
        if self.backend is not None:
            client.throttle.shared = self
            client.cooldowns.shared = self.cooldowns
            self.cooldowns.start()
            self._warming = asyncio.get_running_loop().create_task(self.backend.warm())

    async def aclose(self) -> None:
        """Stop following cooldowns, close Redis."""
        if self._warming is not None:
            await self._warming
        if self.cooldowns is not None:
            await self.cooldowns.aclose()
        await self.limits.aclose()

    def breaker_state(self) -> str | None:
        """The Redis breaker's state (None: per-process)."""
        return None if self.backend is None else str(self.backend.breaker.state)

    def observe(self) -> None:
        """Set the breaker gauge (before a scrape)."""
        state = self.breaker_state()
        if state is not None:
            self.metrics.shared_state_breaker.set(STATE_VALUES[state])

    def _follow(self, config: GatewayConfig) -> None:
        """Apply the configuration's ``shared_state`` policy (when it changed)."""
        policy: SharedStatePolicy = getattr(config, "shared_state", None) or SharedStatePolicy()
        if policy is self._policy:
            return
        self._policy = self.limits.policy = policy
        if self.backend is not None:
            self.backend.breaker.failures = policy.breaker_failures
            self.backend.breaker.cooloff = policy.breaker_cooloff_seconds
            self.cooldowns.refresh = policy.cooldown_refresh_seconds

    async def admit(self, kind: str, name: str, limit: int) -> float:
        """A provider's shared request window (:class:`gwconfig.runtime.throttle.SharedWindow`):
        0 when admitted, else seconds to wait."""
        try:
            hit = await self.limits.hit(kind, name, limit)
        except Refused as exc:
            return max(exc.decision.retry_after, 1.0)
        return 0.0 if hit.result.admitted else max(hit.result.reset_ms / 1000, 0.001)

    async def decide(
        self,
        caller: Caller,
        config: GatewayConfig,
        model: str,
        max_tokens: int | None,
        body_bytes: int,
    ) -> Admission | None:
        """Admit a request for ``model`` (None: it has no limits), API-neutral: a refusal is
        :class:`~gwconfig.shared.limits.Refused` with its decision (each API answers it in its
        own shape); a model that does not resolve raises the runtime's error."""
        self._follow(config)
        consumer = self.consumers(config).get(caller.consumer) if caller.consumer else None
        if caller.rpm is None and consumer is None:
            return None
        ask = Ask(token=caller.name, token_rpm=caller.rpm, consumer=consumer)
        if consumer is not None and (consumer.tpm is not None or consumer.budget_usd is not None):
            targets = targets_of(config, model)
            prompt = prompt_bound(body_bytes)
            output = output_bound(max_tokens, targets)
            deadline = max((t.provider.settings.deadline_seconds for t in targets), default=0)
            ask = Ask(
                token=caller.name,
                token_rpm=caller.rpm,
                consumer=consumer,
                tokens=prompt + output,
                cost_usd=worst_case(targets, prompt, output),
                expiry_seconds=deadline + RESERVATION_MARGIN_SECONDS,
            )
        return await self.limits.admit(ask)

    async def check(
        self, caller: Caller, config: GatewayConfig, req: ChatRequest, body_bytes: int
    ) -> Admission | None:
        """:meth:`decide` for a ``/v1`` request: a refusal is its :class:`WireError`."""
        try:
            return await self.decide(
                caller, config, req.model, req.request.config.max_tokens, body_bytes
            )
        except Refused as exc:
            raise refusal(exc.decision) from None
        except GwconfigError as exc:  # an unknown model: the runtime's 404, not a limit
            raise wire_error(exc) from None

    async def finish(self, admission: Admission, tally: Tally, config: GatewayConfig) -> None:
        """Settle with the real usage, or release: an answer is charged its usage at its
        model's price (the reservation when it reported none); a stream cut after it began is
        charged its reservation (the provider bills what it generated); anything else is
        released."""
        response = tally.response
        if response is not None:
            usage = response.usage
            if usage.total_tokens == 0:
                return await admission.settle(None, None)
            cost = answered_cost(config, response.provider_id, response.model_id, usage)
            return await admission.settle(usage.total_tokens, cost)
        if tally.streamed:
            return await admission.settle(None, None)
        await admission.release()

    async def run(
        self,
        exchange: Any,
        receive: Any,
        admission: Admission | None,
        tally: Tally | None,
        config: GatewayConfig,
    ) -> None:
        """Answer ``exchange`` (plain or streamed), then settle or release the request's
        reservation whatever happened (shielded from the client going away)."""
        try:
            if exchange.req.stream:
                await exchange.streamed(receive)
            else:
                await exchange.plain(receive)
        finally:
            if admission is not None and tally is not None:
                await asyncio.shield(self.finish(admission, tally, config))


def settling(admission: Admission | None) -> Tally | None:
    """A :class:`Tally` for a request holding a reservation (None: nothing to settle; a
    request window has nothing to give back)."""
    return Tally() if admission is not None and admission.hold is not None else None


def admission_headers(admission: Admission | None) -> tuple[tuple[bytes, bytes], ...]:
    """The ``x-ratelimit-*`` headers of an admitted request, encoded for ASGI."""
    if admission is None:
        return ()
    return tuple((k.encode(), v.encode()) for k, v in admission.headers.items())
