"""The shared limits on each backend (a private redis-server, and this process's counters):
the sliding window exact under concurrency and sliding with injected time, reservations
against a tpm and a budget (settle, release, expiry), the spend rebuilt from the ledger after
FLUSHALL, and the decisions' headers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from gwconfig.runtime.config.consumers import ConsumerPolicy
from gwconfig.shared.backend import Backend, ConsumerKeys, Hold
from gwconfig.shared.ledger import MemoryLedger, period_start
from gwconfig.shared.limits import Ask, Refused, SharedLimits
from gwconfig.shared.local import LocalBackend
from redis_server import RedisServer

T = TypeVar("T")
NOW = 1_800_000_000_000  # ms; a fixed moment the tests move by hand
MINUTE = 60_000


def run(work: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(work())  # type: ignore[arg-type]


@pytest.fixture(params=["redis", "local"])
def make_backend(request: pytest.FixtureRequest) -> Iterator[Callable[[], Backend]]:
    """A factory of backends over one store: new Redis connections to the same server, or the
    one process-local backend (whose instances share nothing, so the factory returns it)."""
    if request.param == "local":
        local = LocalBackend(clock=lambda: NOW / 1000)
        yield lambda: local
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    from gwconfig.shared.redis_backend import RedisBackend

    yield lambda: RedisBackend(server.url, timeout=5.0)


def test_the_window_admits_exactly_the_limit_under_concurrency(
    make_backend: Callable[[], Backend],
) -> None:
    async def go() -> int:
        backends = [make_backend() for _ in range(10)]  # ten clients, their own connections
        hits = [
            b.hit("gw:{t:app}:req", 40, f"m{i}-{j}", NOW)
            for i in range(25)
            for j, b in enumerate(backends)
        ]
        results = await asyncio.gather(*hits)
        for b in set(backends):
            await b.aclose()
        return sum(r.admitted for r in results)

    assert run(go) == 40


def test_the_window_slides_with_the_time_passed_in(make_backend: Callable[[], Backend]) -> None:
    async def go() -> list[Any]:
        b = make_backend()
        key = "gw:{t:slide}:req"
        out = [await b.hit(key, 3, f"r{t}", NOW + t * 1000) for t in (0, 10, 20, 30)]
        out.append(await b.hit(key, 3, "r59", NOW + 59_999))  # the first is still in the window
        out.append(await b.hit(key, 3, "r60", NOW + MINUTE))  # now it has left
        out.append(await b.hit(key, 3, "r61", NOW + MINUTE + 1))
        await b.aclose()
        return out

    r = run(go)
    assert [x.admitted for x in r] == [True, True, True, False, False, True, False]
    assert [x.remaining for x in r[:3]] == [2, 1, 0]
    assert r[3].reset_ms == 30_000  # the request of t=0 leaves the window at t=60
    assert r[6].reset_ms == 10_000 - 1  # then the one of t=10


def test_a_taken_back_request_frees_its_place(make_backend: Callable[[], Backend]) -> None:
    async def go() -> bool:
        b = make_backend()
        await b.hit("gw:{t:back}:req", 1, "a", NOW)
        await b.unhit("gw:{t:back}:req", "a")
        admitted = (await b.hit("gw:{t:back}:req", 1, "b", NOW)).admitted
        await b.aclose()
        return admitted

    assert run(go)


def _hold(rid: str, *, tokens: int = 0, tpm: int | None = None, cost: int = 0) -> Hold:
    return Hold(rid, tpm, tokens, 1_000_000 if tpm is None else None, cost, 120_000)


def test_reservations_settle_release_and_expire(make_backend: Callable[[], Backend]) -> None:
    keys = ConsumerKeys.of("team", "2027-01-15")

    async def go() -> list[Any]:
        b = make_backend()
        out: list[Any] = [await b.hold(keys, _hold("x"), NOW)]  # no counter yet: rebuild first
        await b.seed_spend(keys.spend, 0, 3600)
        a = _hold("a", cost=400_000)
        out += [await b.hold(keys, a, NOW), await b.hold(keys, _hold("b", cost=400_000), NOW)]
        out.append(await b.hold(keys, _hold("c", cost=400_000), NOW))  # 0.8 held: no room
        await b.finish(keys, a, None, 100_000, 0)  # a cost 0.1: 0.5 held + spent
        out.append(await b.hold(keys, _hold("d", cost=400_000), NOW))  # 0.1 + 0.8: fits
        out.append(await b.hold(keys, _hold("e", cost=200_000), NOW))  # 0.9 + 0.2: over
        out.append(await b.hold(keys, _hold("f", cost=200_000), NOW + 120_000))  # b, d expired
        await b.aclose()
        return out

    r = run(go)
    assert r[0].missing
    assert [x.reserved for x in r[1:]] == [True, True, False, True, False, True]
    assert r[3].limit == "budget" and r[3].room == 200_000
    assert r[5].room == 100_000


def test_a_token_window_reserves_settles_and_slides(make_backend: Callable[[], Backend]) -> None:
    keys = ConsumerKeys.of("tok", "2027-01-15")

    async def go() -> list[Any]:
        b = make_backend()
        first = _hold("a", tokens=600, tpm=1000)
        out: list[Any] = [await b.hold(keys, first, NOW)]
        out.append(await b.hold(keys, _hold("b", tokens=600, tpm=1000), NOW + 1000))
        await b.finish(keys, first, out[0].bucket, 0, 100 - 600)  # it used 100 tokens
        out.append(await b.hold(keys, _hold("c", tokens=600, tpm=1000), NOW + 2000))
        out.append(await b.hold(keys, _hold("d", tokens=600, tpm=1000), NOW + 3000))
        out.append(await b.hold(keys, _hold("e", tokens=600, tpm=1000), NOW + 63_000))
        await b.aclose()
        return out

    r = run(go)
    assert [x.reserved for x in r] == [True, False, True, False, True]
    assert r[1].limit == "tpm" and r[1].room == 400
    assert r[3].room == 300 and r[3].wait_ms == 60_000  # "c" must leave: 61 s after its second


def policy(**kw: Any) -> ConsumerPolicy:
    return ConsumerPolicy(name="team-search", models=("*",), **kw)


def limits_on(backend: Backend | None, ledger: MemoryLedger | None = None) -> SharedLimits:
    shared = None if isinstance(backend, LocalBackend) else backend
    limits = SharedLimits(shared, ledger=ledger, clock=lambda: NOW / 1000)
    if isinstance(backend, LocalBackend):
        limits.local = backend
    limits.now_ms = lambda: NOW
    return limits


def test_a_spent_budget_stays_spent_after_flushall(redis_server: RedisServer) -> None:
    from gwconfig.shared.redis_backend import RedisBackend

    ledger = MemoryLedger()
    start = period_start("day", datetime.fromtimestamp(NOW / 1000, UTC))
    ledger.record("team-search", start, 0.9)  # spent before this process started
    consumer = policy(budget_usd=1.0, budget_period="day")
    ask = Ask(token="app", consumer=consumer, tokens=10, cost_usd=0.05)

    async def go() -> list[str]:
        replicas = [limits_on(RedisBackend(redis_server.url, timeout=5.0), ledger) for _ in "ab"]
        outcomes: list[str] = []

        async def one(limits: SharedLimits) -> None:
            try:
                admission = await limits.admit(ask)
                outcomes.append("admitted")
                await admission.settle(10, 0.05)
            except Refused as exc:
                outcomes.append(exc.decision.outcome)

        await asyncio.gather(*(one(replicas[i % 2]) for i in range(4)))  # both rebuild at once
        ledger.record("team-search", start, 0.1)  # the ledger has the two answers too
        await replicas[0].shared.execute("FLUSHALL")  # type: ignore[union-attr]
        await one(replicas[1])  # rebuilt from the ledger: 1.0 spent
        for r in replicas:
            await r.aclose()
        return outcomes

    assert sorted(run(go)) == ["admitted", "admitted", "budget", "budget", "budget"]


def test_refusals_say_which_limit_with_headers(make_backend: Callable[[], Backend]) -> None:
    consumer = policy(rpm=2, tpm=1000)

    async def go() -> list[Any]:
        limits = limits_on(make_backend())
        out: list[Any] = [await limits.admit(Ask(token="app", token_rpm=5, consumer=consumer,
                                                 tokens=900))]  # fmt: skip
        for tokens in (200, 10, 10):
            try:
                out.append(await limits.admit(Ask("app", 5, consumer, tokens=tokens)))
            except Refused as exc:
                out.append(exc.decision)
        await limits.aclose()
        return out

    first, tokens, second, third = run(go)
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert tokens.outcome == "limited" and tokens.limit == "tokens"
    assert tokens.headers["x-ratelimit-remaining-tokens"] == "100"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"  # the tokens refusal gave back
    assert third.outcome == "limited" and third.limit == "requests"
    assert "consumer 'team-search' is limited to 2 requests per minute" in third.message
    assert third.headers["x-ratelimit-limit-requests"] == "2"
    assert third.retry_after == 60.0
