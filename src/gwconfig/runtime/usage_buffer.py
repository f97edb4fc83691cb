"""The usage rows kept in memory while the database refuses them (bounded; the overflow counted).

:class:`UsageRecorder` puts a batch here when its insert fails and writes the buffer back, oldest
first, before its next batch or on its next retry tick, so a short database outage loses no row.
Past ``max_rows`` the oldest rows are dropped and counted in :attr:`UsageBuffer.dropped`.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

#: the most usage rows kept in memory while the database is unreachable
DEFAULT_MAX_ROWS = 10_000


class UsageBuffer:
    """A bounded FIFO of usage rows waiting for the database (thread-safe)."""

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.max_rows = max(1, max_rows)
        self._rows: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        #: rows dropped because the buffer was full (the oldest go first)
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._rows)

    def keep(self, rows: list[dict[str, Any]]) -> None:
        """Keep ``rows`` for a later write; drop the oldest rows past the bound."""
        with self._lock:
            self._rows.extend(rows)
            over = len(self._rows) - self.max_rows
            for _ in range(max(0, over)):
                self._rows.popleft()
            self.dropped += max(0, over)

    def take(self) -> list[dict[str, Any]]:
        """Every kept row, oldest first (the buffer is then empty)."""
        with self._lock:
            rows = list(self._rows)
            self._rows.clear()
        return rows
