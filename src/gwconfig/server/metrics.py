"""Prometheus metrics of ``gwconfig serve`` and its JSON access log.

Names start with ``gwconfig_`` and follow the OpenTelemetry GenAI conventions where they fit
(``gen_ai.server.request.duration``, ``gen_ai.server.time_to_first_token``,
``gen_ai.client.token.usage``). With several workers (``serve --workers N``), ``serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a private temporary directory before the workers start; every
worker then writes its values there and ``/metrics`` (answered by any worker) adds them all up.

Labels are bounded: ``model`` is the identifier the configuration resolved (a route, alias or
``provider/model`` it knows), never a name a caller made up; unknown models count under ``""``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gwconfig.db.ledger import ConsumerSpend
from gwconfig.runtime.errors import AllTargetsFailedError
from gwconfig.runtime.messages import Attempt, Usage

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: request durations, seconds (LLM calls: milliseconds to minutes)
_DURATIONS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: gwconfig's own time per request, seconds (the goal is well under a millisecond)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

access_log = logging.getLogger("gwconfig.access")


def multiprocess() -> bool:
    """True when values are shared between worker processes (``PROMETHEUS_MULTIPROC_DIR``)."""
    return bool(os.environ.get(MULTIPROC_ENV))


@dataclass(frozen=True, slots=True)
class Answered:
    """A request the runtime answered, as :meth:`Metrics.answered` records it."""

    endpoint: str
    status: int
    route: str | None
    provider: str
    model: str
    #: seconds from the request received to the last byte of the answer
    total: float
    attempts: tuple[Attempt, ...] | list[Attempt]
    usage: Usage | None
    #: seconds to the first streamed text (None: not streamed)
    ttft: float | None = None


class Metrics:
    """The metrics of one server process (registered in their own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, help: str, *labels: str) -> Counter:
            return Counter(f"gwconfig_{name}", help, labels, registry=r)

        def histogram(name: str, help: str, *labels: str, buckets: Any = _DURATIONS) -> Histogram:
            return Histogram(f"gwconfig_{name}", help, labels, buckets=buckets, registry=r)

        def gauge(name: str, help: str, mode: Any) -> Gauge:
            return Gauge(f"gwconfig_{name}", help, registry=r, multiprocess_mode=mode)

        model = ("route", "provider", "model")
        target = ("provider", "model")
        self.requests = counter(
            "requests",
            "LLM requests answered, by endpoint, route, provider, model and HTTP status",
            *("endpoint", *model, "status"),
        )
        self.duration = histogram(
            "gen_ai_server_request_duration_seconds",
            "Time from request received to the last byte of the answer",
            *model,
        )
        self.upstream = histogram(
            "upstream_duration_seconds", "Time spent in the provider call that answered", *target
        )
        self.overhead = histogram(
            "overhead_seconds",
            "gwconfig's own time per request answered at the first attempt (total minus upstream)",
            buckets=_OVERHEAD,
        )
        self.ttft = histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from request received to the first streamed text",
            *target,
        )
        self.tokens = counter(
            "gen_ai_client_token_usage",
            "Tokens used, by type (input, output), provider and model",
            *("token_type", *target),
        )
        self.retries = counter("retries", "Retries of a target after a failed attempt", *target)
        self.fallbacks = counter("fallbacks", "Moves to the next target after one failed", "route")
        self.cooldowns = counter("cooldowns", "Targets put in cooldown after repeated failures")
        self.inflight = gauge("requests_in_flight", "LLM requests being answered", "livesum")
        self.revision = gauge(
            "config_revision", "Configuration revision served (per worker)", "liveall"
        )
        self.reloads = counter("config_reloads", "Configurations loaded after a new revision")
        self.reload_failures = counter(
            "config_reload_failures",
            "Reloads that failed (the last good configuration stays served)",
        )
        self.database_up = gauge(
            "database_up",
            "1 while the gateway database answers, 0 while it is unreachable (per worker)",
            "livemin",
        )
        self.usage_dropped = counter(
            "usage_records_dropped",
            "Usage records lost: the database failed and the in-memory buffer was full",
        )
        self.limit_decisions = counter(
            "limit_decisions",
            "Limit decisions of /v1 requests by outcome: admitted, limited, budget, fallback "
            "(admitted on per-process counters while Redis was unreachable), unavailable",
            "outcome",
        )
        self.shared_state_errors = counter(
            "shared_state_errors", "Calls to the shared state (Redis) that failed or timed out"
        )
        self.shared_state_breaker = gauge(
            "shared_state_breaker",
            "The shared state's circuit breaker: 0 closed, 1 open (Redis skipped), 2 half-open",
            "livemax",
        )
        self._cooldowns_seen = 0
        self._usage_dropped_seen = 0

    # -- recording --------------------------------------------------------------------------------

    def answered(self, a: Answered) -> None:
        """Record a request the runtime answered."""
        route_, provider, model, total = a.route or "", a.provider, a.model, a.total
        attempts = a.attempts
        self.requests.labels(a.endpoint, route_, provider, model, str(a.status)).inc()
        self.duration.labels(route_, provider, model).observe(total)
        if attempts:
            last = attempts[-1]
            upstream = last.latency_ms / 1000.0
            self.upstream.labels(last.provider_id, last.model_id).observe(upstream)
            if len(attempts) == 1:
                self.overhead.observe(max(total - upstream, 0.0))
            else:
                self._walk(attempts, route_)
        if a.ttft is not None:
            self.ttft.labels(provider, model).observe(a.ttft)
        usage = a.usage
        if usage is not None:
            if usage.prompt_tokens:
                self.tokens.labels("input", provider, model).inc(usage.prompt_tokens)
            if usage.completion_tokens:
                self.tokens.labels("output", provider, model).inc(usage.completion_tokens)

    def failed(
        self,
        endpoint: str,
        status: int,
        model: str = "",
        route: str | None = None,
        exc: BaseException | None = None,
        total: float | None = None,
    ) -> None:
        """Record a request answered with an error (``model`` empty when it did not resolve)."""
        route_ = route or ""
        self.requests.labels(endpoint, route_, "", model, str(status)).inc()
        if total is not None:
            self.duration.labels(route_, "", model).observe(total)
        if isinstance(exc, AllTargetsFailedError):
            for f in exc.failures:
                pid, _, mid = f.target.partition("/")
                if f.attempts > 1:
                    self.retries.labels(pid, mid).inc(f.attempts - 1)
            if len(exc.failures) > 1:
                self.fallbacks.labels(route_).inc(len(exc.failures) - 1)

    def _walk(self, attempts: tuple[Attempt, ...] | list[Attempt], route: str) -> None:
        prev: tuple[str, str] | None = None
        for a in attempts:
            key = (a.provider_id, a.model_id)
            if key == prev:
                self.retries.labels(*key).inc()
            elif prev is not None:
                self.fallbacks.labels(route).inc()
            prev = key

    def cooldowns_entered(self, total: int) -> None:
        """The runtime's count of cooldowns entered so far (this process): count the new ones."""
        if total > self._cooldowns_seen:
            self.cooldowns.inc(total - self._cooldowns_seen)
            self._cooldowns_seen = total

    def database(self, up: bool | None, usage_dropped: int) -> None:
        """Whether the database answers (None: not known yet) and the usage recorder's total of
        dropped records (the counter grows by the difference)."""
        if up is not None:
            self.database_up.set(1 if up else 0)
        if usage_dropped > self._usage_dropped_seen:
            self.usage_dropped.inc(usage_dropped - self._usage_dropped_seen)
            self._usage_dropped_seen = usage_dropped

    def served_revision(self, revision: int | None) -> None:
        """The configuration revision this process serves now."""
        if revision is not None:
            self.revision.set(revision)

    # -- exposition -------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition: this process's values, or every worker's added up."""
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


