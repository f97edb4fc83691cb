"""LLMGatewayClient: routes requests over a GatewayConfig with retries, fallbacks and streaming."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from gwconfig.errors import ConfigurationError, GwconfigError
from gwconfig.runtime.config import GatewayConfig, ProviderConfig, Target
from gwconfig.runtime.errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    DeadlineExceededError,
    ProviderError,
    ProviderUnavailableError,
    TargetFailure,
    count_attempts,
)
from gwconfig.runtime.factory import ProviderFactory
from gwconfig.runtime.models import Attempt, LLMRequest, LLMResponse, Usage
from gwconfig.runtime.models_table import ModelConfig
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall
from gwconfig.runtime.resilience import (
    CooldownTracker,
    RateLimiter,
    TokenLimiter,
    backoff_delay,
    order_targets,
)
from gwconfig.runtime.scrub import scrub_error

if TYPE_CHECKING:
    from gwconfig.runtime.loader import ConfigLoader
    from gwconfig.runtime.streaming import LLMStream
    from gwconfig.runtime.usage import UsageRecorder

log = logging.getLogger(__name__)
_perf = time.perf_counter
_T = TypeVar("_T")


class _Generation:
    """One configuration and the provider instances made for it; requests in flight pin it."""

    __slots__ = ("config", "inflight", "keep", "providers", "retired")

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.providers: dict[str, BaseProvider] = {}
        self.inflight = 0
        self.retired = False
        self.keep: set[str] = set()


class LLMGatewayClient:
    """Sends LLM requests to the providers a :class:`GatewayConfig` describes (the seed's name)."""

    def __init__(
        self,
        config: GatewayConfig,
        factory: ProviderFactory | None = None,
        db: Any = None,
        *,
        loader: ConfigLoader | None = None,
        record_prompts: bool = False,
        usage_flush_interval: float = 0.5,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._factory = factory or ProviderFactory()
        self._gen = _Generation(config)
        self._cooldowns = CooldownTracker()
        self._limiters: dict[str, RateLimiter] = {}
        self._token_limiters: dict[str, TokenLimiter] = {}
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._closing: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self.record_prompts = record_prompts
        self.last_reload_error: str | None = None
        self._loader = loader or getattr(config, "loader", None)
        self._usage: UsageRecorder | None = None
        if db is not None:
            from gwconfig.runtime.loader import ConfigLoader, engine_of
            from gwconfig.runtime.usage import UsageRecorder

            self._usage = UsageRecorder(engine_of(db), flush_interval=usage_flush_interval)
            if self._loader is None:
                self._loader = ConfigLoader(db, environment=config.environment)

    # -- configuration ----------------------------------------------------------------------------

    @property
    def config(self) -> GatewayConfig:
        """The configuration new requests are routed with."""
        return self._gen.config

    @property
    def usage(self) -> UsageRecorder | None:
        """The usage recorder (when the client was given a database)."""
        return self._usage

    def cooling_targets(self) -> list[str]:
        """``provider/model`` targets currently skipped after repeated failures."""
        return self._cooldowns.cooling()

    def swap_config(self, config: GatewayConfig) -> None:
        """Serve ``config`` from now on; requests in flight finish on the previous one."""
        old = self._gen
        new = _Generation(config)
        for pid, provider in old.providers.items():
            pc = config.providers.get(pid)
            if pc is not None and pc.same_connection(provider.config):
                new.providers[pid] = provider  # keep the connection pool
                old.keep.add(pid)
        self._gen = new
        old.retired = True
        if old.inflight == 0:
            self._close_generation(old)

    async def reload(self, *, force: bool = False) -> bool:
        """Load a new configuration if the source changed; keep the current one if it is invalid.

        Returns True when a new configuration is now being served.
        """
        loader = self._loader
        if loader is None:
            raise ConfigurationError("this client has no configuration source to reload from")
        try:
            if not force:
                version = await asyncio.to_thread(loader.current_version)
                if version is not None and version == self.config.version:
                    return False
            new = await asyncio.to_thread(loader.load_config_as_object)
            problems = check_config(new, self._factory)
            if problems:
                raise ConfigurationError("; ".join(problems))
        except Exception as exc:  # any failure: log it, keep serving the last good config
            self.last_reload_error = f"{type(exc).__name__}: {exc}"
            log.warning("configuration reload failed, keeping the last good one: %s", exc)
            return False
        self.last_reload_error = None
        self.swap_config(new)
        return True

    def start_auto_reload(self, interval_seconds: float = 5.0) -> None:
        """Check the source every ``interval_seconds`` in a background task (needs a loop)."""
        if self._refresher is not None and not self._refresher.done():
            return

        async def refresh() -> None:
            while True:
                await asyncio.sleep(interval_seconds)
                await self.reload()

        self._refresher = asyncio.get_running_loop().create_task(refresh())

    async def aclose(self) -> None:
        """Stop the refresher, close every provider, flush usage records."""
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for provider in list(self._gen.providers.values()):
            await provider.aclose()
        self._gen.providers.clear()
        if self._usage is not None:
            await asyncio.to_thread(self._usage.close)

    async def __aenter__(self) -> LLMGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _close_generation(self, gen: _Generation) -> None:
        doomed = [p for pid, p in gen.providers.items() if pid not in gen.keep]
        gen.providers.clear()
        if not doomed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (swap outside async code): close synchronously
            for p in doomed:
                asyncio.run(p.aclose())
            return
        task = loop.create_task(_close_all(doomed))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _release(self, gen: _Generation) -> None:
        gen.inflight -= 1
        if gen.retired and gen.inflight == 0:
            self._close_generation(gen)

    def _provider(self, gen: _Generation, pc: ProviderConfig) -> BaseProvider:
        provider = gen.providers.get(pc.provider_id)
        if provider is None:
            provider = gen.providers[pc.provider_id] = self._factory.create(pc)
        return provider

    # -- requests ---------------------------------------------------------------------------------

    def _call(
        self, request: LLMRequest, target: Target, provider: BaseProvider, deadline: float
    ) -> ProviderCall:
        pc = target.provider
        key = pc.api_key(time.time())
        if key is None and (pc.api_keys or pc.key_environments or provider.requires_api_key):
            raise self._no_key(pc)
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
        )

    def _no_key(self, pc: ProviderConfig) -> AuthenticationError:
        """Why ``pc`` cannot be called: nothing is sent without the credentials it has."""
        env = self.config.environment
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

    def _targets(
        self, gen: _Generation, request: LLMRequest
    ) -> tuple[str, str | None, list[Target]]:
        cfg = request.config
        res = gen.config.resolve(cfg.model_identifier, cfg.provider_id)
        targets = order_targets(res.groups, self._rng)
        if len(targets) > 1:
            ready = [t for t in targets if not self._cooldowns.is_cooling(t.key)]
            if ready and len(ready) < len(targets):
                targets = ready
        return res.identifier, res.route, targets

    async def _throttle(self, pc: ProviderConfig, deadline: float) -> None:
        """Honour ``rate_limit_rpm`` and ``rate_limit_tpm``: wait for room, or fail this target
        when the wait would be longer than ``backoff_max_seconds``."""
        rpm, tpm = pc.settings.rate_limit_rpm, pc.settings.rate_limit_tpm
        if rpm is None and tpm is None:
            return
        waits: list[float] = []
        if tpm is not None:
            tokens = self._token_limiter(pc, tpm)
            wait = tokens.delay(time.monotonic())
            if wait > pc.settings.backoff_max_seconds:
                raise ProviderUnavailableError(
                    f"rate limit of {tpm} tokens/minute reached (room again in {wait:.1f}s)",
                    retryable=False,
                )
            waits.append(wait)
        limiter = None
        if rpm is not None:
            limiter = self._limiters.get(pc.provider_id)
            if limiter is None or limiter.rpm != rpm:
                limiter = self._limiters[pc.provider_id] = RateLimiter(rpm)
            wait = limiter.delay(time.monotonic())
            if wait > pc.settings.backoff_max_seconds:
                raise ProviderUnavailableError(
                    f"rate limit of {rpm} requests/minute reached (next slot in {wait:.1f}s)",
                    retryable=False,
                )
            waits.append(wait)
        if max(waits) > 0:
            if time.monotonic() + max(waits) >= deadline:
                raise DeadlineExceededError("the request deadline comes before the rate limit")
            await self._sleep(max(waits))
        if limiter is not None:
            limiter.take(time.monotonic())

    def _token_limiter(self, pc: ProviderConfig, tpm: int) -> TokenLimiter:
        limiter = self._token_limiters.get(pc.provider_id)
        if limiter is None or limiter.tpm != tpm:
            limiter = self._token_limiters[pc.provider_id] = TokenLimiter(tpm)
        return limiter

    def _charge(self, pc: ProviderConfig, usage: Usage | None) -> None:
        """Count a finished request's tokens against ``rate_limit_tpm``."""
        tpm = pc.settings.rate_limit_tpm
        if tpm is not None and usage is not None:
            self._token_limiter(pc, tpm).add(time.monotonic(), usage.total_tokens)

    def _give_up(self, exc: ProviderError, settings: Any, retry: int) -> bool:
        """True when ``exc`` should not be retried on the same target."""
        if not exc.retryable or retry > settings.max_retries:
            return True
        return exc.retry_after is not None and exc.retry_after > settings.backoff_max_seconds

    async def _with_retries(
        self,
        provider: BaseProvider,
        model: ModelConfig,
        op: Callable[[], Awaitable[_T]],
        attempts: list[Attempt],
        deadline: float,
        exc: ProviderError,
        t0: float,
    ) -> tuple[_T, float]:
        """After the first attempt (started at ``t0``) failed with ``exc``: retry ``op`` with
        backoff while the error allows it and the deadline is not reached.

        Every failed attempt goes to ``attempts`` with its message scrubbed; returns the result
        and when its attempt started. (The first attempt is made by the caller, so that a
        request answered at once pays for no retry machinery.)
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
            if self._give_up(exc, settings, n):
                raise exc
            rng = self._rng if settings.jitter else None
            delay = backoff_delay(settings, n, exc.retry_after, rng)
            if time.monotonic() + delay >= deadline:
                msg = "the request deadline comes before the next retry"
                raise DeadlineExceededError(msg) from exc
            await self._sleep(delay)
            await self._throttle(pc, deadline)
            n += 1
            t0 = _perf()
            try:
                if provider.enforces_deadline:
                    return await op(), t0
                return await bounded(op(), deadline), t0
            except ProviderError as again:
                exc = again

    def _deadline(self, request: LLMRequest, targets: list[Target]) -> tuple[float, float]:
        """The request's budget (seconds) and deadline (``time.monotonic()``)."""
        budget = request.config.deadline_seconds
        if budget is None:
            if len(targets) == 1:
                budget = targets[0].provider.settings.deadline_seconds
            else:
                budget = min(t.provider.settings.deadline_seconds for t in targets)
        return budget, time.monotonic() + budget

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
        self._record(request, target, None, start, attempts, "deadline", str(error))
        return error

    async def generate(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` along its route (retries, fallbacks) and return the first answer."""
        gen = self._gen
        gen.inflight += 1
        start = _perf()
        attempts: list[Attempt] = []
        try:
            identifier, route, targets = self._targets(gen, request)
            budget, deadline = self._deadline(request, targets)
            failures: list[TargetFailure] = []
            for target in targets:
                pc, model = target.provider, target.model
                before = len(attempts)
                try:
                    if failures and time.monotonic() >= deadline:
                        raise DeadlineExceededError("the request deadline has passed")
                    provider = self._provider(gen, pc)
                    call = self._call(request, target, provider, deadline)
                    await self._throttle(pc, deadline)
                    t0 = _perf()
                    try:
                        if provider.enforces_deadline:
                            result = await provider.complete(call)
                        else:
                            result = await bounded(provider.complete(call), deadline)
                    except ProviderError as exc:
                        op = partial(provider.complete, call)
                        result, t0 = await self._with_retries(
                            provider, model, op, attempts, deadline, exc, t0
                        )
                except BadRequestError as exc:
                    self._record(request, target, None, start, attempts, "bad_request", str(exc))
                    raise
                except DeadlineExceededError as exc:
                    if len(attempts) > before:
                        self._cooldowns.failure(target.key, pc.settings)
                    raise self._deadline_error(
                        request, target, identifier, budget, start, attempts
                    ) from exc
                except ProviderError as exc:
                    self._cooldowns.failure(target.key, pc.settings)
                    reason = scrub_error(exc, pc.secrets)
                    failures.append(TargetFailure(target.key, reason, len(attempts) - before))
                    continue
                self._cooldowns.success(target.key)
                self._charge(pc, result.usage)
                now = _perf()
                attempts.append(
                    Attempt(pc.provider_id, model.model_id, "ok", None, (now - t0) * 1000.0)
                )
                latency = (now - start) * 1000.0
                response = LLMResponse(
                    result.text,
                    pc.provider_id,
                    model.model_id,
                    result.usage,
                    latency,
                    tuple(attempts),
                    result.finish_reason,
                    route,
                    request.initial_context.session_id,
                    result.raw,
                )
                if self._usage is not None:
                    self._record(request, target, result.usage, start, attempts, "ok", None)
                return response
            error = AllTargetsFailedError(identifier, failures)
            last = targets[-1]
            self._record(request, last, None, start, attempts, "failed", str(error))
            raise error
        finally:
            self._release(gen)

    def generate_stream(self, request: LLMRequest) -> LLMStream:
        """Stream the answer as text chunks; falls back to other targets only before the first."""
        from gwconfig.runtime.streaming import LLMStream

        return LLMStream(self, request)

    def _record(
        self,
        request: LLMRequest,
        target: Target,
        usage: Usage | None,
        start: float,
        attempts: list[Attempt],
        outcome: str,
        error: str | None,
    ) -> None:
        if self._usage is None:
            return
        if error is not None:  # the last stop before the database: scrub again, it is cheap
            error = target.provider.secrets.scrub(error)
        keep = request.record_prompt if request.record_prompt is not None else self.record_prompts
        last = attempts[-1] if attempts else None
        self._usage.record(
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


async def _close_all(providers: list[BaseProvider]) -> None:
    for p in providers:
        try:
            await p.aclose()
        except Exception as exc:  # closing must not fail a reload
            log.warning("closing provider %s failed: %s", p.config.provider_id, exc)


def check_config(config: GatewayConfig, factory: ProviderFactory) -> list[str]:
    """Problems that make a configuration unusable (unknown provider types, dangling routes)."""
    problems = []
    for p in config.providers.values():
        if p.enabled:
            try:
                factory.provider_class(p.provider_type)
            except GwconfigError as exc:
                problems.append(str(exc))
            except Exception as exc:  # a plugin failing to import is a problem to report
                problems.append(f"provider '{p.provider_id}': {exc}")
    for r in config.routes.values():
        for pid, mid, _w in r.targets:
            if pid not in config.providers or mid not in config.providers[pid].models:
                problems.append(f"route '{r.name}' targets unknown model '{pid}/{mid}'")
        for fb in r.fallbacks:
            if fb not in config.routes:
                problems.append(f"route '{r.name}' falls back to unknown route '{fb}'")
    if config.default_route is not None and config.default_route not in config.routes:
        problems.append(f"default route '{config.default_route}' does not exist")
    return problems
