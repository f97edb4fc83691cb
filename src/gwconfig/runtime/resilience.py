"""Retry delays (exponential backoff, full jitter, Retry-After), target ordering and cooldowns."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Protocol

from gwconfig.runtime.config.gateway import RequestSettings, Target, TargetGroup

#: Never sleep longer than this for one retry, whatever Retry-After says.
MAX_RETRY_AFTER_SECONDS = 300.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def backoff_delay(
    settings: RequestSettings,
    retry_number: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before retry ``retry_number`` (1-based): capped exponential, full jitter.

    A ``Retry-After`` from the provider is a floor: the delay is never shorter than it asks.
    """
    base = settings.backoff_initial_seconds * settings.backoff_multiplier ** (retry_number - 1)
    delay = min(base, settings.backoff_max_seconds)
    if settings.jitter and delay > 0:
        delay = (rng or random).uniform(0.0, delay)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def order_targets(groups: Sequence[TargetGroup], rng: random.Random | None = None) -> list[Target]:
    """Flatten groups into the order to try (weighted groups pick their first by weight)."""
    if len(groups) == 1 and groups[0].weights is None:
        return list(groups[0].targets)
    out: list[Target] = []
    for group in groups:
        targets = list(group.targets)
        if group.weights is not None and sum(group.weights) > 0:
            first = (rng or random).choices(range(len(targets)), weights=group.weights)[0]
            targets.insert(0, targets.pop(first))
        out.extend(targets)
    return out


class SharedCooldowns(Protocol):
    """Cooldowns every replica shares (``gwconfig.shared``, with Redis)."""

    def cooling(self, key: str) -> bool:
        """True when another replica (or this one) published a cooldown of ``key`` that has
        not ended (a cached read: no I/O)."""

    def publish(self, key: str, seconds: float) -> None:
        """Tell every replica that ``key`` cools down for ``seconds`` from now."""


class CooldownTracker:
    """Counts consecutive failures per target; a target that keeps failing is skipped a while.

    With ``shared`` set, a cooldown entered here is published to every replica, and a target
    another replica cooled down is skipped here too.
    """

    def __init__(self) -> None:
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        #: how many times a target has entered its cooldown (for metrics)
        self.entered = 0
        self.shared: SharedCooldowns | None = None

    def is_cooling(self, key: str, now: float | None = None) -> bool:
        """True when ``key`` is in its cooldown period (here, or published by a replica)."""
        until = self._until.get(key)
        if until is None:
            return self.shared is not None and self.shared.cooling(key)
        if (time.monotonic() if now is None else now) >= until:
            del self._until[key]
            self._failures.pop(key, None)
            return False
        return True

    def success(self, key: str) -> None:
        """Record a success: the failure count starts again."""
        if key in self._failures:
            del self._failures[key]

    def failure(self, key: str, settings: RequestSettings, now: float | None = None) -> bool:
        """Record a failure; returns True when the target has just entered its cooldown."""
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        if count >= settings.cooldown_failures and settings.cooldown_seconds > 0:
            self._until[key] = (
                time.monotonic() if now is None else now
            ) + settings.cooldown_seconds
            self.entered += 1
            if self.shared is not None:
                self.shared.publish(key, settings.cooldown_seconds)
            return True
        return False

    def cooling(self) -> list[str]:
        """Targets currently cooling down."""
        now = time.monotonic()
        return sorted(k for k, until in self._until.items() if until > now)


class RateLimiter:
    """Requests-per-minute cap over a sliding one-minute window of request start times."""

    def __init__(self, rpm: int) -> None:
        self.rpm = rpm
        self._starts: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Seconds to wait before another request may start at ``now`` (0 when it may now)."""
        starts = self._starts
        while starts and starts[0] <= now - 60.0:
            starts.popleft()
        if len(starts) < self.rpm:
            return 0.0
        return starts[0] + 60.0 - now

    def take(self, now: float) -> None:
        """Record a request starting at ``now``."""
        self._starts.append(now)


class TokenLimiter:
    """Tokens-per-minute cap over a sliding one-minute window of the tokens requests used.

    Usage is known only when a request has finished, so a request may start while the window
    still has room and take it past the cap; the next ones then wait until enough of the
    window's tokens are older than a minute.
    """

    def __init__(self, tpm: int) -> None:
        self.tpm = tpm
        self._used: deque[tuple[float, int]] = deque()
        self._total = 0

    def delay(self, now: float) -> float:
        """Seconds to wait before another request may start at ``now`` (0 when it may now)."""
        used = self._used
        while used and used[0][0] <= now - 60.0:
            self._total -= used.popleft()[1]
        if self._total < self.tpm:
            return 0.0
        total = self._total
        for when, tokens in used:
            total -= tokens
            if total < self.tpm:
                return when + 60.0 - now
        return 0.0  # unreachable: the window empties eventually

    def add(self, now: float, tokens: int) -> None:
        """Record ``tokens`` used by a request that finished at ``now``."""
        if tokens > 0:
            self._used.append((now, tokens))
            self._total += tokens
