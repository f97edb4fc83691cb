"""The state reader: gateway database -> :class:`ActualState` (read only).

One Core ``SELECT`` per table, indexed in dicts, assembled into the canonical shape of
:mod:`gwconfig.canonical` so ``diff(desired, actual)`` compares like with like. Stored secrets
appear only as ``{"fingerprint": "hmac-sha256:..."}``; their ciphertext is in
:attr:`ActualState.secrets` for the few callers (rotation, runtime) that must decrypt.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Integer, Text, cast, func, select, type_coerce
from sqlalchemy.orm import Session

from gwconfig.canonical import FORMAT_VERSION, content_hash, format_timestamp
from gwconfig.db.models import ApiKey, ConfigRevision, ConnectionParameter, Provider, ProviderModel
from gwconfig.db.models import Route as RouteRow
from gwconfig.errors import EncryptionKeyError
from gwconfig.secrets import EncryptionKeys

#: ``(provider_id, "key" | "param", name, environment)``
SecretKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class ActualState:
    """What the gateway database holds, in canonical form, with its hash and last revision."""

    data: dict[str, Any]
    secrets: dict[SecretKey, str] = field(repr=False)
    state_hash: str
    last_revision: int | None
    #: stored fingerprint of each secret, keyed like :attr:`secrets`
    fingerprints: dict[SecretKey, str | None] = field(default_factory=dict, repr=False)

    def provider(self, provider_id: str) -> dict[str, Any] | None:
        """The canonical provider ``provider_id``, or None."""
        for p in self.data["providers"]:
            if p["provider_id"] == provider_id:
                return p  # type: ignore[no-any-return]
        return None

    def check_keys(self, keys: EncryptionKeys) -> None:
        """Raise :class:`EncryptionKeyError` unless ``keys`` are those the secrets were stored with.

        Decrypts one stored secret (any listed key must open it) and recomputes its fingerprint
        (the *newest* key must be the one fingerprints were made with), so a wrong key or a wrong
        key order is a clear error instead of every secret showing up as changed.
        """
        if not self.secrets:
            return
        scope, token = next(iter(sorted(self.secrets.items())))
        plain = keys.decrypt(token)
        stored = self.fingerprints.get(scope)
        if stored is not None and keys.fingerprint(plain) != stored:
            raise EncryptionKeyError(
                f"the first key in {keys.source} is not the key the stored fingerprints were "
                "made with",
                hint="list the newest key first in GWCONFIG_ENCRYPTION_KEY, or run "
                "'gwconfig keys rotate' after adding a new key",
            )


def _connection(source: Session | Connection) -> Connection:
    return source.connection() if isinstance(source, Session) else source


def _raw_json(conn: Connection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON column selected as its raw text (parsed in bulk by :func:`_parse_json_columns`)."""
    if conn.dialect.name == "postgresql":
        return cast(column, Text)
    return type_coerce(column, Text)


