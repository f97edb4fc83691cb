"""What apply records besides the plan's changes: each secret's origin, the egress policy.

Part of apply's transaction (see :mod:`gwconfig.reconcile.apply`), also when the plan has no
change: a manifest is the authority on where its provider's secrets may go, so every secret of a
provider whose stored connection is the manifest's is bound to the manifest's origin
(:mod:`gwconfig.secrets.origin`), and the ``Gateway`` manifest's ``egress`` policy is stored in
``gateway_settings`` for the REST API and the seed service
(:func:`gwconfig.reconcile.gateway_settings.read_egress_policy`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, insert, select, update

from gwconfig.db import bulk
from gwconfig.db.models import Base, GatewaySetting, Provider
from gwconfig.entities import KINDS, SecretScope
from gwconfig.reconcile.gateway_settings import EGRESS, stored_setting
from gwconfig.reconcile.state import ActualState
from gwconfig.secrets.origin import connection_origin

_SETTINGS = cast(Table, GatewaySetting.__table__)
#: secret kind -> (table, identity columns), from the entity registry
_TABLES: dict[str, tuple[Table, tuple[str, ...]]] = {
    kind: (
        Base.metadata.tables[KINDS[entity].table or ""],
        tuple(c for c, _ in KINDS[entity].identity),
    )
    for kind, entity in (("key", "api_key"), ("param", "connection_parameter"))
}


def _in_step(
    desired: Mapping[str, Any], after: ActualState
) -> Iterator[tuple[Mapping[str, Any], str]]:
    """``(desired provider, its origin)`` of each provider whose type and connection in the
    database (``after``: the state written) are the manifest's."""
    stored = {p["provider_id"]: p for p in after.data["providers"]}
    for p in desired.get("providers", ()):
        mine = stored.get(p["provider_id"])
        if mine is not None and (mine["provider_type"], mine["connection"]) == (
            p["provider_type"], p["connection"],
        ):  # fmt: skip
            yield p, connection_origin(p["provider_type"], p["connection"])


def origins_due(
    desired: Mapping[str, Any], after: ActualState, written: Collection[SecretScope] = ()
) -> dict[SecretScope, str]:
    """Secrets whose stored origin is not yet their manifest's: scope -> origin to record.

    Only providers in step with their manifest, and only secrets the manifest declares and the
    database holds; ``written``: secrets this apply stored anew.
    """
    due: dict[SecretScope, str] = {}
    for p, origin in _in_step(desired, after):
        pid = p["provider_id"]
        declared = [SecretScope.of("api_key", pid, k) for k in p.get("api_keys", ())]
        declared += [
            SecretScope.of("connection_parameter", pid, c)
            for c in p.get("connection_parameters", ())
            if c.get("sensitive")
        ]
        for scope in declared:
            if scope in after.secrets and (after.origins.get(scope) != origin or scope in written):
                due[scope] = origin
    return due


def anchors_due(conn: Connection, desired: Mapping[str, Any], after: ActualState) -> dict[str, str]:
    """Providers in step with their manifest whose ``key_origin`` is not the manifest's."""
    table = cast(Table, Provider.__table__)
    anchors = dict(conn.execute(select(table.c.provider_id, table.c.key_origin)).tuples().all())
    return {
        p["provider_id"]: origin
        for p, origin in _in_step(desired, after)
        if p["provider_id"] in anchors and anchors[p["provider_id"]] != origin
    }


def record_origins(
    conn: Connection, due: Mapping[SecretScope, str], anchors: Mapping[str, str] | None = None
) -> int:
    """Store each secret's origin and each provider's ``key_origin`` (one executemany per
    table); how many rows."""
    n = 0
    if anchors:
        anchor_columns = {"provider_id": list(anchors), "key_origin": list(anchors.values())}
        n += bulk.update_columns(
            conn, cast(Table, Provider.__table__), anchor_columns, ("provider_id",)
        )
    for kind, (table, ident) in _TABLES.items():
        mine = [(scope, origin) for scope, origin in due.items() if scope.kind == kind]
        if not mine:
            continue
        columns: dict[str, list[Any]] = {
            ident[0]: [s.provider_id for s, _ in mine],
            ident[1]: [s.name for s, _ in mine],
            ident[2]: [s.environment for s, _ in mine],
            "origin": [o for _, o in mine],
        }
        n += bulk.update_columns(conn, table, columns, ident)
    return n


def store_egress_policy(conn: Connection, desired: Mapping[str, Any]) -> bool:
    """Store the desired ``gateway.egress`` (or remove the stored one); True when it changed."""
    wanted = (desired.get("gateway") or {}).get(EGRESS)
    current = stored_setting(conn, EGRESS)
    if current == wanted:
        return False
    if wanted is None:
        conn.execute(delete(_SETTINGS).where(_SETTINGS.c.name == EGRESS))
    elif current is None:
        conn.execute(insert(_SETTINGS), {"name": EGRESS, "value": wanted})
    else:
        conn.execute(update(_SETTINGS).where(_SETTINGS.c.name == EGRESS).values(value=wanted))
    return True


def record_apply_extras(
    conn: Connection,
    desired: Mapping[str, Any] | None,
    after: ActualState,
    written: Collection[SecretScope] = (),
) -> bool:
    """Bind the manifests' secrets to their origins and store the egress policy (apply's
    transaction); True when anything was written (the caller then announces it)."""
    if desired is None:
        return False
    due = origins_due(desired, after, written)
    rebound = record_origins(conn, due, anchors_due(conn, desired, after))
    changed = store_egress_policy(conn, desired)
    return bool(rebound) or changed


def record_extras(conn: Connection, desired: Mapping[str, Any] | None, state: ActualState) -> None:
    """:func:`record_apply_extras` for an apply without changes, announced when it wrote."""
    if record_apply_extras(conn, desired, state):
        from gwconfig.db.notify import announce

        announce(conn)


def extras_due(conn: Any, desired: Mapping[str, Any] | None, state: ActualState) -> bool:
    """Whether :func:`record_apply_extras` would write anything (read only)."""
    if desired is None:
        return False
    wanted = (desired.get("gateway") or {}).get(EGRESS)
    return bool(
        origins_due(desired, state)
        or anchors_due(conn, desired, state)
        or stored_setting(conn, EGRESS) != wanted
    )
