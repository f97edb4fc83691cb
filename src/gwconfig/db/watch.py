"""A per-process watcher of the configuration generation (see :mod:`gwconfig.db.notify`).

One daemon thread per database and process follows ``config_generation``:

- PostgreSQL: ``LISTEN gwconfig_config`` on a dedicated connection; a notification arrives
  when a writer commits. The counter is read once after ``LISTEN`` (and after any reconnect),
  and again every ``recheck_seconds`` as a safety net.
- SQLite and MySQL/MariaDB: one primary-key SELECT of the counter every ``interval_seconds``
  (0.25 s by default) on a dedicated autocommit connection.

API: :attr:`GenerationWatcher.current_generation`, ``await wait_for_change(after, timeout)``
(from any event loop, any number of waiters) and :meth:`GenerationWatcher.subscribe` (callbacks
run on the watcher thread: keep them short, or hand over to a loop with
``loop.call_soon_threadsafe``). :func:`shared_watcher` gives the process's started watcher of
a database (the config API, the OpenAI proxy and database-sourced runtimes share it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from sqlalchemy import Engine

from gwconfig.db.engines import engine_of
from gwconfig.db.notify import CHANNEL, GENERATION_SQL, ConfigGeneration, read_generation
from gwconfig.db.session import make_engine
from gwconfig.db.urls import error_detail

log = logging.getLogger(__name__)

Callback = Callable[[ConfigGeneration | None], None]
#: bounds of the reconnect back-off after a lost connection (seconds)
_BACKOFF = (0.05, 2.0)
#: how long the LISTEN loop waits for a notification before looking at the stop flag
_NOTIFY_WAIT = 0.25


def _engine(source: Any) -> Engine:
    engine = engine_of(source)
    if engine is None:
        raise TypeError(f"not a database: {type(source).__name__}")
    return engine  # type: ignore[no-any-return]


class GenerationWatcher:
    """Follows one database's configuration generation from a daemon thread (see the module)."""

    def __init__(
        self,
        source: Any,
        *,
        interval_seconds: float = 0.25,
        recheck_seconds: float = 30.0,
    ) -> None:
        self.engine = _engine(source)
        self.dialect = self.engine.dialect.name
        self.interval_seconds = max(0.01, interval_seconds)
        self.recheck_seconds = max(self.interval_seconds, recheck_seconds)
        self._current: ConfigGeneration | None = None
        self._known = threading.Event()  # the first read is done
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callback] = []
        self._waiters: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}
        self._thread: threading.Thread | None = None
        self._waiting = 0
        #: True after a good read, False after a failed one, None before the first attempt
        self.database_up: bool | None = None

    # -- public -----------------------------------------------------------------------------------

    @property
    def current_generation(self) -> ConfigGeneration | None:
        """The last generation seen (None before the first read, or with no counter row)."""
        return self._current

    @property
    def waiting(self) -> int:
        """How many ``wait_for_change`` calls are pending (tests order on it)."""
        return self._waiting

    def start(self, *, wait_seconds: float = 10.0) -> GenerationWatcher:
        """Start the thread and wait (at most ``wait_seconds``) for the first read."""
        with self._lock:  # two first users at once start one thread
            if self._thread is None:
                target = self._listen if self.dialect == "postgresql" else self._poll
                self._thread = threading.Thread(target=target, name="gwconfig-watch", daemon=True)
                self._thread.start()
        self._known.wait(wait_seconds)
        return self

    def stop(self) -> None:
        """Stop the thread (it ends within one check interval, or 0.25 s on PostgreSQL);
        pending :meth:`wait_for_change` calls return at once."""
        self._stop.set()
        with self._lock:  # pending wait_for_change calls return now
            waiters, self._waiters = self._waiters, {}
        for loop, future in waiters.items():
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(generation)`` on the watcher thread after every change; returns the
        function that unsubscribes it."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    async def wait_for_change(
        self, after: ConfigGeneration | None, timeout: float
    ) -> ConfigGeneration | None:
        """The current generation as soon as it differs from ``after``, or after ``timeout``
        seconds (whatever it is then)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            with self._lock:
                current = self._current
                if current != after or self._stop.is_set():
                    return current
                future = self._waiters.get(loop)
                if future is None or future.done():
                    future = self._waiters[loop] = loop.create_future()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return current
            with self._lock:
                self._waiting += 1
            try:
                await asyncio.wait_for(asyncio.shield(future), remaining)
            except TimeoutError:
                return self._current
            finally:
                with self._lock:
                    self._waiting -= 1

    # -- changes ----------------------------------------------------------------------------------

    def _seen(self, generation: ConfigGeneration | None) -> None:
        """Record ``generation``; on a change wake the waiters and call the subscribers."""
        self.database_up = True
        with self._lock:
            changed = generation != self._current
            self._current = generation
            if changed:
                waiters, self._waiters = self._waiters, {}
                callbacks = list(self._callbacks)
        self._known.set()
        if not changed:
            return
        for loop, future in waiters.items():
            with suppress(RuntimeError):  # a closed loop: nobody is waiting there any more
                loop.call_soon_threadsafe(_resolve, future)
        for callback in callbacks:
            try:
                callback(generation)
            except Exception:  # a subscriber's failure must not stop the watcher
                log.exception("a configuration-generation subscriber failed")

    # -- SQLite, MySQL/MariaDB: a cheap check -----------------------------------------------------

    def _poll(self) -> None:
        backoff = _BACKOFF[0]
        while not self._stop.is_set():
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    backoff = _BACKOFF[0]
                    while not self._stop.is_set():
                        self._seen(read_generation(conn))
                        self._stop.wait(self.interval_seconds)
            except Exception as exc:  # the database went away: try again, a bit later each time
                self._failed(exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF[1])

    # -- PostgreSQL: LISTEN -----------------------------------------------------------------------

    def _listen(self) -> None:
        backoff = _BACKOFF[0]
        while not self._stop.is_set():
            try:
                raw = self.engine.raw_connection()
                conn: Any = raw.driver_connection
                raw.detach()  # ours alone: never returned to the pool in LISTEN state
                try:
                    conn.rollback()
                    conn.autocommit = True
                    conn.execute("SET application_name = 'gwconfig-watch'")  # for pg_stat_activity
                    conn.execute(f"LISTEN {CHANNEL}")
                    backoff = _BACKOFF[0]
                    self._follow(conn)
                finally:
                    raw.close()
            except Exception as exc:
                self._failed(exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF[1])

    def _follow(self, conn: Any) -> None:
        """Read the counter, then take notifications until stopped (re-reading now and then)."""
        self._seen(_pg_read(conn))  # after LISTEN: nothing committed since can be missed
        recheck = time.monotonic() + self.recheck_seconds
        while not self._stop.is_set():
            for notify in conn.notifies(timeout=_NOTIFY_WAIT, stop_after=1):
                got = ConfigGeneration.parse(notify.payload)
                current = self._current
                if got is None:
                    self._seen(_pg_read(conn))
                elif current is None or current.epoch != got.epoch or got.number > current.number:
                    self._seen(got)
            if time.monotonic() >= recheck:
                recheck = time.monotonic() + self.recheck_seconds
                self._seen(_pg_read(conn))

    def _failed(self, exc: Exception) -> None:

        self.database_up = False
        url = self.engine.url.render_as_string(hide_password=False)
        log.warning("configuration watcher: %s (retrying)", error_detail(exc, url))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _pg_read(conn: Any) -> ConfigGeneration | None:

    row = conn.execute(GENERATION_SQL).fetchone()
    return None if row is None else ConfigGeneration(str(row[0]), int(row[1]))


_SHARED: dict[tuple[int, str], GenerationWatcher] = {}
_SHARED_LOCK = threading.Lock()


def shared_watcher(source: Any) -> GenerationWatcher:
    """This process's started watcher of the database behind ``source`` (made on first use).

    It has its own engine (one connection), so it outlives whoever opened ``source``.
    """
    engine = _engine(source)
    url = engine.url.render_as_string(hide_password=False)
    key = (os.getpid(), url)
    with _SHARED_LOCK:
        watcher = _SHARED.get(key)
        if watcher is None:
            if engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, ""):
                own = engine  # an in-memory database exists only in that engine
            else:
                own = make_engine(url)
            watcher = _SHARED[key] = GenerationWatcher(own)
    return watcher.start()


def stop_shared_watchers() -> None:
    """Stop every shared watcher of this process (at shutdown)."""
    with _SHARED_LOCK:
        watchers = list(_SHARED.values())
        _SHARED.clear()
    for watcher in watchers:
        watcher.stop()
