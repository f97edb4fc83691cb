"""The per-token request limits of ``/v1``, counted in each worker process."""

from __future__ import annotations

import math
import time

from gwconfig.runtime.resilience import RateLimiter

#: the most distinct tokens whose request windows one process keeps
MAX_TRACKED_TOKENS = 10_000


class CallerLimits:
    """Each token's requests-per-minute limit, counted in this process.

    With ``workers`` processes each takes its share (``ceil(rpm / workers)``): the kernel
    spreads connections over the workers, so together they let about ``rpm`` through.
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(workers, 1)
        self._limiters: dict[str, RateLimiter] = {}

    def check(self, name: str, rpm: int) -> float:
        """0 when ``name`` may send a request now (and count it), else seconds to wait."""
        share = max(math.ceil(rpm / self.workers), 1)
        limiter = self._limiters.get(name)
        if limiter is None or limiter.rpm != share:
            if len(self._limiters) >= MAX_TRACKED_TOKENS:
                self._limiters.clear()
            limiter = self._limiters[name] = RateLimiter(share)
        now = time.monotonic()
        wait = limiter.delay(now)
        if wait > 0:
            return wait
        limiter.take(now)
        return 0.0
