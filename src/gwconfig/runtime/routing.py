"""The one routing loop: a request's walk over its targets, used by plain and streaming calls.

For each target in route order (cooling targets skipped while others are ready): throttle to
the provider's rate limits, call, retry retryable errors with backoff, put a failing target in
cooldown and fall back to the next, stop at the request deadline, and record usage with every
error message scrubbed of the provider's secrets. What "call" means is the caller's: one
completion for ``generate``, opening the stream up to its first chunk for ``generate_stream``
(so a stream falls back only before its first chunk; what happens after is the stream's).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from gwconfig.pricing import cost_usd
from gwconfig.runtime.config.gateway import ProviderConfig, RequestSettings, Target
from gwconfig.runtime.config.table import ModelConfig
from gwconfig.runtime.errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    DeadlineExceededError,
    KeyOriginMismatchError,
    ProviderError,
    TargetFailure,
    UnsupportedParameterError,
    count_attempts,
)
from gwconfig.runtime.generation import Generation
from gwconfig.runtime.messages import Attempt, LLMRequest, LLMResponse, Usage, WireBody
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall
from gwconfig.runtime.resilience import CooldownTracker, backoff_delay, order_targets
from gwconfig.runtime.scrub import may_hold, scrub_error, scrub_tree
from gwconfig.runtime.throttle import Throttle

if TYPE_CHECKING:
    from gwconfig.runtime.usage import UsageRecorder

_perf = time.perf_counter
_T = TypeVar("_T")

#: One call to a target: a completion, or a stream opened up to its first chunk.
Operation = Callable[[BaseProvider, ProviderCall], Awaitable[_T]]


@dataclass(frozen=True, slots=True)
class Routed(Generic[_T]):
    """The target that answered, what its call returned, and the request's record so far."""

    request: LLMRequest
    target: Target
    route: str | None
    provider: BaseProvider
    #: when the request's deadline passes (``time.monotonic()``)
    deadline: float
    #: when the request started and when the answering attempt started (``perf_counter``)
    start: float
    t0: float
    #: the failed attempts before this answer (scrubbed)
    attempts: list[Attempt]
    result: _T


