"""Health checks: one small real call per model through the runtime, a few at a time.

Each check sends a short prompt with a small ``max_tokens`` to one ``provider/model`` (pinned:
no fallback hides a broken target) with its own deadline; the result says how long it took and,
when it failed, why (the runtime's message, scrubbed of the provider's secrets).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from gwconfig.errors import GwconfigError
from gwconfig.runtime.client import LLMGatewayClient
from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.runtime.errors import NoRouteError
from gwconfig.runtime.messages import LLMConfig, LLMRequest

PROMPT = "Reply with the word OK."
MAX_TOKENS = 5
#: the longest error text kept per check
MAX_ERROR = 500
#: at most this many checks in one run (``--all`` on a huge catalogue must be asked for)
MAX_CHECKS = 10_000


@dataclass(frozen=True, slots=True)
class HealthResult:
    """The outcome of one check."""

    target: str
    ok: bool
    latency_ms: float
    attempts: int
    error: str | None = None


def route_targets(config: GatewayConfig) -> list[str]:
    """``provider/model`` of every enabled target of every route (what traffic uses), in order."""
    out: dict[str, None] = {}
    for route in config.routes.values():
        for pid, mid, _w in route.targets:
            p = config.providers.get(pid)
            if p is not None and p.enabled and mid in p.models and p.models.enabled(mid):
                out[f"{pid}/{mid}"] = None
    return list(out)


def all_targets(config: GatewayConfig) -> list[str]:
    """``provider/model`` of every enabled model of every enabled provider."""
    return [
        f"{p.provider_id}/{mid}"
        for p in config.providers.values()
        if p.enabled
        for mid in p.models
        if p.models.enabled(mid)
    ]


def resolve_targets(config: GatewayConfig, identifiers: Iterable[str]) -> list[str]:
    """The first target of each identifier (route, alias, model or ``provider/model``)."""
    out: dict[str, None] = {}
    for identifier in identifiers:
        res = config.resolve(identifier)
        for group in res.groups:
            for t in group.targets:
                out[t.key] = None
    return list(out)


async def check_all(
    client: LLMGatewayClient,
    targets: list[str],
    *,
    timeout: float,
    concurrency: int,
) -> list[HealthResult]:
    """Check ``targets`` (``provider/model``), ``concurrency`` at a time, each within
    ``timeout`` seconds; results in the order of ``targets``."""
    if len(targets) > MAX_CHECKS:
        raise NoRouteError(
            f"{len(targets)} models to check; at most {MAX_CHECKS} in one run",
            hint="name the models to check with --model",
        )
    gate = asyncio.Semaphore(max(concurrency, 1))

    async def one(target: str) -> HealthResult:
        async with gate:
            return await check_one(client, target, timeout)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def check_one(client: LLMGatewayClient, target: str, timeout: float) -> HealthResult:
    """One small real call to ``target``; never raises for a failed call."""
    pid = target.split("/", 1)[0]
    request = LLMRequest(
        [{"role": "user", "content": PROMPT}],
        LLMConfig(
            model_identifier=target,
            provider_id=pid,
            max_tokens=MAX_TOKENS,
            deadline_seconds=timeout,
        ),
        record_prompt=False,
    )
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout + 1.0):  # the deadline's safety net
            response = await client.generate(request)
    except (GwconfigError, TimeoutError) as exc:
        ms = (time.perf_counter() - start) * 1000.0
        message = str(exc) if isinstance(exc, GwconfigError) else "no answer in time"
        provider = client.config.providers.get(pid)
        if provider is not None:  # the runtime scrubbed it already; once more costs nothing
            message = provider.secrets.scrub(message)
        first = message.strip().splitlines()
        attempts = message.count(" attempt")
        return HealthResult(target, False, ms, attempts, _short(" ".join(first)))
    ms = (time.perf_counter() - start) * 1000.0
    return HealthResult(target, True, ms, len(response.attempts))


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."
