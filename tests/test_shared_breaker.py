"""The circuit breaker (injected clock), the Redis URL forms, and the limits over a Redis that
does not answer: request limits fall back to per-process counters, budgets fail closed."""

from __future__ import annotations

import asyncio

import pytest

from gwconfig.errors import ConfigurationError
from gwconfig.runtime.config.consumers import ConsumerPolicy
from gwconfig.runtime.config.shared_state import SharedStatePolicy
from gwconfig.shared.backend import BackendUnavailable
from gwconfig.shared.breaker import CircuitBreaker
from gwconfig.shared.limits import Ask, Refused, SharedLimits
from gwconfig.shared.redis_backend import RedisBackend, parse_url, redacted
from redis_server import RedisServer
from serve_helpers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_failures_then_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooloff=5.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert (breaker.state, breaker.allow(), breaker.opened) == ("open", False, 1)
    clock.now += 5.0
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: open again for a full cool-off
    assert (breaker.state, breaker.opened) == ("open", 2)
    clock.now += 5.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:6379/0", ("redis://h:6379/0", False)),
        ("rediss://:pw@h:6380/1", ("rediss://:pw@h:6380/1", False)),
        ("redis+cluster://h:7000", ("redis://h:7000", True)),
        ("rediss+cluster://h:7000", ("rediss://h:7000", True)),
        ("redis://h:7000/0?cluster=true&db=0", ("redis://h:7000/0?db=0", True)),
    ],
)  # fmt: skip
def test_redis_urls(url: str, expected: tuple[str, bool]) -> None:
    assert parse_url(url) == expected


def test_a_bad_redis_url_names_the_scheme_never_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url("http://user:hunter2@h:6379")
    assert "redis://" in str(info.value) and "'http'" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert redacted("rediss://user:hunter2@h:6380/2") == "rediss://h:6380/2"


def test_a_dead_redis_falls_back_for_limits_and_closes_budgets() -> None:
    port = free_port()  # nothing listens there
    clock = Clock()
    errors: list[int] = []
    backend = RedisBackend(
        f"redis://127.0.0.1:{port}/0",
        timeout=2.0,
        breaker=CircuitBreaker(failures=2, cooloff=30.0, clock=clock),
        on_error=lambda: errors.append(1),
    )
    outcomes: list[str] = []
    limits = SharedLimits(backend, workers=2, on_decision=outcomes.append)
    budget = ConsumerPolicy(name="team", models=("*",), budget_usd=5.0, budget_period="day")

    async def go() -> list[object]:
        out: list[object] = []
        for _ in range(3):  # token rpm 4 over 2 workers: this worker's share is 2
            try:
                out.append(await limits.admit(Ask("app", token_rpm=4)))
            except Refused as exc:
                out.append(exc.decision)
        try:
            await limits.admit(Ask("app2", consumer=budget, cost_usd=0.01))
        except Refused as exc:
            out.append(exc.decision)
        await limits.aclose()
        return out

    first, second, third, closed = asyncio.run(go())
    assert first.headers["x-ratelimit-remaining-requests"] == "1"  # type: ignore[attr-defined]
    assert second.headers["x-ratelimit-remaining-requests"] == "0"  # type: ignore[attr-defined]
    assert third.outcome == "limited"  # type: ignore[attr-defined]
    assert third.headers["x-ratelimit-limit-requests"] == "2"  # type: ignore[attr-defined]
    assert closed.outcome == "unavailable" and closed.limit == "budget"  # type: ignore[attr-defined]
    assert outcomes == ["fallback", "fallback", "limited", "unavailable"]
    assert len(errors) == 2  # after two failures the breaker skips Redis: no more attempts
    assert backend.breaker.state == "open"


def test_limits_closed_refuse_while_redis_is_away() -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", timeout=2.0)
    policy = SharedStatePolicy(limits_on_unavailable="closed")
    limits = SharedLimits(backend, policy=policy)

    async def go() -> str:
        try:
            await limits.admit(Ask("app", token_rpm=10))
        except Refused as exc:
            return exc.decision.outcome
        finally:
            await limits.aclose()
        return "admitted"

    assert asyncio.run(go()) == "unavailable"


def test_a_password_and_a_database_number_in_the_url(redis_server: RedisServer) -> None:
    redis_server.stop()
    redis_server.start("--requirepass", "s3cret-pw")
    base = f"127.0.0.1:{redis_server.port}"

    async def go() -> tuple[bool, bytes, bool]:
        good = RedisBackend(f"redis://:s3cret-pw@{base}/3", timeout=5.0)
        admitted = (await good.hit("gw:{t:pw}:req", 1, "a", None)).admitted
        where = await good.execute("TYPE", "gw:{t:pw}:req")
        await good.execute("SELECT", 0)
        elsewhere = await good.execute("EXISTS", "gw:{t:pw}:req")
        await good.aclose()
        wrong = RedisBackend(f"redis://:nope@{base}/0", timeout=5.0)
        try:
            await wrong.hit("gw:{t:pw}:req", 1, "b", None)
            refused = False
        except BackendUnavailable:
            refused = True
        await wrong.aclose()
        return admitted and not elsewhere, where, refused

    assert asyncio.run(go()) == (True, b"zset", True)
