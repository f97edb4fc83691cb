"""Data access of the REST API: the rows of :mod:`gwconfig.db.reads` as the API shows them (no
encryption keys needed), the cached ``GET /providers/{id}`` (:mod:`gwconfig.server.rest.cache`),
the endpoints' :class:`Reading` and :class:`Writing` dependencies, and the locked,
``If-Match``-checked writes through the audited ProviderService."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

import orjson
from fastapi import Depends, Header, Path, Request
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool

from gwconfig.db import columns as col
from gwconfig.db import reads
from gwconfig.db.lock import hold_in_transaction
from gwconfig.db.reads import Reader
from gwconfig.manifests.model import SLUG_PATTERN
from gwconfig.seed.service import (
    ProviderService,
    api_key_dict,
    model_dict,
    parameter_dict,
    provider_dict,
)
from gwconfig.server.auth import Caller, require
from gwconfig.server.config.delivery import app_watcher
from gwconfig.server.problems import ProblemError
from gwconfig.server.rest.cache import Rendered
from gwconfig.server.rest.errors import READ_ONLY_DETAIL, not_found, translated, translating
from gwconfig.server.rest.etags import check_if_match, etag_of
from gwconfig.server.state import server_state

if TYPE_CHECKING:
    from gwconfig.db.session import Database

T = TypeVar("T")


ProviderId = Path(
    min_length=1, max_length=col.IDENT, pattern=SLUG_PATTERN, description="The provider's id."
)
IfMatch = Header(
    default=None, alias="If-Match", max_length=4096, description="ETag from a previous GET."
)


#: characters of the fingerprint's hex digest an API key listing shows
SHORT_FINGERPRINT_HEX = 12


# -- dependencies ------------------------------------------------------------------------------


def db_session(request: Request) -> Iterator[Session]:
    """One ORM session per request (closed, i.e. rolled back if uncommitted, at the end)."""
    with server_state(request).database.session() as session:
        yield session


def writer(request: Request, caller: Caller = Depends(require("write"))) -> Caller:
    """The caller of a write: scope ``write``, and 405 when the server is read-only."""
    if server_state(request).settings.read_only:
        raise ProblemError(
            405,
            "Method Not Allowed",
            READ_ONLY_DETAIL,
            type_="https://gwconfig.dev/problems/read-only",
            headers={"Allow": "GET"},
        )
    return caller


reader = require("read")


def short_fingerprint(fingerprint: str | None) -> str | None:
    """``hmac-sha256:`` and the first hex digits of a stored fingerprint (None stays None)."""
    if fingerprint is None:
        return None
    prefix, _, digest = fingerprint.partition(":")
    return f"{prefix}:{digest[:SHORT_FINGERPRINT_HEX]}" if digest else None


def shortened(item: dict[str, Any]) -> dict[str, Any]:
    """An API key or parameter dict with its fingerprint shortened."""
    return {**item, "fingerprint": short_fingerprint(item.get("fingerprint"))}


# -- reads (no encryption keys needed) ---------------------------------------------------------


def models_of(db: Reader, pid: str) -> list[dict[str, Any]]:
    """The provider's models as dicts, ordered by model_id (Core rows: no ORM objects)."""
    return [model_dict(cast(Any, m)) for m in reads.model_rows(db, pid)]


def keys_of(db: Reader, pid: str) -> list[dict[str, Any]]:
    """The provider's API keys (masked, short fingerprints), ordered by (name, environment)."""
    return [shortened(api_key_dict(cast(Any, k))) for k in reads.api_key_rows(db, pid)]


def params_of(db: Reader, pid: str) -> list[dict[str, Any]]:
    """The provider's connection parameters (sensitive ones masked)."""
    return [shortened(parameter_dict(cast(Any, c))) for c in reads.parameter_rows(db, pid)]


def read_provider(db: Reader, pid: str) -> dict[str, Any] | None:
    """The provider as ``GET /providers/{id}`` shows it, or None."""
    conn = reads.connection(db)
    p = reads.provider_row(conn, pid)
    if p is None:
        return None
    return {
        **provider_dict(cast(Any, p)),
        "models": models_of(conn, pid),
        "api_keys": keys_of(conn, pid),
        "connection_parameters": params_of(conn, pid),
    }


