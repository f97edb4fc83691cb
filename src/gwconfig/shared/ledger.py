"""The ledger budgets are rebuilt from, and the budget periods.

The database's usage records (with their cost) are the truth about spend; Redis holds hot
counters. :class:`Ledger` is what the limits need of it: the spend of one consumer since a
moment. :class:`MemoryLedger` is the in-process one (tests, and a gateway without a database
ledger).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

PERIODS = ("day", "week", "month")


class Ledger(Protocol):
    """The spend recorded for a consumer (may block: it is called in a thread)."""

    def spend(self, consumer: str, since: datetime) -> float:
        """USD spent by ``consumer`` from ``since`` (UTC) until now."""


def period_start(period: str, now: datetime) -> datetime:
    """The start of the UTC calendar ``period`` (day, week from Monday, month) holding ``now``."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown budget period {period!r} (day, week or month)")


def period_seconds(period: str, start: datetime) -> int:
    """How long the period starting at ``start`` lasts, in seconds."""
    if period == "day":
        return 86_400
    if period == "week":
        return 7 * 86_400
    nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return int((nxt - start).total_seconds())


class MemoryLedger:
    """Spend records kept in memory: ``(consumer, when, usd)``."""

    def __init__(self) -> None:
        self._records: list[tuple[str, datetime, float]] = []
        self._lock = threading.Lock()

    def record(self, consumer: str, when: datetime, usd: float) -> None:
        """Add one record."""
        with self._lock:
            self._records.append((consumer, when, usd))

    def spend(self, consumer: str, since: datetime) -> float:
        """See :meth:`Ledger.spend`."""
        with self._lock:
            return sum(usd for c, when, usd in self._records if c == consumer and when >= since)
