"""Cooldowns shared by every replica: a target one replica cooled down is skipped by all.

A cooldown is published at once (one ``HSET`` in the background, off the request path); each
replica reads every published cooldown every ``refresh`` seconds (one ``HGETALL``) and checks
its copy on each request, with no I/O. A replica thus learns of another's cooldown at most
``refresh`` seconds (plus one round trip) after it began; the replica that entered it skips the
target at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from gwconfig.shared.backend import BackendUnavailable
from gwconfig.shared.redis_backend import RedisBackend

log = logging.getLogger("gwconfig.shared")


class RedisCooldowns:
    """The published cooldowns, as this replica last read them."""

    def __init__(
        self,
        backend: RedisBackend,
        refresh: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.refresh = refresh
        self._clock = clock
        self._until: dict[str, float] = {}  # target -> epoch seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    def cooling(self, key: str) -> bool:
        """True when ``key``'s published cooldown has not ended (no I/O)."""
        until = self._until.get(key)
        return until is not None and until > self._clock()

    def publish(self, key: str, seconds: float) -> None:
        """Publish a cooldown of ``key`` for ``seconds`` (in the background)."""
        until = self._clock() + seconds
        self._until[key] = until
        try:
            task = asyncio.get_running_loop().create_task(self._publish(key, until))
        except RuntimeError:  # no event loop (a synchronous caller): this replica only
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, key: str, until: float) -> None:
        with contextlib.suppress(BackendUnavailable):
            await self.backend.publish_cooldown(key, int(until * 1000))

    async def read(self) -> None:
        """Read every published cooldown once (and drop the ended ones from Redis)."""
        published = await self.backend.cooldowns()
        now_ms = self._clock() * 1000
        ended = [k for k, until in published.items() if until <= now_ms]
        self._until = {k: until / 1000 for k, until in published.items() if until > now_ms}
        await self.backend.forget_cooldowns(ended)

    def start(self) -> None:
        """Read the published cooldowns every ``refresh`` seconds (in the running loop)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            # while Redis is away this replica's own cooldowns still hold
            with contextlib.suppress(BackendUnavailable):
                await self.read()
            await asyncio.sleep(self.refresh)

    async def aclose(self) -> None:
        """Stop reading."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
