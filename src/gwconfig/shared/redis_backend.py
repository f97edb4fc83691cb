"""The Redis backend: the windows and reservations as Lua scripts (one round trip each), every
call under a timeout and a circuit breaker.

URLs: ``redis://``, ``rediss://`` (TLS), and Redis Cluster as ``redis+cluster://`` /
``rediss+cluster://`` or any of them with ``?cluster=true``. A single Redis is spoken to over
one auto-pipelined connection (:mod:`gwconfig.shared.pipelined`, ``hiredis``); a cluster through
``redis-py``'s cluster client (``pip install 'gwconfig[redis]'`` either way).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gwconfig.errors import ConfigurationError
from gwconfig.shared import scripts
from gwconfig.shared.backend import (
    BackendUnavailable,
    ConsumerKeys,
    Hold,
    HoldResult,
    WindowResult,
)
from gwconfig.shared.breaker import CircuitBreaker
from gwconfig.shared.pipelined import PipelinedRedis, Script

log = logging.getLogger("gwconfig.shared")
T = TypeVar("T")
WINDOW_MS = 60_000
SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
#: where shared cooldowns are published (one hash: target -> cooling until, epoch ms)
COOLDOWNS = "gw:{cool}:until"


def parse_url(url: str) -> tuple[str, bool]:
    """``(URL for redis-py, cluster?)`` of a ``--redis-url``; :class:`ConfigurationError`
    naming the scheme when it is not one of :data:`SCHEMES` (the URL itself is never shown:
    it may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConfigurationError(
            "the Redis URL must be redis://, rediss://, redis+cluster:// or rediss+cluster:// "
            f"with a host (got scheme {parts.scheme!r})"
        )
    query = parse_qsl(parts.query)
    cluster = parts.scheme.endswith("+cluster")
    flags = [v for k, v in query if k == "cluster"]
    if flags:
        cluster = flags[-1].lower() in ("1", "true", "yes")
    scheme = parts.scheme.removesuffix("+cluster")
    rest = urlencode([(k, v) for k, v in query if k != "cluster"])
    return urlunsplit((scheme, parts.netloc, parts.path, rest, "")), cluster


def redacted(url: str) -> str:
    """``url`` without its user name and password (for logs and ``/readyz``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class RedisBackend:
    """Counters in Redis: shared by every process that names the same Redis."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.05,
        breaker: CircuitBreaker | None = None,
        on_error: Callable[[], object] | None = None,
    ) -> None:
        target, cluster = parse_url(url)
        self.url = redacted(url)
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self._on_error = on_error
        connect = max(timeout * 4, 0.5)
        if cluster:
            from redis.asyncio.cluster import RedisCluster

            client: Any = RedisCluster.from_url(
                target, socket_timeout=connect, socket_connect_timeout=connect
            )
            self.execute: Callable[..., Awaitable[Any]] = client.execute_command
            self._close: Callable[[], Awaitable[Any]] = client.aclose
            script: Callable[[str], Any] = client.register_script
        else:  # one auto-pipelined connection: no pool, one write per call
            pipe = PipelinedRedis(target, connect_timeout=connect)
            self.execute = pipe.execute
            self._close = pipe.aclose
            script = partial(Script, pipe)
        self._window = script(scripts.WINDOW)
        self._reserve = script(scripts.RESERVE)
        self._finish = script(scripts.FINISH)

    async def _call(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` under the timeout and the breaker; :class:`BackendUnavailable` when it
        fails, takes too long or the breaker is open (then Redis is not even tried)."""
        if not self.breaker.allow():
            raise BackendUnavailable("Redis is skipped (circuit breaker open)")
        try:
            async with asyncio.timeout(self.timeout):
                result = await work()
        except Exception as exc:  # timeouts, refused connections, script errors
            self.breaker.failure()
            if self._on_error is not None:
                self._on_error()
            log.warning("Redis call failed: %s", type(exc).__name__)
            raise BackendUnavailable(type(exc).__name__) from None
        self.breaker.success()
        return result

    async def hit(self, key: str, limit: int, member: str, now_ms: int | None) -> WindowResult:
        """See :meth:`gwconfig.shared.backend.Backend.hit`."""
        now = "" if now_ms is None else str(now_ms)
        out = await self._call(lambda: self._window([key], [now, WINDOW_MS, limit, member]))
        return WindowResult(bool(int(out[0])), int(out[1]), int(out[2]))

    async def unhit(self, key: str, member: str) -> None:
        """See :meth:`gwconfig.shared.backend.Backend.unhit`."""
        await self._call(lambda: self.execute("ZREM", key, member))

    async def hold(self, keys: ConsumerKeys, hold: Hold, now_ms: int | None) -> HoldResult:
        """See :meth:`gwconfig.shared.backend.Backend.hold`."""
        args = [
            "" if now_ms is None else str(now_ms),
            -1 if hold.tpm is None else hold.tpm,
            hold.tokens,
            -1 if hold.budget_micro is None else hold.budget_micro,
            hold.cost_micro,
            hold.id,
            hold.expiry_ms,
        ]
        out = await self._call(lambda: self._reserve(_keys(keys), args))
        status = int(out[0])
        if status == -1:
            return HoldResult(False, missing=True)
        if status == 1:
            return HoldResult(True, bucket=int(out[1]))
        limit = _text(out[1])
        wait = int(out[3]) if len(out) > 3 else 0
        return HoldResult(False, limit=limit, room=int(out[2]), wait_ms=wait)

    async def finish(
        self, keys: ConsumerKeys, hold: Hold, bucket: int | None, cost_micro: int, tokens: int
    ) -> None:
        """See :meth:`gwconfig.shared.backend.Backend.finish`."""
        args = [hold.id, cost_micro, "" if bucket is None else bucket, tokens]
        await self._call(lambda: self._finish(_keys(keys), args))

    async def seed_spend(self, key: str, micro: int, ttl_seconds: int) -> None:
        """See :meth:`gwconfig.shared.backend.Backend.seed_spend`."""
        await self._call(lambda: self.execute("SET", key, micro, "NX", "EX", ttl_seconds))

    async def publish_cooldown(self, target: str, until_ms: int) -> None:
        """Tell every replica that ``target`` cools down until ``until_ms`` (epoch ms)."""
        await self._call(lambda: self.execute("HSET", COOLDOWNS, target, until_ms))

    async def cooldowns(self) -> dict[str, int]:
        """Every published cooldown: target -> until (epoch ms)."""
        raw = await self._call(lambda: self.execute("HGETALL", COOLDOWNS))
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        return {_text(k): int(v) for k, v in pairs}

    async def forget_cooldowns(self, targets: list[str]) -> None:
        """Drop cooldowns that have ended."""
        if targets:
            await self._call(lambda: self.execute("HDEL", COOLDOWNS, *targets))

    async def warm(self) -> None:
        """Connect and load the scripts before the first request (at start-up: a cold
        connection would otherwise cost the first decisions their timeout)."""
        sources = (scripts.WINDOW, scripts.RESERVE, scripts.FINISH)
        try:
            async with asyncio.timeout(max(self.timeout, 2.0)):
                for source in sources:
                    await self.execute("SCRIPT", "LOAD", source)
        except Exception as exc:  # Redis not up yet: the breaker takes over at the first call
            log.warning("Redis not reachable at start-up: %s", type(exc).__name__)

    async def ping(self) -> bool:
        """True when Redis answers (through the breaker)."""
        try:
            return bool(await self._call(lambda: self.execute("PING")))
        except BackendUnavailable:
            return False

    async def aclose(self) -> None:
        """Close the connections."""
        await self._close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _keys(keys: ConsumerKeys) -> list[str]:
    return [keys.tpm, keys.spend, keys.reservations, keys.amounts, keys.pending]
