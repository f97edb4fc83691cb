"""The runtime behind ``/v1/chat/completions``: one :class:`LLMGatewayClient` per process,
reloaded when a new configuration revision is seen.

A request pins the configuration generation current when it starts and finishes on it; the
next request after a reload uses the new one (the runtime's generations do this). The client's
:meth:`~LLMGatewayClient.start_auto_reload` follows the source (on a database the process's
shared generation watcher wakes it as soon as a writer commits; the version is checked anyway
every ``reload_interval`` seconds); its hook keeps the reload metrics here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from gwconfig.db.ledger import consumer_spends
from gwconfig.errors import GwconfigError
from gwconfig.runtime.client import LLMGatewayClient
from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.runtime.config.sources import ConfigLoader
from gwconfig.runtime.factory import ProviderFactory
from gwconfig.runtime.permits import may_use
from gwconfig.server.metrics import (
    MAX_CONSUMER_GAUGES,
    Metrics,
    consumer_gauges,
    process_exited,
)

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
        self._revisions: tuple[GatewayConfig | None, int | None] = (None, None)
        self._models: dict[tuple[str, ...] | None, bytes] = {}
        self._models_of: GatewayConfig | None = None
        self.loaded_at: float | None = None
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
        watcher = None if self._client is None else self._client.watcher
        return None if watcher is None else bool(watcher.database_up)

    @property
    def ready(self) -> bool:
        """True once a configuration is loaded."""
        return self._client is not None

    def consumer_metrics(self) -> bytes:
        """The consumers' spend gauges from the ledger (blocking; nothing when this process
        serves no database, or the database does not answer: the scrape goes on without)."""
        if self.loader.path is not None or self.loader.remote is not None:
            return b""
        engine = self.loader.engine
        policies = list(self.client.config.consumers.values())[:MAX_CONSUMER_GAUGES]
        consumers = [
            {"name": p.name, "budget": {"usd": p.budget_usd, "period": p.budget_period}
             if p.budget_usd is not None else None}
            for p in policies
        ]  # fmt: skip
        try:
            with engine.connect() as conn:
                spent = consumer_spends(conn, consumers)
        except Exception as exc:  # a scrape never fails for the ledger
            log.debug("no consumer spend gauges: %s", type(exc).__name__)
            return b""
        return consumer_gauges(spent)

    async def start(self) -> None:
        """Load the configuration and start watching for new revisions."""
        config = await asyncio.to_thread(self.loader.load_config_as_object)
        db = self.loader.engine if self.record_usage and self.loader.path is None else None
        self._client = LLMGatewayClient(config, self._factory, db, loader=self.loader)
        self.loaded_at = time.time()
        self.metrics.served_revision(revision_of(config))
        if self.reload_interval > 0:
            self._client.start_auto_reload(self.reload_interval, on_check=self._checked)

    async def aclose(self) -> None:
        """Stop watching, close the providers, flush usage records."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        process_exited()  # this worker's live gauges leave the sum

    def _checked(self, changed: bool) -> None:
        """After each check of the source (the client's auto-reload hook): the metrics."""
        if changed:
            self.loaded_at = time.time()
            self.metrics.reloads.inc()
            self.metrics.served_revision(revision_of(self.client.config))
            for callback in self.on_reload:
                callback()
        elif self.client.last_reload_error is not None:
            self.metrics.reload_failures.inc()

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

    def model_body(
        self, config: GatewayConfig, name: str, patterns: tuple[str, ...] | None
    ) -> bytes | None:
        """``GET /v1/models/{name}``: the model object of ``name`` for a caller limited to
        ``patterns``, when ``/v1/chat/completions`` would take that name from it (a listed id,
        or any other name that resolves to a route or one model); None otherwise."""
        owner = model_owner(config, name)
        if owner is None or (patterns is not None and not may_use(config, name, patterns)):
            return None
        return orjson.dumps(model_object(name, owner))


def model_object(name: str, owner: str) -> dict[str, Any]:
    """OpenAI's model object: an entry of ``/v1/models``, the answer of ``/v1/models/{id}``."""
    return {"id": name, "object": "model", "created": 0, "owned_by": owner}


def model_owner(config: GatewayConfig, name: str) -> str | None:
    """``owned_by`` of a name: ``gwconfig`` for a route, else the provider of the one model it
    resolves to; None for a name that does not resolve (or resolves to several models)."""
    if not name:  # no name would be the default route
        return None
    try:
        res = config.resolve(name)
    except GwconfigError:
        return None
    if res.route is not None:
        return "gwconfig"
    targets = [t for g in res.groups for t in g.targets]
    return targets[0].provider.provider_id if len(targets) == 1 else None


def _models_list(config: GatewayConfig, patterns: tuple[str, ...] | None) -> bytes:
    data: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for route in config.routes:
        names.setdefault(route, "gwconfig")
    for alias, owners in config.aliases.items():
        if len(owners) == 1:
            names.setdefault(alias, owners[0][0])
    for p in config.providers.values():
        if p.enabled:
            for mid in p.models:
                if p.models.enabled(mid):
                    names.setdefault(f"{p.provider_id}/{mid}", p.provider_id)
    for name, owner in names.items():
        if patterns is None or may_use(config, name, patterns):
            data.append(model_object(name, owner))
    return orjson.dumps({"object": "list", "data": data})
