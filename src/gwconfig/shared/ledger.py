"""The ledger budgets are rebuilt from (the periods are :mod:`gwconfig.periods`

The database's usage records (with their cost) are the truth about spend; Redis holds hot
counters. :class:`Ledger` is what the limits need of it: the spend of one consumer since a
moment. :class:`MemoryLedger` is the in-process one (tests, and a gateway without a database
ledger).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Protocol

from gwconfig.periods import PERIODS, period_seconds, period_start

__all__ = ["PERIODS", "Ledger", "MemoryLedger", "period_seconds", "period_start"]


class Ledger(Protocol):
    """The spend recorded for a consumer (may block: it is called in a thread)."""

    def spend(self, consumer: str, since: datetime) -> float:
        """USD spent by ``consumer`` from ``since`` (UTC) until now."""


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
