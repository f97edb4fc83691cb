"""Bearer-token authentication of ``gwconfig serve``: scopes, :class:`Caller`, :func:`require`.

:class:`TokenAuthenticator` works without FastAPI (plain ASGI fast paths call
:meth:`~TokenAuthenticator.authenticate` and catch :class:`AuthError`); :func:`require` wraps it
as a FastAPI dependency that answers problem documents. Missing, malformed, unknown, revoked or
expired tokens are 401 (with ``WWW-Authenticate: Bearer``); a scope that does not cover the
endpoint is 403. ``admin`` passes every check and ``write`` implies ``read``.

Lookups are cached for ``cache_seconds`` (1 s by default): a revoked token stops working at
most that long after ``gwconfig tokens revoke``. Expiry is checked on every request. While the
database cannot be reached, a token whose last good lookup found it keeps working from that
lookup for ``stale_seconds`` (15 minutes by default); any other token gets
:class:`~gwconfig.errors.DatabaseUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gwconfig.db.models import utcnow
from gwconfig.db.session import Database
from gwconfig.db.tokens import (
    SCOPES,
    TokenRecord,
    find_token,
    hash_token,
    scope_allows,
    touch_token,
)
from gwconfig.errors import AuthError, DatabaseError, DatabaseUnavailable, GwconfigError
from gwconfig.server.problems import from_gwconfig_error
from gwconfig.server.state import server_state

log = logging.getLogger("gwconfig.server")

__all__ = ["SCOPES", "AuthError", "Caller", "TokenAuthenticator", "require"]

#: the longest ``Authorization`` header looked at (a token is 47 characters)
MAX_HEADER_CHARS = 256
#: how many token lookups the cache keeps (cleared when full)
CACHE_ENTRIES = 4096
#: ``last_used_at`` is written at most this often per token
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's name (the audit actor), scope and limits."""

    name: str
    scope: str
    #: allowed model/route patterns (``fnmatch``), None: every model
    models: tuple[str, ...] | None = None
    rpm: int | None = None
    #: the ``kind: Consumer`` whose policy the token inherits, None: the token's own
    consumer: str | None = None

    def allows(self, scope: str) -> bool:
        """True when this caller's scope covers ``scope``."""
        return scope_allows(self.scope, scope)

    def allows_model(self, model: str) -> bool:
        """True when ``model`` matches one of the caller's patterns (or it has none)."""
        if self.models is None:
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


