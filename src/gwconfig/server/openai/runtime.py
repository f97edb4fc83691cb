"""The runtime behind ``/v1/chat/completions``: one :class:`LLMGatewayClient` per process,
reloaded when a new configuration revision is seen.

A request pins the configuration generation current when it starts and finishes on it; the
next request after a reload uses the new one (the runtime's generations do this). On a
database, the process's shared generation watcher (:mod:`gwconfig.server.watch`: PostgreSQL
``LISTEN``, a cheap counter check on SQLite and MariaDB) wakes the reload as soon as a writer
commits; the source's version is checked anyway every ``reload_interval`` seconds (a safety net,
and the only check for a compiled file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from gwconfig.runtime.client import LLMGatewayClient
from gwconfig.runtime.config import GatewayConfig
from gwconfig.runtime.factory import ProviderFactory
from gwconfig.runtime.permits import may_use
from gwconfig.runtime.sources import ConfigLoader
from gwconfig.server.metrics import Metrics, process_exited

log = logging.getLogger(__name__)


def revision_of(config: GatewayConfig) -> int | None:
    """The configuration revision number ``config`` was loaded at (database sources)."""
    version = config.version
    if isinstance(version, tuple) and len(version) > 1 and version[0] == "db" and version[1]:
        try:
            return int(version[1])
        except (TypeError, ValueError):
            return None
    return None


class GatewayRuntime:
    """This process's gateway client, its reloads and metrics of them."""

    def __init__(
        self,
        loader: ConfigLoader,
        metrics: Metrics,
        *,
        record_usage: bool = True,
        reload_interval: float = 30.0,
        factory: ProviderFactory | None = None,
    ) -> None:
        self.loader = loader
        self.metrics = metrics
        self.record_usage = record_usage
        self.reload_interval = reload_interval
        self._factory = factory or ProviderFactory()
        self._client: LLMGatewayClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._revisions: tuple[GatewayConfig | None, int | None] = (None, None)
        self._models: dict[tuple[str, ...] | None, bytes] = {}
        self._models_of: GatewayConfig | None = None
        self.loaded_at: float | None = None
        self._watcher: Any = None
        #: called (in the event loop) after each new configuration is served
        self.on_reload: list[Callable[[], object]] = []

    @property
    def client(self) -> LLMGatewayClient:
        """The gateway client (after :meth:`start`)."""
        if self._client is None:
            raise RuntimeError("the gateway runtime has not started")
        return self._client

    @property
    def database_up(self) -> bool | None:
        """Whether the database answers, as this process's generation watcher last saw it
        (None: no watcher, or no attempt yet)."""
        return None if self._watcher is None else bool(self._watcher.database_up)

    @property
    def ready(self) -> bool:
        """True once a configuration is loaded."""
        return self._client is not None

    async def start(self) -> None:
        """Load the configuration and start watching for new revisions."""
        config = await asyncio.to_thread(self.loader.load_config_as_object)
        db = self.loader.engine if self.record_usage and self.loader.path is None else None
        self._client = LLMGatewayClient(config, self._factory, db, loader=self.loader)
        self.loaded_at = time.time()
        self.metrics.served_revision(revision_of(config))
        if self.reload_interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def aclose(self) -> None:
        """Stop watching, close the providers, flush usage records."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        process_exited()  # this worker's live gauges leave the sum

    def poke(self) -> None:
        """Check for a new revision now (a watcher saw one)."""
        self._wake.set()

    async def reload(self) -> bool:
        """Serve the source's configuration if it changed; True when a new one is served."""
        client = self.client
        changed = await client.reload()
        if changed:
            self.loaded_at = time.time()
            self.metrics.reloads.inc()
            self.metrics.served_revision(revision_of(client.config))
            for callback in self.on_reload:
                callback()
        elif client.last_reload_error is not None:
            self.metrics.reload_failures.inc()
        return changed

    async def _watch(self) -> None:
        unsubscribe = None
        if self.loader.path is None:
            from gwconfig.server.watch import shared_watcher

            watcher = await asyncio.to_thread(shared_watcher, self.loader.engine)
            self._watcher = watcher
            loop = asyncio.get_running_loop()
            wake = self._wake

            def changed(_generation: object) -> None:  # on the watcher's thread
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(wake.set)

            unsubscribe = watcher.subscribe(changed)
            wake.set()  # a revision committed while the first load ran is not missed
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.reload_interval)
                self._wake.clear()
                try:
                    await self.reload()
                except Exception as exc:  # never stop watching
                    log.warning("configuration check failed: %s", type(exc).__name__)
        finally:
            if unsubscribe is not None:
                unsubscribe()

    def revision(self, config: GatewayConfig) -> int | None:
        """``config``'s revision (remembered for the last configuration asked about)."""
        seen, number = self._revisions
        if seen is config:
            return number
        number = revision_of(config)
        self._revisions = (config, number)
        return number

    def models_body(self, config: GatewayConfig, patterns: tuple[str, ...] | None) -> bytes:
        """The ``/v1/models`` list a caller limited to ``patterns`` may use (cached)."""
        if self._models_of is not config:
            self._models = {}
            self._models_of = config
        body = self._models.get(patterns)
        if body is None:
            body = _models_list(config, patterns)
            if len(self._models) < 256:
                self._models[patterns] = body
        return body


def _models_list(config: GatewayConfig, patterns: tuple[str, ...] | None) -> bytes:
    created = 0
    data: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for route in config.routes:
        names.setdefault(route, "gwconfig")
    for alias, owners in config._aliases.items():
        if len(owners) == 1:
            names.setdefault(alias, owners[0][0])
    for p in config.providers.values():
        if p.enabled:
            for mid in p.models:
                if p.models.enabled(mid):
                    names.setdefault(f"{p.provider_id}/{mid}", p.provider_id)
    for name, owner in names.items():
        if patterns is None or may_use(config, name, patterns):
            data.append({"id": name, "object": "model", "created": created, "owned_by": owner})
    return orjson.dumps({"object": "list", "data": data})
