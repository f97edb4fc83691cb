"""Data access of the REST API: reads straight from the session (no encryption keys needed)
and the locked, ``If-Match``-checked writes through the audited ProviderService."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import Header, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gwconfig.db import columns as col
from gwconfig.db.models import ApiKey, ConnectionParameter, Provider, ProviderModel
from gwconfig.seed.service import (
    ProviderService,
    api_key_dict,
    model_dict,
    parameter_dict,
    provider_dict,
)
from gwconfig.server.auth import Caller
from gwconfig.server.rest_support import (
    check_if_match,
    lock_provider,
    not_found,
    server,
    shortened,
    translated,
)

T = TypeVar("T")

ProviderId = Path(min_length=1, max_length=col.IDENT, description="The provider's id.")
IfMatch = Header(
    default=None, alias="If-Match", max_length=4096, description="ETag from a previous GET."
)


# -- reads (no encryption keys needed) ---------------------------------------------------------


def models_of(session: Session, pid: str) -> list[dict[str, Any]]:
    """The provider's models as dicts, ordered by model_id."""
    stmt = select(ProviderModel).where(ProviderModel.provider_id == pid)
    return [model_dict(m) for m in sorted(session.scalars(stmt), key=lambda m: m.model_id)]


def keys_of(session: Session, pid: str) -> list[dict[str, Any]]:
    """The provider's API keys (masked, short fingerprints), ordered by (name, environment)."""
    rows = session.scalars(select(ApiKey).where(ApiKey.provider_id == pid))
    return [shortened(api_key_dict(k)) for k in sorted(rows, key=lambda k: (k.name, k.environment))]


def params_of(session: Session, pid: str) -> list[dict[str, Any]]:
    """The provider's connection parameters (sensitive ones masked)."""
    rows = session.scalars(
        select(ConnectionParameter).where(ConnectionParameter.provider_id == pid)
    )
    ordered = sorted(rows, key=lambda c: (c.param_name, c.environment))
    return [shortened(parameter_dict(c)) for c in ordered]


def read_provider(session: Session, pid: str) -> dict[str, Any] | None:
    """The provider as ``GET /providers/{id}`` shows it, or None."""
    p = session.get(Provider, pid, populate_existing=True)
    if p is None:
        return None
    return {
        **provider_dict(p),
        "models": models_of(session, pid),
        "api_keys": keys_of(session, pid),
        "connection_parameters": params_of(session, pid),
    }


def page_of_providers(
    session: Session, after: str | None, limit: int, tag: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` providers after ``after`` (with ``tag``), and the last id if more."""
    out: list[dict[str, Any]] = []
    batch = limit + 1 if tag is None else max(limit + 1, 200)
    while True:
        stmt = select(Provider).order_by(Provider.provider_id).limit(batch)
        if after is not None:
            stmt = stmt.where(Provider.provider_id > after)
        rows = list(session.scalars(stmt))
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


def service_for(request: Request, session: Session, caller: Caller) -> ProviderService:
    """The audited service on ``session``, acting as the token's name."""
    return ProviderService(session, server(request).encryption_keys, caller.name)


def locked_write(
    request: Request,
    session: Session,
    caller: Caller,
    pid: str,
    current: Callable[[], Any],
    if_match: str | None,
    what: str,
    action: Callable[[ProviderService], T],
) -> T:
    """Lock provider ``pid``, check ``If-Match`` against ``current()``, then run ``action``.

    ``current`` returns the representation the client's ETag must match (None: 404).
    """

    def run() -> T:
        if not lock_provider(session, pid):
            raise not_found(f"provider {pid!r}")
        body = current()
        if body is None:
            raise not_found(what)
        check_if_match(if_match, body, what)
        return action(service_for(request, session, caller))

    try:
        return translated(run)
    finally:
        session.rollback()  # releases the lock when nothing was committed