def authorization_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Authorization`` header among an ASGI scope's ``headers`` (the first), or None."""
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def api_key_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The ``Authorization`` header, else an ``x-api-key`` header as ``Bearer <key>`` (the
    Anthropic clients' way to send a token), or None."""
    key = None
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
        if name == b"x-api-key" and key is None:
            key = value.decode("latin-1").strip()
    return f"Bearer {key}" if key else None


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or :class:`AuthError` (401)."""
    if not header:
        raise AuthError(401, "missing bearer token (Authorization: Bearer <token>)", missing=True)
    scheme, _, token = header[:MAX_HEADER_CHARS].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError(401, "the Authorization header is not 'Bearer <token>'")
    return token


class TokenAuthenticator:
    """Checks bearer tokens against ``api_tokens`` (no FastAPI needed)."""

    def __init__(
        self,
        database: Database,
        *,
        cache_seconds: float = 1.0,
        stale_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.cache_seconds = cache_seconds
        self.stale_seconds = stale_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}
        #: the last good lookup of each known token (used while the database is unreachable)
        self._last_good: dict[str, tuple[float, TokenRecord]] = {}
        self._touched: dict[str, datetime] = {}
        #: the lookup in flight per (event loop, token hash)
        self._pending: dict[
            tuple[asyncio.AbstractEventLoop, str], asyncio.Future[TokenRecord | None]
        ] = {}
        self._lock = threading.Lock()
        # one thread records uses in order (``flush`` waits for it)
        self._toucher = ThreadPoolExecutor(1, thread_name_prefix="gwconfig-token-use")

    def _cached(self, token: str) -> tuple[bool, TokenRecord | None]:
        # keyed by the token's hash: the process keeps no token text
        entry = self._cache.get(hash_token(token))
        if entry is not None and self._clock() - entry[0] < self.cache_seconds:
            return True, entry[1]
        return False, None

    def _lookup(self, token: str) -> TokenRecord | None:
        hit, record = self._cached(token)
        if hit:
            return record
        digest = hash_token(token)
        try:
            record = find_token(self.database, token)
        except DatabaseError as exc:
            return self._stale(digest, exc)
        now = self._clock()
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (now, record)
            if record is None:
                self._last_good.pop(digest, None)
            else:
                if len(self._last_good) >= CACHE_ENTRIES:
                    self._last_good.clear()
                self._last_good[digest] = (now, record)
        return record

    def _stale(self, digest: str, exc: DatabaseError) -> TokenRecord:
        """The last good lookup of a token while the database fails, if recent enough; else
        :class:`DatabaseUnavailable` (the caller answers 503, not 401: the token may be good)."""
        entry = self._last_good.get(digest)
        if entry is not None and self._clock() - entry[0] < self.stale_seconds:
            return entry[1]
        if isinstance(exc, DatabaseUnavailable):
            raise exc
        raise DatabaseUnavailable(exc.message) from None

    def _caller(self, record: TokenRecord | None) -> Caller:
        if record is None:
            raise AuthError(401, "unknown token")
        now = utcnow()
        status = record.status(now)
        if status != "active":
            raise AuthError(401, f"this token is {status}")
        self._touch(record.name, now)
        return Caller(
            name=record.name, scope=record.scope, models=record.models, rpm=record.rpm,
            consumer=record.consumer,
        )  # fmt: skip

    def _touch(self, name: str, now: datetime) -> None:
        with self._lock:
            last = self._touched.get(name)
            if last is not None and now - last < TOUCH_INTERVAL:
                return
            if len(self._touched) >= CACHE_ENTRIES:
                self._touched.clear()
            self._touched[name] = now
        self._toucher.submit(self._record_use, name, now)

    def _record_use(self, name: str, now: datetime) -> None:
        """Write ``last_used_at`` (best effort, off the request path: a busy SQLite file or a
        failing database never delays or fails a request for it)."""
        try:
            touch_token(self.database, name, now)
        except GwconfigError:
            log.debug("could not record the use of token %r", name)

    def flush(self) -> None:
        """Wait until every use recorded so far is written (tests; shutdown)."""
        self._toucher.submit(lambda: None).result()

    def close(self) -> None:
        """Write the pending uses and stop the writer thread."""
        self._toucher.shutdown(wait=True)

    def authenticate(self, authorization_header: str | None) -> Caller:
        """The caller of a request from its ``Authorization`` header, or :class:`AuthError`.

        May query the database (at most once per token per ``cache_seconds``); async code
        should use :meth:`authenticate_async`.
        """
        return self._caller(self._lookup(bearer_token(authorization_header)))

    async def authenticate_async(self, authorization_header: str | None) -> Caller:
        """:meth:`authenticate` that runs database work in a thread (none on a cache hit).

        Concurrent requests of a token whose entry expired wait for one lookup (a burst of
        requests every ``cache_seconds`` would otherwise open a connection each).
        """
        token = bearer_token(authorization_header)
        hit, record = self._cached(token)
        if not hit:
            key = (asyncio.get_running_loop(), hash_token(token))
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = asyncio.ensure_future(
                    run_in_threadpool(self._lookup, token)
                )
                pending.add_done_callback(lambda _done: self._pending.pop(key, None))
            record = await asyncio.shield(pending)
        return self._caller(record)

    @staticmethod
    def authorize(caller: Caller, scopes: tuple[str, ...]) -> None:
        """Raise :class:`AuthError` (403) unless ``caller`` has one of ``scopes``."""
        if scopes and not any(caller.allows(s) for s in scopes):
            raise AuthError(
                403,
                f"token {caller.name!r} has scope {caller.scope!r}; this needs "
                + " or ".join(repr(s) for s in scopes),
            )

    def forget(self) -> None:
        """Drop every cached lookup (tests; revocation otherwise waits ``cache_seconds``)."""
        with self._lock:
            self._cache.clear()
            self._last_good.clear()


#: declares the bearer scheme in the OpenAPI document (the header is parsed by us)
_BEARER = HTTPBearer(auto_error=False, description="a token of 'gwconfig tokens create'")


def require(*scopes: str) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency: the :class:`Caller`, if its token has one of ``scopes``.

    Async: a cached token is checked on the event loop (no thread hop); a lookup runs in a
    thread. Use as ``caller: Caller = Depends(require("read"))``; no scope means any valid token.
    The caller is also left in ``request.state.caller``.
    """
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes {unknown}")

    async def dependency(
        request: Request,
        _bearer: HTTPAuthorizationCredentials | None = Depends(_BEARER),
    ) -> Caller:
        tokens = server_state(request).tokens
        try:
            # authenticated already by the middleware in front of the router (auth_gate)
            caller = getattr(request.state, "caller", None)
            if not isinstance(caller, Caller):
                caller = await tokens.authenticate_async(request.headers.get("authorization"))
            tokens.authorize(caller, scopes)
        except AuthError as exc:
            raise from_gwconfig_error(exc) from None
        request.state.caller = caller
        return caller

    return dependency
