"""Row builders: canonical dicts (see :mod:`gwconfig.canonical`) -> gateway table rows.

Shared by everything that writes the gateway tables (bulk load, the seed-compatible service,
the reconciler's apply) so every writer stores the same shape and
:func:`gwconfig.reconcile.state.read_state`
reads back exactly the canonical form. Use with Core executemany::

    session.execute(insert(ProviderModel), model_rows(provider))

Secrets are passed in as plaintext already resolved by the caller; the builders encrypt them
and compute their fingerprints with the primary key of the (bound) keys, and record its id, so
plaintext never reaches a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table

from gwconfig.canonical import parse_timestamp
from gwconfig.entities import SecretResolver, SecretScope
from gwconfig.secrets.keys import EncryptionKeys


def provider_row(p: Mapping[str, Any]) -> dict[str, Any]:
    """The ``providers`` row of a canonical provider (timestamps come from column defaults)."""
    return {
        "provider_id": p["provider_id"],
        "provider_type": p["provider_type"],
        "display_name": p["display_name"],
        "description": p["description"],
        "enabled": p["enabled"],
        "connection_params": dict(p["connection"]),
        "request_settings": dict(p["request_settings"]),
        "tags": list(p["tags"]),
        "deletion_protection": p["deletion_protection"],
    }


def model_row(provider_id: str, m: Mapping[str, Any]) -> dict[str, Any]:
    """The ``provider_models`` row of one canonical model."""
    return {
        "provider_id": provider_id,
        "model_id": m["model_id"],
        "display_name": m["display_name"],
        "model_type": m["model_type"],
        "context_window": m["context_window"],
        "max_tokens": m["max_tokens"],
        "enabled": m["enabled"],
        "capabilities": list(m["capabilities"]),
        "parameters": dict(m["parameters"]),
        "pricing": dict(m["pricing"]) if m["pricing"] is not None else None,
        "aliases": list(m["aliases"]),
    }


def model_rows(p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``provider_models`` rows of a canonical provider."""
    return [model_row(p["provider_id"], m) for m in p["models"]]


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
    row = {
        "provider_id": provider_id,
        "name": key["name"],
        "environment": key["environment"],
        "key_value": keys.encrypt(plaintext),
        "is_encrypted": True,
        "fingerprint": keys.fingerprint(plaintext),
        "key_id": keys.primary_id,
        "expires_at": parse_timestamp(key.get("expires_at")),
    }
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
    row: dict[str, Any] = {
        "provider_id": provider_id,
        "param_name": param["name"],
        "environment": param["environment"],
        "is_sensitive": bool(param["sensitive"]),
    }
    if param["sensitive"]:
        if plaintext is None or keys is None:
            raise ValueError(f"sensitive parameter {param['name']!r} needs its resolved value")
        row["param_value"] = keys.encrypt(plaintext)
        row["fingerprint"] = keys.fingerprint(plaintext)
        row["key_id"] = keys.primary_id
    else:
        row["param_value"] = param["value"]
        row["fingerprint"] = None
        row["key_id"] = None
    if origin is not None:  # the column is given for every row of a call (executemany)
        row["origin"] = origin if param["sensitive"] else None
    return row


def route_row(r: Mapping[str, Any], default: str | None) -> dict[str, Any]:
    """The ``routes`` row of a canonical route (``default``: the gateway's default route)."""
    return {
        "name": r["name"],
        "description": r["description"],
        "strategy": r["strategy"],
        "targets": [dict(t) for t in r["targets"]],
        "fallbacks": list(r["fallbacks"]),
        "is_default": r["name"] == default,
    }


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
    from gwconfig.db.bulk import insert_rows
    from gwconfig.db.models import (
        ApiKey,
        ConnectionParameter,
        Provider,
        ProviderModel,
        Route,
        utcnow,
    )
    from gwconfig.db.notify import announce
    from gwconfig.secrets.origin import connection_origin
    from gwconfig.secrets.resolve import resolve_secret

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
    now = utcnow()
    counts: dict[str, int] = {}
    for table, rows, constants in (
        (Provider, providers, {"created_at": now, "updated_at": now}),
        (ProviderModel, models, {}),
        (ApiKey, api_keys, {"created_at": now}),
        (ConnectionParameter, params, {}),
        (Route, routes, {}),
    ):
        insert_rows(conn, cast(Table, table.__table__), rows, constants)
        counts[table.__tablename__] = len(rows)
    announce(conn)
    return counts
