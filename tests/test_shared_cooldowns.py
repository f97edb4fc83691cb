"""Shared across replicas with Redis: a cooldown one replica entered is skipped by the others
(after their next read), and a provider's ``rate_limit_rpm`` is one window for all."""

from __future__ import annotations

import asyncio
import time

import pytest

from builders import config, provider
from gwconfig.runtime.config.build import build_gateway_config
from gwconfig.runtime.config.gateway import RequestSettings
from gwconfig.runtime.errors import ProviderUnavailableError
from gwconfig.runtime.resilience import CooldownTracker
from gwconfig.runtime.throttle import Throttle
from gwconfig.server.metrics import Metrics
from gwconfig.server.openai.limits import LimitGuard
from gwconfig.shared.cooldowns import RedisCooldowns
from gwconfig.shared.redis_backend import RedisBackend
from redis_server import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_cooldown_entered_by_one_replica_is_skipped_by_the_others(
    redis_server: RedisServer,
) -> None:
    clock = Clock()
    settings = RequestSettings(cooldown_failures=1, cooldown_seconds=30)

    async def go() -> list[bool]:
        a, b = (RedisCooldowns(RedisBackend(redis_server.url, timeout=5.0), clock=clock)
                for _ in "ab")  # fmt: skip
        here, there = CooldownTracker(), CooldownTracker()
        here.shared, there.shared = a, b
        out = [there.is_cooling("up/gpt")]
        assert here.failure("up/gpt", settings)  # entered here, published in the background
        await asyncio.gather(*a._tasks)
        out.append(there.is_cooling("up/gpt"))  # not read yet: the lag the docs state
        await b.read()
        out.append(there.is_cooling("up/gpt"))
        clock.now += 31
        await b.read()  # over: dropped from Redis too
        out.append(there.is_cooling("up/gpt"))
        out.append(bool(await b.backend.cooldowns()))
        for c in (a, b):
            await c.backend.aclose()
        return out

    assert asyncio.run(go()) == [False, False, True, False, False]


def test_a_provider_rpm_is_one_window_over_replicas(redis_server: RedisServer) -> None:
    doc = provider("capped", request_settings={"rate_limit_rpm": 2, "backoff_max_seconds": 1})
    pc = build_gateway_config(config(doc), "default", lambda ref, scope: "x").providers["capped"]

    async def go() -> None:
        guards = [LimitGuard(Metrics(), redis_url=redis_server.url, redis_timeout=5.0)
                  for _ in "ab"]  # fmt: skip
        throttles = [Throttle(asyncio.sleep) for _ in guards]
        for t, g in zip(throttles, guards, strict=True):
            t.shared = g
        deadline = time.monotonic() + 60
        await throttles[0].wait(pc, deadline)
        await throttles[1].wait(pc, deadline)
        with pytest.raises(ProviderUnavailableError) as over:  # a third replica's would too
            await throttles[0].wait(pc, deadline)
        assert over.value.status == 429 and "2 requests/minute" in str(over.value)
        for g in guards:
            await g.aclose()

    asyncio.run(go())
