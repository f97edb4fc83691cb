"""The per-process cache of ``GET /api/v1/providers/{id}``: rendered bodies and their ETags.

An entry is the answer for one provider id (the JSON bytes and the ETag, or "no such
provider") and the :class:`Key` it was read under: the configuration generation the process's
:class:`~gwconfig.db.watch.GenerationWatcher` had seen *before* the read, and this process's
own write counter. Every configuration write bumps the generation in its transaction
(:mod:`gwconfig.db.notify`), so an entry serves while both are unchanged:

- a write in this process (a POST, PUT or DELETE under ``/providers``) bumps the local counter
  before its response starts: a client reads its own writes at once;
- a write elsewhere (another worker, ``gwconfig apply``, ``keys rotate``) is served from the
  moment the watcher sees its generation (a notification on PostgreSQL, at most one
  0.25 s check on SQLite and MySQL/MariaDB);
- an entry is also dropped after :data:`MAX_AGE_SECONDS`, for changes made behind gwconfig's
  back (SQL by hand does not announce a generation).

A read that raced a write can only store older data under the older key, never under the new
one (the key is taken first). The cache holds at most :data:`MAX_ENTRIES` providers (the oldest
entry goes first) and stores nothing while the generation is unknown.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gwconfig.db.notify import ConfigGeneration
from gwconfig.db.watch import GenerationWatcher

#: providers kept per process
MAX_ENTRIES = 1024
#: the longest an entry is served (seconds), whatever the generation says
MAX_AGE_SECONDS = 5.0


@dataclass(frozen=True)
class Key:
    """What an entry was read under: the watcher's generation and the local write count."""

    generation: ConfigGeneration
    local_writes: int


@dataclass(frozen=True)
class Rendered:
    """One answer: the JSON body and its ETag, or ``body=None`` for "no such provider"."""

    body: bytes | None
    etag: str | None


class ProviderCache:
    """Rendered provider answers of one process (see the module); safe from any thread."""

    def __init__(
        self,
        watcher: GenerationWatcher | None = None,
        *,
        max_entries: int = MAX_ENTRIES,
        max_age_seconds: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.watcher = watcher
        self.max_entries = max(1, max_entries)
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Key, float, Rendered]] = OrderedDict()
        self._local_writes = 0
        self._lock = threading.Lock()

    def key(self) -> Key | None:
        """The key of a read starting now (None: the generation is unknown, do not cache)."""
        generation = None if self.watcher is None else self.watcher.current_generation
        if generation is None:
            return None
        return Key(generation, self._local_writes)

    def get(self, provider_id: str) -> Rendered | None:
        """The answer for ``provider_id`` if one is stored under the current key."""
        key = self.key()
        entry = self._entries.get(provider_id)
        if key is None or entry is None:
            return None
        stored, at, rendered = entry
        if stored != key or self._clock() - at > self.max_age_seconds:
            return None
        return rendered

    def put(self, provider_id: str, key: Key | None, rendered: Rendered) -> None:
        """Store ``rendered``, read under ``key`` (taken with :meth:`key` before the read)."""
        if key is None:
            return
        with self._lock:
            self._entries.pop(provider_id, None)
            self._entries[provider_id] = (key, self._clock(), rendered)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def wrote(self) -> None:
        """A write in this process: what was read before it is no longer served."""
        with self._lock:
            self._local_writes += 1

    def __len__(self) -> int:
        return len(self._entries)


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class TrackWrites:
    """ASGI middleware: every request that may write a provider (not GET, HEAD or OPTIONS; a
    path with ``/providers``) calls :meth:`ProviderCache.wrote` when its response starts (after
    the handler committed, before the client hears of it)."""

    def __init__(self, app: ASGIApp, cache: ProviderCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") in _READS
            or "/providers" not in scope.get("path", "")
        ):
            await self.app(scope, receive, send)
            return

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.cache.wrote()
            await send(message)

        await self.app(scope, receive, tracking_send)