class Router:
    """Routes requests over a generation's targets; holds the cooldown and rate-limit state."""

    __slots__ = ("cooldowns", "record_prompts", "rng", "sleep", "throttle", "usage")

    def __init__(
        self,
        *,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[Any]],
        usage: UsageRecorder | None,
        record_prompts: bool,
    ) -> None:
        self.cooldowns = CooldownTracker()
        self.throttle = Throttle(sleep)
        self.rng = rng
        self.sleep = sleep
        self.usage = usage
        self.record_prompts = record_prompts

    async def route(self, gen: Generation, request: LLMRequest, op: Operation[_T]) -> Routed[_T]:
        """Run ``op`` on ``request``'s targets until one answers; raise when none does.

        Raises BadRequestError (no fallback: the request itself is wrong), DeadlineExceededError
        or AllTargetsFailedError, each with usage recorded.
        """
        start = _perf()
        attempts: list[Attempt] = []
        identifier, route, targets = self.targets(gen, request)
        budget, deadline = self.deadline(request, targets)
        failures: list[TargetFailure] = []
        for target in targets:
            pc = target.provider
            before = len(attempts)
            try:
                if failures and time.monotonic() >= deadline:
                    raise DeadlineExceededError("the request deadline has passed")
                provider = gen.provider(pc)
                call = self.call(gen, request, target, provider, deadline)
                await self.throttle.wait(pc, deadline)
                # the first attempt inline: a request answered at once pays for no retry loop
                t0 = _perf()
                try:
                    if provider.enforces_deadline:
                        result = await op(provider, call)
                    else:
                        result = await bounded(op(provider, call), deadline)
                except ProviderError as exc:
                    result, t0 = await self._retry(
                        provider, call, target.model, op, attempts, deadline, exc, t0
                    )
            except BadRequestError as exc:
                self.record(request, target, None, start, attempts, "bad_request", str(exc))
                raise
            except DeadlineExceededError as exc:
                if len(attempts) > before:
                    self.cooldowns.failure(target.key, pc.settings)
                raise self._deadline_error(
                    request, target, identifier, budget, start, attempts
                ) from exc
            except ProviderError as exc:
                if exc.code is None:  # not the upstream's fault: no cooldown
                    self.cooldowns.failure(target.key, pc.settings)
                reason = scrub_error(exc, pc.secrets)
                failures.append(
                    TargetFailure(
                        target.key,
                        reason,
                        len(attempts) - before,
                        exc.status,
                        code=exc.code,
                        retry_after=exc.retry_after,
                    )
                )
                continue
            return Routed(
                request=request, target=target, route=route, provider=provider,
                deadline=deadline, start=start, t0=t0, attempts=attempts, result=result,
            )  # fmt: skip
        error = AllTargetsFailedError(identifier, failures)
        self.record(request, targets[-1], None, start, attempts, "failed", str(error))
        raise error

    def succeed(
        self,
        routed: Routed[Any],
        text: str,
        usage: Usage,
        finish_reason: str | None,
        raw: Any = None,
        tool_calls: tuple[Any, ...] = (),
        wire: WireBody | None = None,
    ) -> LLMResponse:
        """The answer once ``routed``'s target has delivered all of it (usage recorded), with
        any secret of the provider an upstream echoed in it masked."""
        target, attempts = routed.target, routed.attempts
        pc = target.provider
        scrubber = pc.secrets.scrubber
        body = wire.body if wire is not None else None
        if may_hold(scrubber, text, tool_calls, body, raw):  # an upstream echoed a secret
            text, tool_calls, raw = scrub_tree((text, tool_calls, raw), scrubber)
            if wire is not None:
                wire = WireBody(wire.api, scrub_tree(wire.body, scrubber))
        self.cooldowns.success(target.key)
        self.throttle.charge(pc, usage)
        now = _perf()
        model_id = target.model.model_id
        attempts.append(Attempt(pc.provider_id, model_id, "ok", None, (now - routed.t0) * 1000.0))
        request = routed.request
        response = LLMResponse(
            text,
            pc.provider_id,
            model_id,
            usage,
            (now - routed.start) * 1000.0,
            tuple(attempts),
            finish_reason,
            routed.route,
            request.initial_context.session_id,
            raw,
            tool_calls,
            wire,
        )
        if self.usage is not None:
            self.record(request, target, usage, routed.start, attempts, "ok", None)
        return response

    def fail_midway(self, routed: Routed[Any], exc: ProviderError, usage: Usage | None) -> None:
        """``routed``'s target failed after it began to answer (a stream broke): no fallback
        is possible any more; count the failure against the target and record it."""
        target = routed.target
        pc = target.provider
        self.cooldowns.failure(target.key, pc.settings)
        attempts = routed.attempts
        # the answering attempt counts in the record, as "ok" up to where the answer began
        attempts.append(Attempt(pc.provider_id, target.model.model_id, "ok", None, 0.0))
        error = scrub_error(exc, pc.secrets)
        outcome = "deadline" if isinstance(exc, DeadlineExceededError) else "stream_error"
        self.record(routed.request, target, usage, routed.start, attempts, outcome, error)

    def targets(self, gen: Generation, request: LLMRequest) -> tuple[str, str | None, list[Target]]:
        """The model identifier asked for, the route taken, and the targets in the order to try."""
        cfg = request.config
        res = gen.config.resolve(cfg.model_identifier, cfg.provider_id)
        targets = order_targets(res.groups, self.rng)
        needs = request.needs | {"function_calling"} if request.tools else request.needs
        if needs:
            targets = _capable(targets, needs, res.identifier)
        if len(targets) > 1:
            ready = [t for t in targets if not self.cooldowns.is_cooling(t.key)]
            if ready and len(ready) < len(targets):
                targets = ready
        return res.identifier, res.route, targets

    @staticmethod
    def deadline(request: LLMRequest, targets: list[Target]) -> tuple[float, float]:
        """The request's budget (seconds) and deadline (``time.monotonic()``)."""
        budget = request.config.deadline_seconds
        if budget is None:
            if len(targets) == 1:
                budget = targets[0].provider.settings.deadline_seconds
            else:
                budget = min(t.provider.settings.deadline_seconds for t in targets)
        return budget, time.monotonic() + budget

    @staticmethod
    def call(
        gen: Generation,
        request: LLMRequest,
        target: Target,
        provider: BaseProvider,
        deadline: float,
    ) -> ProviderCall:
        """The call to make on ``target`` (with the API key to use now)."""
        pc = target.provider
        key = pc.api_key(time.time())
        if pc.origin_errors:  # a secret bound to another origin: the provider is not called
            raise KeyOriginMismatchError(pc.origin_errors[0])
        if key is None and (pc.api_keys or pc.key_environments or provider.requires_api_key):
            raise _no_key(pc, gen.config.environment)
        cfg = request.config
        return ProviderCall(
            target.model,
            request.messages(),
            key.value if key is not None else None,
            cfg.max_tokens,
            cfg.temperature,
            cfg.timeout_seconds,
            cfg.extra_params,
            deadline,
            request.tools,
            request.tool_choice,
            request.wire,
        )

    async def _retry(
        self,
        provider: BaseProvider,
        call: ProviderCall,
        model: ModelConfig,
        op: Operation[_T],
        attempts: list[Attempt],
        deadline: float,
        exc: ProviderError,
        t0: float,
    ) -> tuple[_T, float]:
        """After the first attempt (started at ``t0``) failed with ``exc``: retry ``op`` with
        backoff while the error allows it and the deadline is not reached.

        Every failed attempt goes to ``attempts`` with its message scrubbed; returns the result
        and when its attempt started.
        """
        pc = provider.config
        settings = pc.settings
        n = 1
        while True:
            error = scrub_error(exc, pc.secrets)
            attempts.append(
                Attempt(pc.provider_id, model.model_id, type(exc).__name__, error,
                        (_perf() - t0) * 1000.0)
            )  # fmt: skip
            if isinstance(exc, BadRequestError | DeadlineExceededError):
                raise exc
            if _give_up(exc, settings, n):
                raise exc
            rng = self.rng if settings.jitter else None
            delay = backoff_delay(settings, n, exc.retry_after, rng)
            if time.monotonic() + delay >= deadline:
                msg = "the request deadline comes before the next retry"
                raise DeadlineExceededError(msg) from exc
            await self.sleep(delay)
            await self.throttle.wait(pc, deadline)
            n += 1
            t0 = _perf()
            try:
                if provider.enforces_deadline:
                    return await op(provider, call), t0
                return await bounded(op(provider, call), deadline), t0
            except ProviderError as again:
                exc = again

    def _deadline_error(
        self,
        request: LLMRequest,
        target: Target,
        identifier: str,
        budget: float,
        start: float,
        attempts: list[Attempt],
    ) -> DeadlineExceededError:
        """The request-level error once the deadline passed (usage recorded)."""
        last = attempts[-1] if attempts else None
        error = DeadlineExceededError(
            f"no answer for '{identifier}' within the request deadline of {budget:g}s, "
            f"after {count_attempts(len(attempts))}"
            + (f"\n  last: {last.provider_id}/{last.model_id}: {last.error}" if last else ""),
            hint="raise request_settings.deadline_seconds (or LLMConfig.deadline_seconds)",
        )
        self.record(request, target, None, start, attempts, "deadline", str(error))
        return error

    def record(
        self,
        request: LLMRequest,
        target: Target,
        usage: Usage | None,
        start: float,
        attempts: list[Attempt],
        outcome: str,
        error: str | None,
    ) -> None:
        """Write the request's usage row (when there is a recorder), the error scrubbed."""
        if self.usage is None:
            return
        if error is not None:  # the last stop before the database: scrub again, it is cheap
            error = target.provider.secrets.scrub(error)
        keep = request.record_prompt if request.record_prompt is not None else self.record_prompts
        last = attempts[-1] if attempts else None
        self.usage.record(
            provider_id=last.provider_id if last else target.provider.provider_id,
            model_id=last.model_id if last else target.model.model_id,
            session_id=request.initial_context.session_id,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            latency_ms=(_perf() - start) * 1000.0,
            attempts=len(attempts),
            outcome=outcome,
            error=error,
            prompt=request.prompt_text() if keep else None,
            token_name=request.caller,
            consumer=request.consumer,
            cost_usd=cost_usd(target.model, usage) if usage is not None else None,
        )


