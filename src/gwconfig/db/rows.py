"""Row builders: canonical dicts (see :mod:`gwconfig.canonical`) -> gateway table rows.

Each builder takes the columns from the kind's field specs (:mod:`gwconfig.entities.fields`):
the column of each field, its value copied as it is stored. Shared by everything that writes
the gateway tables (bulk load, the seed-compatible service, the reconciler's apply) so every
writer stores the same shape and :func:`gwconfig.reconcile.state.read_state` reads back exactly
the canonical form. Use with Core executemany::

    session.execute(insert(ProviderModel), model_rows(provider))

Secrets are passed in as plaintext already resolved by the caller; the builders encrypt them
and compute their fingerprints with the primary key of the (bound) keys, and record its id, so
plaintext never reaches a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection

from gwconfig.canonical import parse_timestamp
from gwconfig.db.bulk import insert_rows
from gwconfig.db.models import Base, utcnow
from gwconfig.db.notify import announce
from gwconfig.entities import (
    API_KEY,
    CONNECTION_PARAMETER,
    CONSUMER,
    MODEL,
    PROVIDER,
    ROUTE,
    EntityKind,
    SecretResolver,
    SecretScope,
)
from gwconfig.secrets.keys import EncryptionKeys
from gwconfig.secrets.origin import connection_origin
from gwconfig.secrets.resolve import resolve_secret


def _records(value: Any) -> list[dict[str, Any]]:
    return [dict(item) for item in value]


def _object(value: Any) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def _timestamp(value: Any) -> Any:
    return parse_timestamp(value)


#: how a canonical value of each store becomes a column value (a copy: rows outlive the bodies)
_COPIES: dict[str, Callable[[Any], Any]] = {
    "flag": bool, "list": list, "object": _object, "records": _records, "timestamp": _timestamp,
}  # fmt: skip
#: kind -> ``(field, column, copy or None)`` of each field that is not a secret
_PLAIN: dict[EntityKind, tuple[tuple[str, str, Callable[[Any], Any] | None], ...]] = {
    kind: tuple((f.name, f.column, _COPIES.get(f.store)) for f in kind.specs if not f.secret)
    for kind in (PROVIDER, MODEL, API_KEY, CONNECTION_PARAMETER, ROUTE, CONSUMER)
}


def plain_columns(
    kind: EntityKind, body: Mapping[str, Any], provider_id: str | None = None
) -> dict[str, Any]:
    """The columns of ``body`` (of ``kind``) that hold no secret, ``provider_id`` first for the
    children of a provider; a field missing from ``body`` is NULL."""
    row: dict[str, Any] = {"provider_id": provider_id} if kind.parent else {}
    get = body.get
    for name, column, copy in _PLAIN[kind]:
        value = get(name)
        row[column] = copy(value) if copy is not None and value is not None else value
    return row


def provider_row(p: Mapping[str, Any]) -> dict[str, Any]:
    """The ``providers`` row of a canonical provider (timestamps come from column defaults)."""
    return plain_columns(PROVIDER, p)


def model_row(provider_id: str, m: Mapping[str, Any]) -> dict[str, Any]:
    """The ``provider_models`` row of one canonical model."""
    return plain_columns(MODEL, m, provider_id)


def model_rows(p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``provider_models`` rows of a canonical provider."""
    return [plain_columns(MODEL, m, p["provider_id"]) for m in p["models"]]


def api_key_row(
    provider_id: str,
    key: Mapping[str, Any],
    plaintext: str,
    keys: EncryptionKeys,
    origin: str | None = None,
) -> dict[str, Any]:
    """The ``api_keys`` row of a canonical key whose value resolved to ``plaintext``.

    ``origin``: the origin the key is bound to (:mod:`gwconfig.secrets.origin`); without it the
    row has no ``origin`` column (an update keeps the stored one).
    """
    row = plain_columns(API_KEY, key, provider_id)
    row[API_KEY.ciphertext_column or ""] = keys.encrypt(plaintext)
    row["is_encrypted"] = True
    row["fingerprint"] = keys.fingerprint(plaintext)
    row["key_id"] = keys.primary_id
    if origin is not None:
        row["origin"] = origin
    return row


