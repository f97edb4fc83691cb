"""Usage records: a row per request in ``usage_records``, batched off the request path."""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

from gwconfig.runtime.usage_buffer import DEFAULT_MAX_ROWS, UsageBuffer

log = logging.getLogger(__name__)

_STOP = object()


class UsageRecorder:
    """Queues usage rows and inserts them from a background thread (executemany, batched).

    :meth:`record` never blocks and never raises. A batch the database refuses is kept in a
    bounded :class:`~gwconfig.runtime.usage_buffer.UsageBuffer` and written, oldest first, with
    the next batch or every ``retry_interval`` seconds until the database takes it; past the
    bound rows are dropped and counted in :attr:`dropped`. :meth:`close` flushes what is queued.
    """

    def __init__(
        self,
        engine: Any,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        retry_interval: float = 1.0,
        max_buffered: int = DEFAULT_MAX_ROWS,
    ) -> None:
        from sqlalchemy import insert  # SQLAlchemy: only with a database

        from gwconfig.db.models import UsageRecord  # SQLAlchemy: only with a database

        self._engine = engine
        self._insert = insert(UsageRecord)
        self._batch_size = batch_size
        self._interval = flush_interval
        self._retry = retry_interval
        self._buffer = UsageBuffer(max_buffered)
        self._failing = False
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._flushed = threading.Condition()
        self._pending = 0
        self.written = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gwconfig-usage", daemon=True)
        self._thread.start()

    def record(
        self,
        *,
        provider_id: str,
        model_id: str,
        session_id: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        latency_ms: float,
        attempts: int,
        outcome: str,
        error: str | None = None,
        prompt: str | None = None,
        token_name: str | None = None,
        consumer: str | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """Queue one row (returns at once); ``cost_usd`` is what the request cost by the
        model's pricing (:func:`gwconfig.pricing.cost_usd`), the ledger of the consumers' spend."""
        if self._closed:
            return
        total = (
            (prompt_tokens or 0) + (completion_tokens or 0)
            if prompt_tokens is not None or completion_tokens is not None
            else None
        )
        with self._flushed:
            self._pending += 1
        self._queue.put(
            {
                "created_at": datetime.now(UTC),
                "provider_id": provider_id[:64],
                "model_id": model_id[:255],
                "session_id": session_id[:255] if session_id else None,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": total,
                "latency_ms": round(latency_ms),
                "attempts": attempts,
                "outcome": outcome[:32],
                "error": error,
                "prompt": prompt,
                "token_name": token_name[:64] if token_name else None,
                "consumer": consumer[:64] if consumer else None,
                "cost_usd": cost_usd,
            }
        )

    @property
    def dropped(self) -> int:
        """Rows lost: the database refused them and the buffer was full."""
        return self._buffer.dropped

    @property
    def buffered(self) -> int:
        """Rows waiting in memory for the database to take them."""
        return len(self._buffer)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued row has been written (or dropped); False on timeout."""
        with self._flushed:
            return self._flushed.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Flush and stop the writer thread."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:  # with rows waiting for the database, try them again now and then
                item = self._queue.get(timeout=self._retry if len(self._buffer) else None)
            except queue.Empty:
                self._write([])
                continue
            if item is _STOP:
                if len(self._buffer):
                    self._write([])  # a last try for what the database refused
                return
            batch = [item]
            stop = False
            deadline = time.monotonic() + self._interval
            while len(batch) < self._batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[dict[str, Any]]) -> None:
        rows = self._buffer.take() + batch
        try:
            if rows:
                with self._engine.begin() as conn:
                    conn.execute(self._insert, rows)
                self.written += len(rows)
                self._failing = False
        except Exception as exc:  # the request path must never fail because of usage records
            self._buffer.keep(rows)
            # one warning per outage; the retries every ``retry_interval`` log at debug level
            level = logging.DEBUG if self._failing else logging.WARNING
            self._failing = True
            log.log(
                level,
                "kept %d usage record(s) in memory (%d dropped so far): %s",
                len(rows),
                self._buffer.dropped,
                type(exc).__name__,
            )
        finally:
            with self._flushed:
                self._pending -= len(batch)
                self._flushed.notify_all()
