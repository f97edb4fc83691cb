"""A circuit breaker: after ``failures`` failures in a row, skip the guarded call for
``cooloff`` seconds, then let one probe through (a success closes it again)."""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
#: the breaker state as a gauge value
STATE_VALUES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}


class CircuitBreaker:
    """Counts consecutive failures of a dependency; while open, callers skip it at no cost."""

    def __init__(
        self,
        failures: int = 3,
        cooloff: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = max(failures, 1)
        self.cooloff = cooloff
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._probing = False
        #: how many times the breaker has opened (for metrics)
        self.opened = 0

    @property
    def state(self) -> str:
        """``closed``, ``open`` (calls skipped) or ``half_open`` (one probe allowed)."""
        if self._opened_at is None:
            return CLOSED
        if self._clock() - self._opened_at >= self.cooloff:
            return HALF_OPEN
        return OPEN

    def allow(self) -> bool:
        """True when a call may go to the dependency now (in half-open: the one probe)."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        """A call succeeded: the breaker closes."""
        self._count = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        """A call failed: count it; the ``failures``-th in a row (or a failed probe) opens."""
        self._count += 1
        if self._probing or self._count >= self.failures:
            if self._opened_at is None or self._probing:
                self.opened += 1
            self._opened_at = self._clock()
            self._probing = False