def parameter_row(
    provider_id: str,
    param: Mapping[str, Any],
    keys: EncryptionKeys | None = None,
    plaintext: str | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """The ``connection_parameters`` row of a canonical parameter.

    A sensitive parameter needs ``plaintext`` (its resolved value) and ``keys``; it is stored
    encrypted with a fingerprint, bound to ``origin`` when given (as :func:`api_key_row`; a
    plain parameter's is then NULL). A plain parameter stores its typed value as JSON.
    """
    row = plain_columns(CONNECTION_PARAMETER, param, provider_id)
    column = CONNECTION_PARAMETER.ciphertext_column or ""
    sensitive = CONNECTION_PARAMETER.is_secret(param)
    if sensitive:
        if plaintext is None or keys is None:
            raise ValueError(f"sensitive parameter {param['name']!r} needs its resolved value")
        row[column] = keys.encrypt(plaintext)
        row["fingerprint"] = keys.fingerprint(plaintext)
        row["key_id"] = keys.primary_id
    else:
        row[column] = param["value"]
        row["fingerprint"] = None
        row["key_id"] = None
    if origin is not None:  # the column is given for every row of a call (executemany)
        row["origin"] = origin if sensitive else None
    return row


def route_row(r: Mapping[str, Any], default: str | None) -> dict[str, Any]:
    """The ``routes`` row of a canonical route (``default``: the gateway's default route)."""
    row = plain_columns(ROUTE, r)
    row["is_default"] = r["name"] == default
    return row


def route_rows(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``routes`` rows of the canonical ``gateway`` section (default route flagged)."""
    default = gateway.get("default_route")
    return [route_row(r, default) for r in gateway.get("routes", [])]


def insert_config(
    conn: Connection,
    data: Mapping[str, Any],
    keys: EncryptionKeys,
    resolve: SecretResolver | None = None,
) -> dict[str, int]:
    """Bulk-insert a whole canonical configuration into empty gateway tables.

    Rows go through :mod:`gwconfig.db.bulk` (DBAPI executemany, ``COPY`` on PostgreSQL).

    Secret references are resolved with ``resolve`` (default
    :func:`gwconfig.secrets.resolve.resolve_secret`) and stored encrypted. Returns rows written per
    table.
    """

    resolver = resolve or resolve_secret
    providers, models, api_keys, params = [], [], [], []
    for p in data["providers"]:
        pid = p["provider_id"]
        providers.append(provider_row(p))
        models.extend(model_rows(p))
        origin = connection_origin(p["provider_type"], p["connection"])
        for k in p["api_keys"]:
            plain = resolver(k["value"], SecretScope.of("api_key", pid, k).sealed)
            api_keys.append(api_key_row(pid, k, plain, keys, origin))
        for prm in p["connection_parameters"]:
            value = (
                resolver(prm["value"], SecretScope.of("connection_parameter", pid, prm).sealed)
                if prm["sensitive"]
                else None
            )
            params.append(parameter_row(pid, prm, keys, value, origin))
    routes = route_rows(data.get("gateway", {}))
    consumers = [plain_columns(CONSUMER, c) for c in data.get("consumers", ())]
    now = utcnow()
    counts: dict[str, int] = {}
    for kind, rows in (
        (PROVIDER, providers),
        (MODEL, models),
        (API_KEY, api_keys),
        (CONNECTION_PARAMETER, params),
        (ROUTE, routes),
        (CONSUMER, consumers),
    ):
        table = kind.table or ""
        constants = {c: now for c in (*kind.stamped_on_create, *kind.stamped_on_write)}
        insert_rows(conn, Base.metadata.tables[table], rows, constants)
        counts[table] = len(rows)
    announce(conn)
    return counts