def _capable(targets: list[Target], needs: frozenset[str], identifier: str) -> list[Target]:
    """The targets whose model has what the request needs (a model that declares no
    capabilities is not judged); a 400 naming what is missing when none has it."""
    able = [t for t in targets if not t.model.capabilities or needs <= set(t.model.capabilities)]
    if not able:
        missing = sorted(needs - set(targets[0].model.capabilities)) if targets else sorted(needs)
        raise UnsupportedParameterError(
            f"'{identifier}' has no model with the capabilities this request needs "
            f"({', '.join(missing)})"
        )
    return able


def _give_up(exc: ProviderError, settings: RequestSettings, retry: int) -> bool:
    """True when ``exc`` should not be retried on the same target."""
    if not exc.retryable or retry > settings.max_retries:
        return True
    return exc.retry_after is not None and exc.retry_after > settings.backoff_max_seconds


def _no_key(pc: ProviderConfig, env: str) -> AuthenticationError:
    """Why ``pc`` cannot be called: nothing is sent without the credentials it has."""
    if not pc.api_keys and pc.key_environments:
        others = ", ".join(f"'{e}'" for e in pc.key_environments)
        return AuthenticationError(
            f"provider '{pc.provider_id}' has no API key for environment '{env}' "
            f"(it has keys for {others})",
            hint="set GWCONFIG_ENVIRONMENT to one of those environments, or add a key with "
            f"environment '{env}' (or 'default')",
        )
    reasons = [f"key '{k.name}@{k.environment}': {k.error or 'expired'}" for k in pc.api_keys]
    return AuthenticationError(
        f"no usable API key for environment '{env}'"
        + (f": {'; '.join(reasons)}" if reasons else "")
    )


async def bounded(aw: Awaitable[_T], deadline: float) -> _T:
    """Await ``aw`` until ``deadline`` (``time.monotonic()``), then raise DeadlineExceededError.

    For providers that do not enforce the deadline themselves (plugins).
    """
    timeout = asyncio.timeout_at(deadline)
    try:
        async with timeout:
            return await aw
    except TimeoutError as exc:
        if timeout.expired():
            raise DeadlineExceededError("the request deadline was reached") from exc
        raise
