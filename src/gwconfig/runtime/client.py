"""LLMGatewayClient: routes requests over a GatewayConfig with retries, fallbacks and streaming.

The client owns the configuration (reloads, generations of provider instances) and the usage
recorder; the routing itself is :mod:`gwconfig.runtime.routing`'s, for plain and streaming calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gwconfig.errors import ConfigurationError, GwconfigError
from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.runtime.config.remote import MAX_WAIT
from gwconfig.runtime.config.sources import ConfigLoader, engine_of
from gwconfig.runtime.errors import UnsupportedParameterError
from gwconfig.runtime.factory import ProviderFactory
from gwconfig.runtime.generation import Generation, Generations
from gwconfig.runtime.messages import LLMRequest, LLMResponse, ProviderResult
from gwconfig.runtime.providers.base import BaseProvider, ProviderCall
from gwconfig.runtime.routing import Router
from gwconfig.runtime.streaming import LLMStream
from gwconfig.runtime.usage import UsageRecorder

if TYPE_CHECKING:
    from gwconfig.db.watch import GenerationWatcher
    from gwconfig.runtime.resilience import CooldownTracker
    from gwconfig.runtime.throttle import Throttle

log = logging.getLogger(__name__)


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
        self._generations = Generations(config, self._factory)
        self._refresher: asyncio.Task[None] | None = None
        self._watcher: GenerationWatcher | None = None
        self.last_reload_error: str | None = None
        self._loader = loader or getattr(config, "loader", None)
        usage: UsageRecorder | None = None
        if db is not None:
            usage = UsageRecorder(engine_of(db), flush_interval=usage_flush_interval)
            if self._loader is None:
                self._loader = ConfigLoader(db, environment=config.environment)
        self._router = Router(
            rng=rng or random.Random(), sleep=sleep, usage=usage, record_prompts=record_prompts
        )

    # -- configuration ----------------------------------------------------------------------------

    @property
    def config(self) -> GatewayConfig:
        """The configuration new requests are routed with."""
        return self._generations.current.config

    @property
    def usage(self) -> UsageRecorder | None:
        """The usage recorder (when the client was given a database)."""
        return self._router.usage

    @property
    def record_prompts(self) -> bool:
        """Whether usage rows keep the prompt text (a request's ``record_prompt`` overrides)."""
        return self._router.record_prompts

    @record_prompts.setter
    def record_prompts(self, value: bool) -> None:
        self._router.record_prompts = value

    @property
    def _gen(self) -> Generation:
        # the tests look at the provider instances of the generation being served
        return self._generations.current

    @property
    def cooldowns(self) -> CooldownTracker:
        """The targets' failure counts and cooldowns (shared by every generation)."""
        return self._router.cooldowns

    @property
    def throttle(self) -> Throttle:
        """The providers' request and token windows (shared by every generation)."""
        return self._router.throttle

    def cooling_targets(self) -> list[str]:
        """``provider/model`` targets currently skipped after repeated failures."""
        return self._router.cooldowns.cooling()

    def swap_config(self, config: GatewayConfig) -> None:
        """Serve ``config`` from now on; requests in flight finish on the previous one."""
        self._generations.swap(config)

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
        except Exception as exc:  # any failure: log it, keep serving the last good config
            self._reload_failed(exc)
            return False
        return self._accept(new)

    @property
    def watcher(self) -> GenerationWatcher | None:
        """The generation watcher :meth:`start_auto_reload` follows (database sources, once the
        background task has started)."""
        return self._watcher

    def start_auto_reload(
        self, interval_seconds: float = 5.0, *, on_check: Callable[[bool], object] | None = None
    ) -> None:
        """Follow the source in a background task (needs a running loop).

        - gateway API (HTTP): a long-poll that returns as soon as a new generation is
          committed (errors: try again after a back-off of at most ``interval_seconds``);
        - database: the process's :func:`gwconfig.db.watch.shared_watcher` (LISTEN/NOTIFY on
          PostgreSQL, a cheap counter check elsewhere) triggers the reload, and every
          ``interval_seconds`` without news a cheap version check catches writes made outside
          gwconfig;
        - compiled file: a version check every ``interval_seconds``.

        ``on_check(changed)`` runs in the loop after every check (over the API: after every
        document fetched, or failure to fetch one): ``changed`` is True when a new configuration
        is now served; when it is False, :attr:`last_reload_error` says whether the last attempt
        failed. A failing hook is logged and the following goes on.
        """
        if self._refresher is not None and not self._refresher.done():
            return
        loader = self._loader
        if loader is not None and loader.remote is not None:
            task = self._follow_remote(loader, interval_seconds, on_check)
        else:
            task = self._follow(loader, interval_seconds, on_check)
        self._refresher = asyncio.get_running_loop().create_task(task)

    async def _follow(
        self,
        loader: ConfigLoader | None,
        interval_seconds: float,
        on_check: Callable[[bool], object] | None,
    ) -> None:
        """The reload loop of a database or a compiled file."""
        if loader is None:
            raise ConfigurationError("this client has no configuration source to reload from")
        wake = asyncio.Event()
        unsubscribe = None
        if loader.path is None:
            from gwconfig.db.watch import shared_watcher  # SQLAlchemy: only for a database

            watcher = self._watcher = await asyncio.to_thread(shared_watcher, loader.engine)
            loop = asyncio.get_running_loop()

            def changed(_generation: object) -> None:  # on the watcher's thread
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(wake.set)

            # a subscriber, not a waiter: the watcher's waiters are the config API's long-polls
            unsubscribe = watcher.subscribe(changed)
            wake.set()  # anything committed before the watcher's first read
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), interval_seconds)
                wake.clear()
                await self._check(on_check)
        finally:
            if unsubscribe is not None:
                unsubscribe()

    async def _check(self, on_check: Callable[[bool], object] | None) -> None:
        try:
            changed = await self.reload()
        except Exception as exc:  # never stop following the source
            log.warning("configuration check failed: %s", type(exc).__name__)
            return
        _call(on_check, changed)

    async def _follow_remote(
        self,
        loader: ConfigLoader,
        interval_seconds: float,
        on_check: Callable[[bool], object] | None,
    ) -> None:
        backoff = 0.1
        seen = self.config.version  # the last document fetched, accepted or not
        while True:
            try:
                new = await loader.wait_for_new(seen, MAX_WAIT / 2)
                if new is not None:
                    seen = new.version  # a refused document is not fetched again and again
                    _call(on_check, self._accept(new))
                backoff = 0.1
            except Exception as exc:  # the API is down or refuses: keep serving, try again
                self._reload_failed(exc)
                _call(on_check, False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max(interval_seconds, 0.1))

    def _accept(self, new: GatewayConfig) -> bool:
        """Swap in ``new`` unless it is unusable (then keep the current one and say why)."""
        problems = check_config(new, self._factory)
        if problems:
            self._reload_failed(ConfigurationError("; ".join(problems)))
            return False
        self.last_reload_error = None
        self.swap_config(new)
        return True

    def _reload_failed(self, exc: Exception) -> None:
        self.last_reload_error = f"{type(exc).__name__}: {exc}"
        log.warning("configuration reload failed, keeping the last good one: %s", exc)

    async def aclose(self) -> None:
        """Stop the refresher, close every provider, flush usage records."""
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        if self._loader is not None and self._loader.remote is not None:
            await self._loader.remote.aclose()
        await self._generations.aclose()
        usage = self._router.usage
        if usage is not None:
            await asyncio.to_thread(usage.close)

    async def __aenter__(self) -> LLMGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests ---------------------------------------------------------------------------------

    async def generate(self, request: LLMRequest) -> LLMResponse:
        """Send ``request`` along its route (retries, fallbacks) and return the first answer."""
        return await self._answer(request, _complete)

    async def embed(self, request: LLMRequest) -> LLMResponse:
        """Embed the inputs of ``request.wire`` (an OpenAI embeddings body) along its route, as
        :meth:`generate` answers (retries, fallbacks, usage records); the answer's ``wire`` is
        the upstream's embeddings document."""
        return await self._answer(request, _embed)

    async def count_tokens(self, request: LLMRequest) -> LLMResponse:
        """Count the input tokens of ``request.wire`` (an Anthropic Messages body) along its
        route; the answer's ``wire`` is the upstream's count (provider types without such an
        API refuse: 400)."""
        return await self._answer(request, _count_tokens)

    async def _answer(
        self,
        request: LLMRequest,
        op: Callable[[BaseProvider, ProviderCall], Awaitable[ProviderResult]],
    ) -> LLMResponse:
        generations = self._generations
        gen = generations.acquire()
        try:
            router = self._router
            routed = await router.route(gen, request, op)
            r = routed.result
            return router.succeed(
                routed, r.text, r.usage, r.finish_reason, r.raw, r.tool_calls, r.wire
            )
        finally:
            generations.release(gen)

    def generate_stream(self, request: LLMRequest) -> LLMStream:
        """Stream the answer as text chunks; falls back to other targets only before the first."""
        return LLMStream(self._router, self._generations, request)


def _call(on_check: Callable[[bool], object] | None, changed: bool) -> None:
    """Run the auto-reload's hook; its failure must not stop the following."""
    if on_check is not None:
        try:
            on_check(changed)
        except Exception:
            log.exception("the configuration-check hook failed")


def _complete(provider: BaseProvider, call: ProviderCall) -> Awaitable[ProviderResult]:
    """The routing loop's call for :meth:`LLMGatewayClient.generate`: one completion."""
    return provider.complete(call)


def _embed(provider: BaseProvider, call: ProviderCall) -> Awaitable[ProviderResult]:
    """The routing loop's call for :meth:`LLMGatewayClient.embed`: embeddings models only."""
    model = call.model
    if model.model_type != "embedding":
        raise UnsupportedParameterError(
            f"model '{model.model_id}' has model_type '{model.model_type}'; embeddings need a "
            "model of model_type 'embedding'"
        )
    return provider.embed(call)


def _count_tokens(provider: BaseProvider, call: ProviderCall) -> Awaitable[ProviderResult]:
    """The routing loop's call for :meth:`LLMGatewayClient.count_tokens`."""
    return provider.count_tokens(call)


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
