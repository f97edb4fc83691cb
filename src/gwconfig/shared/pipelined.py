"""One Redis connection per process, auto-pipelined: each call writes its command at once and
waits for its reply, and replies come back in order (Redis answers one connection's commands in
the order sent), so concurrent requests share one socket with no pool and no lock.

A limit decision then costs one write and one parsed reply (``hiredis``), a fraction of a
pooled client's round trip; Redis Cluster goes through ``redis-py``'s cluster client instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

#: replies waited for at most at once; past them the connection is reset (Redis is stuck)
MAX_PENDING = 10_000


class RedisReplyError(Exception):
    """Redis answered with an error (its text: a script error, NOSCRIPT, WRONGTYPE...)."""


class PipelinedRedis:
    """A single auto-pipelined connection (``redis://`` or ``rediss://``)."""

    def __init__(self, url: str, connect_timeout: float = 1.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path.isdigit() else 0
        self.connect_timeout = connect_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> asyncio.StreamWriter:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None:
                return self._writer
            context = ssl.create_default_context() if self.tls else None
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=context),
                self.connect_timeout,
            )
            self._reading = asyncio.get_running_loop().create_task(self._read(reader))
            self._writer = writer
            if self.password is not None:
                auth = ("AUTH", self.username, self.password) if self.username else None
                await self._send(writer, *(auth or ("AUTH", self.password)))
            if self.db:
                await self._send(writer, "SELECT", self.db)
            return writer

    async def _send(self, writer: asyncio.StreamWriter, *args: Any) -> Any:
        if len(self._pending) >= MAX_PENDING:
            self._reset(ConnectionError("too many Redis replies outstanding"))
            raise ConnectionError("too many Redis replies outstanding")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        writer.write(hiredis.pack_command(args))
        return await future

    async def execute(self, *args: Any) -> Any:
        """Send one command, return its reply (:class:`RedisReplyError` for an error reply,
        :class:`ConnectionError` when the connection is lost)."""
        writer = self._writer or await self._connect()
        return await self._send(writer, *args)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        parser = hiredis.Reader()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    future = self._pending.popleft()
                    if future.done():  # its caller gave up (timeout): the reply is dropped
                        continue
                    if isinstance(reply, hiredis.ReplyError):
                        future.set_exception(RedisReplyError(str(reply)))
                    else:
                        future.set_result(reply)
        except Exception as exc:  # lost: every caller waiting hears of it
            self._reset(exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc)))

    def _reset(self, exc: BaseException) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(ConnectionError(str(exc)))

    async def aclose(self) -> None:
        """Close the connection."""
        self._reset(ConnectionError("closed"))
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._reading


class Script:
    """A Lua script called by its SHA1 (``EVALSHA``), loaded again when Redis lost it."""

    def __init__(self, redis: PipelinedRedis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        """Run the script on ``keys`` with ``args``."""
        try:
            return await self.redis.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.redis.execute("EVAL", self.source, len(keys), *keys, *args)