def _flag(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A boolean column selected without a per-row result processor (``bool()`` is applied)."""
    return type_coerce(column, Integer)


def _parse_json_columns(rows: Sequence[Any], start: int, stop: int) -> list[Any]:
    """Parse the raw JSON text in columns ``start:stop`` of every row, row-major, in one call."""
    parts = [cell if cell is not None else "null" for row in rows for cell in row[start:stop]]
    if not parts:
        return []
    return orjson.loads("[" + ",".join(parts) + "]")  # type: ignore[no-any-return]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building ~10^5 acyclic containers (it would rescan them all)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_state(source: Session | Connection) -> ActualState:
    """Read the gateway tables (one query each) into an :class:`ActualState`."""
    with _gc_paused():
        return _read_state(_connection(source))


def _read_state(conn: Connection) -> ActualState:
    secrets: dict[SecretKey, str] = {}
    fingerprints: dict[SecretKey, str | None] = {}

    models: dict[str, list[dict[str, Any]]] = defaultdict(list)
    m = ProviderModel.__table__.c
    rows = conn.execute(
        select(
            m.provider_id,
            m.model_id,
            m.display_name,
            m.model_type,
            m.context_window,
            m.max_tokens,
            _flag(m.enabled),
            _raw_json(conn, m.capabilities),
            _raw_json(conn, m.parameters),
            _raw_json(conn, m.pricing),
            _raw_json(conn, m.aliases),
        )
    ).all()
    # One orjson call for every JSON document of the table instead of one per cell.
    docs = _parse_json_columns(rows, 7, 11)
    for i, row in enumerate(rows):
        j = i * 4
        models[row[0]].append(
            {
                "model_id": row[1],
                "display_name": row[2],
                "model_type": row[3],
                "context_window": row[4],
                "max_tokens": row[5],
                "enabled": bool(row[6]),
                "capabilities": docs[j],
                "parameters": docs[j + 1],
                "pricing": docs[j + 2],
                "aliases": docs[j + 3],
            }
        )

    keys: dict[str, list[dict[str, Any]]] = defaultdict(list)
    k = ApiKey.__table__.c
    for row in conn.execute(
        select(k.provider_id, k.name, k.environment, k.key_value, k.fingerprint, k.expires_at)
    ):
        keys[row[0]].append(
            {
                "name": row[1],
                "environment": row[2],
                "value": {"fingerprint": row[4]},
                "expires_at": format_timestamp(row[5]),
            }
        )
        secrets[(row[0], "key", row[1], row[2])] = row[3]
        fingerprints[(row[0], "key", row[1], row[2])] = row[4]

    params: dict[str, list[dict[str, Any]]] = defaultdict(list)
    c = ConnectionParameter.__table__.c
    rows = conn.execute(
        select(
            c.provider_id,
            c.param_name,
            c.environment,
            type_coerce(c.param_value, Text),
            _flag(c.is_sensitive),
            c.fingerprint,
        )
    ).all()
    values = _parse_json_columns(rows, 3, 4)
    for row, value in zip(rows, values, strict=True):
        sensitive = bool(row[4])
        params[row[0]].append(
            {
                "name": row[1],
                "environment": row[2],
                "sensitive": sensitive,
                "value": {"fingerprint": row[5]} if sensitive else value,
            }
        )
        if sensitive:
            secrets[(row[0], "param", row[1], row[2])] = value
            fingerprints[(row[0], "param", row[1], row[2])] = row[5]

    providers: list[dict[str, Any]] = []
    p = Provider.__table__.c
    for row in conn.execute(
        select(
            p.provider_id,
            p.provider_type,
            p.display_name,
            p.description,
            p.enabled,
            p.tags,
            p.deletion_protection,
            p.connection_params,
            p.request_settings,
        )
    ):
        pid = row[0]
        providers.append(
            {
                "provider_id": pid,
                "provider_type": row[1],
                "display_name": row[2],
                "description": row[3],
                "enabled": bool(row[4]),
                "tags": row[5],
                "deletion_protection": bool(row[6]),
                "connection": row[7],
                "request_settings": row[8],
                "connection_parameters": sorted(
                    params.get(pid, []), key=lambda d: (d["name"], d["environment"])
                ),
                "api_keys": sorted(keys.get(pid, []), key=lambda d: (d["name"], d["environment"])),
                "models": sorted(models.get(pid, []), key=lambda d: d["model_id"]),
            }
        )
    providers.sort(key=lambda d: d["provider_id"])

    routes: list[dict[str, Any]] = []
    default_route: str | None = None
    r = RouteRow.__table__.c
    for row in conn.execute(
        select(r.name, r.description, r.strategy, r.targets, r.fallbacks, r.is_default)
    ):
        routes.append(
            {
                "name": row[0],
                "description": row[1],
                "strategy": row[2],
                "targets": row[3],
                "fallbacks": row[4],
            }
        )
        if row[5]:
            default_route = row[0]
    routes.sort(key=lambda d: d["name"])

    last = conn.execute(select(func.max(ConfigRevision.__table__.c.number))).scalar()
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "providers": providers,
        "gateway": {"default_route": default_route, "routes": routes},
    }
    return ActualState(
        data=data,
        secrets=secrets,
        state_hash=content_hash(data),
        last_revision=last,
        fingerprints=fingerprints,
    )