def read_provider_now(database: Database, pid: str) -> dict[str, Any] | None:
    """:func:`read_provider` on a connection of its own.

    On PostgreSQL without a transaction: under READ COMMITTED each statement sees the latest
    commit either way, and this saves the BEGIN and ROLLBACK round trips (~25% of a read).
    """
    with translating(), database.connect() as conn:
        if database.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return read_provider(conn, pid)


def render_provider(database: Database, pid: str) -> Rendered:
    """The answer of ``GET /providers/{pid}`` read now: JSON bytes and ETag (or not found)."""
    body = read_provider_now(database, pid)
    if body is None:
        return Rendered(None, None)
    return Rendered(orjson.dumps(body), etag_of(body))


async def cached_provider(app: Starlette, pid: str) -> Rendered:
    """The answer of ``GET /providers/{pid}`` from the process's cache, read on a miss
    (see :mod:`gwconfig.server.rest.cache`)."""
    state = server_state(app)
    cache = state.provider_cache
    rendered = cache.get(pid)
    if rendered is not None:
        return rendered
    if cache.watcher is None:
        cache.watcher = await app_watcher(app)
    key = cache.key()  # before the read: a write racing it is never stored under its key
    rendered = await run_in_threadpool(render_provider, state.database, pid)
    cache.put(pid, key, rendered)
    return rendered


def page_of_providers(
    session: Session, after: str | None, limit: int, tag: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` providers after ``after`` (with ``tag``), and the last id if more."""
    out: list[dict[str, Any]] = []
    batch = limit + 1 if tag is None else max(limit + 1, 200)
    while True:
        rows = reads.providers_after(session, after, batch)
        for p in rows:
            if tag is None or tag in p.tags:
                if len(out) == limit:
                    return out, out[-1]["provider_id"]
                out.append(provider_dict(p))
        if len(rows) < batch:
            return out, None
        after = rows[-1].provider_id


def provider_path(request: Request, pid: str) -> str:
    """The URL path of provider ``pid`` under this API."""
    root = request.url.path.split("/providers", 1)[0]
    return f"{root}/providers/{quote(pid, safe='')}"


# -- writes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A read endpoint's request and session (its caller has scope ``read``)."""

    request: Request
    session: Session


def reading(
    request: Request, _caller: Caller = Depends(reader), session: Session = Depends(db_session)
) -> Reading:
    """The dependency of a read endpoint (``r: Reading = Read``)."""
    return Reading(request, session)


@dataclass(frozen=True)
class Writing:
    """A write endpoint's request, caller (scope ``write``) and session."""

    request: Request
    caller: Caller
    session: Session

    def service(self) -> ProviderService:
        """The audited service on the session, acting as the token's name (an ``admin`` token
        binds the secrets it writes to the provider's current origin: gwconfig.seed.origins)."""
        state = server_state(self.request)
        return ProviderService(
            self.session,
            state.encryption_keys,
            self.caller.name,
            rebind_secrets=self.caller.scope == "admin",
            lock_timeout=state.settings.lock_timeout,
        )

    def run(self, action: Callable[[ProviderService], T]) -> T:
        """``action(service)``, errors translated."""
        service = translated(self.service)
        return translated(lambda: action(service))

    def locked(
        self,
        pid: str,
        current: Callable[[], Any],
        if_match: str | None,
        what: str,
        action: Callable[[ProviderService], T],
    ) -> T:
        """Take the apply lock, lock provider ``pid``, check ``If-Match`` against
        ``current()``, then run ``action`` (the apply lock first, as apply takes it: see
        :func:`gwconfig.db.lock.hold_in_transaction`).

        ``current`` returns the representation the client's ETag must match (None: 404).
        """

        def run() -> T:
            timeout = server_state(self.request).settings.lock_timeout
            hold_in_transaction(self.session.connection(), timeout)
            if not reads.lock_provider(self.session, pid):
                raise not_found(f"provider {pid!r}")
            body = current()
            if body is None:
                raise not_found(what)
            check_if_match(if_match, body, what)
            return action(self.service())

        try:
            return translated(run)
        finally:
            self.session.rollback()  # releases the lock when nothing was committed


def writing(
    request: Request, caller: Caller = Depends(writer), session: Session = Depends(db_session)
) -> Writing:
    """The dependency of a write endpoint (``w: Writing = Write``; 405 when read-only)."""
    return Writing(request, caller, session)


Read = Depends(reading)
Write = Depends(writing)