#: at most this many consumers get spend gauges (by name): a scrape costs a bounded query
MAX_CONSUMER_GAUGES = 1000


def consumer_gauges(spent: Sequence[ConsumerSpend]) -> bytes:
    """The text exposition of each consumer's spend and remaining budget in its window.

    Computed from the ledger on each scrape by the process answering it (every worker reads the
    same database), so the values are never added up across workers (no value files).
    """
    labels = ("consumer", "period")
    spend = GaugeMetricFamily(
        "gwconfig_consumer_spend_usd",
        "Spend of a consumer in its current budget window (UTC day, week or month), USD",
        labels=labels,
    )
    remaining = GaugeMetricFamily(
        "gwconfig_consumer_budget_remaining_usd",
        "What is left of a consumer's budget in its current window, USD (consumers with one)",
        labels=labels,
    )
    for c in spent[:MAX_CONSUMER_GAUGES]:
        spend.add_metric((c.name, c.period), c.spend_usd)
        if c.remaining_usd is not None:
            remaining.add_metric((c.name, c.period), c.remaining_usd)

    class _Families:
        def collect(self) -> list[GaugeMetricFamily]:
            return [spend, remaining]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families())
    return generate_latest(registry)


def process_exited(pid: int | None = None) -> None:
    """Forget a stopped worker's live gauges (multiprocess mode only)."""
    if multiprocess():
        mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]


# -- access log -----------------------------------------------------------------------------------


def log_access(**fields: Any) -> None:
    """Write one JSON line to the ``gwconfig.access`` logger (no prompt, no token, no secret:
    callers pass only the fields below, names and numbers)."""
    if access_log.isEnabledFor(logging.INFO):
        fields["ts"] = round(time.time(), 3)
        access_log.info(orjson.dumps(fields).decode())


def configure_access_log(enabled: bool) -> None:
    """Send access lines to standard error as they are (one JSON object a line)."""
    access_log.propagate = False
    access_log.handlers.clear()
    if not enabled:
        access_log.setLevel(logging.WARNING)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
