"""Backoff delays, Retry-After parsing, weighted ordering and cooldown bookkeeping."""

from __future__ import annotations

import random
from email.utils import formatdate

from gwconfig.runtime.config.gateway import RequestSettings
from gwconfig.runtime.resilience import (
    MAX_RETRY_AFTER_SECONDS,
    CooldownTracker,
    RateLimiter,
    TokenLimiter,
    backoff_delay,
    parse_retry_after,
)


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("99999") == MAX_RETRY_AFTER_SECONDS
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    s = RequestSettings(
        backoff_initial_seconds=0.5, backoff_multiplier=2, backoff_max_seconds=3, jitter=False
    )
    assert [backoff_delay(s, n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert backoff_delay(s, 1, retry_after=2.5) == 2.5  # Retry-After is a floor
    jittered = RequestSettings(backoff_initial_seconds=1, backoff_max_seconds=8)
    rng = random.Random(1)
    delays = [backoff_delay(jittered, 3, rng=rng) for _ in range(500)]
    assert all(0 <= d <= 4 for d in delays) and max(delays) > 3 and min(delays) < 1


def test_cooldown_starts_after_consecutive_failures_and_expires() -> None:
    s = RequestSettings(cooldown_failures=2, cooldown_seconds=10)
    t = CooldownTracker()
    assert t.failure("a", s, now=0) is False
    t.success("a")  # a success resets the count
    assert t.failure("a", s, now=1) is False
    assert t.failure("a", s, now=2) is True
    assert t.is_cooling("a", now=5) and not t.is_cooling("a", now=12.5)
    assert t.failure("a", s, now=13) is False  # counting starts again after the cooldown


def test_rate_limiter_sliding_window() -> None:
    limiter = RateLimiter(2)
    for now in (0.0, 1.0):
        assert limiter.delay(now) == 0.0
        limiter.take(now)
    assert limiter.delay(30.0) == 30.0
    assert limiter.delay(60.5) == 0.0


def test_token_limiter_sliding_window() -> None:
    limiter = TokenLimiter(100)
    assert limiter.delay(0.0) == 0.0
    limiter.add(0.0, 60)
    assert limiter.delay(1.0) == 0.0  # room left: the next request may start
    limiter.add(1.0, 50)  # usage is known afterwards: the window may go past the cap
    assert limiter.delay(2.0) == 58.0  # until the first 60 tokens are a minute old
    assert limiter.delay(60.5) == 0.0
    limiter.add(61.0, 0)  # a request that reported no tokens costs nothing
    assert limiter.delay(61.5) == 0.0
