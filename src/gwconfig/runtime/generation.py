"""Configuration generations: the configuration served and the provider instances made for it.

A request pins the generation current when it starts and finishes on it, even when a reload
swaps in a new one meanwhile; a retired generation closes its providers once no request uses
it (those the new generation keeps, because their connection is unchanged, stay open).
"""

from __future__ import annotations

import asyncio
import logging

from gwconfig.runtime.config.gateway import GatewayConfig, ProviderConfig
from gwconfig.runtime.factory import ProviderFactory
from gwconfig.runtime.providers.base import BaseProvider

log = logging.getLogger(__name__)


class Generation:
    """One configuration and the provider instances made for it; requests in flight pin it."""

    __slots__ = ("config", "factory", "inflight", "keep", "providers", "retired")

    def __init__(self, config: GatewayConfig, factory: ProviderFactory) -> None:
        self.config = config
        self.factory = factory
        self.providers: dict[str, BaseProvider] = {}
        self.inflight = 0
        self.retired = False
        self.keep: set[str] = set()

    def provider(self, pc: ProviderConfig) -> BaseProvider:
        """The provider instance for ``pc`` (made on first use)."""
        provider = self.providers.get(pc.provider_id)
        if provider is None:
            provider = self.providers[pc.provider_id] = self.factory.create(pc)
        return provider


class Generations:
    """The current generation, swaps to a new one, and the closing of retired ones."""

    __slots__ = ("_closing", "current")

    def __init__(self, config: GatewayConfig, factory: ProviderFactory) -> None:
        self.current = Generation(config, factory)
        self._closing: set[asyncio.Task[None]] = set()

    def acquire(self) -> Generation:
        """Pin the current generation for one request (give it back with :meth:`release`)."""
        gen = self.current
        gen.inflight += 1
        return gen

    def release(self, gen: Generation) -> None:
        """A request pinned to ``gen`` has finished."""
        gen.inflight -= 1
        if gen.retired and gen.inflight == 0:
            self._close(gen)

    def swap(self, config: GatewayConfig) -> None:
        """Serve ``config`` from now on; requests in flight finish on the previous one."""
        old = self.current
        new = Generation(config, old.factory)
        for pid, provider in old.providers.items():
            pc = config.providers.get(pid)
            if pc is not None and pc.same_connection(provider.config):
                new.providers[pid] = provider  # keep the connection pool
                old.keep.add(pid)
        self.current = new
        old.retired = True
        if old.inflight == 0:
            self._close(old)

    async def aclose(self) -> None:
        """Wait for retired generations to close, then close the current one's providers."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        providers = self.current.providers
        for provider in list(providers.values()):
            await provider.aclose()
        providers.clear()

    def _close(self, gen: Generation) -> None:
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


async def _close_all(providers: list[BaseProvider]) -> None:
    for p in providers:
        try:
            await p.aclose()
        except Exception as exc:  # closing must not fail a reload
            log.warning("closing provider %s failed: %s", p.config.provider_id, exc)
