"""What apply records besides the plan's changes: each secret's origin, the egress policy.

Part of apply's transaction (see :mod:`gwconfig.reconcile.apply`), also when the plan has no
change: a manifest is the authority on where its provider's secrets may go, so every secret of a
provider whose stored connection is the manifest's is bound to the manifest's origin
(:mod:`gwconfig.secrets.origin`), and the ``Gateway`` manifest's ``egress`` policy is stored in
``gateway_settings`` for the REST API and the seed service
(:func:`gwconfig.reconcile.gateway_settings.read_egress_policy`). The policy is also part of the
canonical state (``gateway.egress``, the ``egress_policy`` entity), so plan shows its changes and
apply audits them like any change; storing it is this module's part.

Bindings are bookkeeping, not plan changes, but each provider whose bindings moved gets one
``key_binding`` audit row (:func:`binding_events`): the origins before and after, per secret
(``pid/key:name@env``) and the provider's ``key_origin``; secrets newly written by the apply are
left out (their own change is audited). Origins are scheme, host and port: no secret.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, delete, insert, select, update

from gwconfig.db import bulk
from gwconfig.db.models import AuditEvent, Base, GatewaySetting, Provider
from gwconfig.db.notify import announce
from gwconfig.entities import KINDS, SecretScope
from gwconfig.reconcile.gateway_settings import EGRESS
from gwconfig.reconcile.state import ActualState, stored_setting
from gwconfig.secrets.origin import connection_origin

_SETTINGS = cast(Table, GatewaySetting.__table__)
#: secret kind -> (table, identity columns), from the entity registry
_TABLES: dict[str, tuple[Table, tuple[str, ...]]] = {
    kind.scope_kind: (
        Base.metadata.tables[kind.table or ""],
        tuple(c for c, _ in kind.identity),
    )
    for kind in KINDS.values()
    if kind.scope_kind is not None
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


def anchor_moves(
    conn: Connection, desired: Mapping[str, Any], after: ActualState
) -> dict[str, tuple[str | None, str]]:
    """Providers in step with their manifest whose ``key_origin`` is not the manifest's:
    provider id -> (stored ``key_origin``, the manifest's origin)."""
    table = cast(Table, Provider.__table__)
    anchors = dict(conn.execute(select(table.c.provider_id, table.c.key_origin)).tuples().all())
    return {
        p["provider_id"]: (anchors[p["provider_id"]], origin)
        for p, origin in _in_step(desired, after)
        if p["provider_id"] in anchors and anchors[p["provider_id"]] != origin
    }


def anchors_due(conn: Connection, desired: Mapping[str, Any], after: ActualState) -> dict[str, str]:
    """Providers in step with their manifest whose ``key_origin`` is not the manifest's."""
    return {pid: new for pid, (_, new) in anchor_moves(conn, desired, after).items()}


class AuditStamp(NamedTuple):
    """Who applies and in which revision (None: an apply without changes), and when."""

    actor: str
    revision: int | None
    now: datetime


def binding_events(
    due: Mapping[SecretScope, str],
    moves: Mapping[str, tuple[str | None, str]],
    before: Mapping[SecretScope, str | None],
    written: Collection[SecretScope],
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Provider id -> (origins before, origins after) of each provider whose bindings moved.

    A secret this apply wrote that had no origin is new: its own change is audited already.
    """
    events: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def event(pid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return events.setdefault(pid, ({"secrets": {}}, {"secrets": {}}))

    for scope, origin in sorted(due.items()):
        old = before.get(scope)
        if old == origin or (old is None and scope in written):
            continue
        was, now = event(scope.provider_id)
        was["secrets"][scope.id], now["secrets"][scope.id] = old, origin
    for pid, (old_anchor, anchor) in sorted(moves.items()):
        if old_anchor is None and pid not in events:  # a new provider: nothing was bound
            continue
        was, now = event(pid)
        was["key_origin"], now["key_origin"] = old_anchor, anchor
    return events


def record_binding_audit(
    conn: Connection,
    events: Mapping[str, tuple[dict[str, Any], dict[str, Any]]],
    stamp: AuditStamp,
) -> None:
    """One ``key_binding`` audit row per provider of ``events`` (:func:`binding_events`)."""
    if not events:
        return
    common: dict[str, Any] = {"revision_number": stamp.revision, "created_at": stamp.now}
    common |= {"actor": stamp.actor[:255], "entity_type": "key_binding", "action": "bind"}
    rows = [
        {**common, "entity_key": pid[:512], "before": was, "after": now}
        for pid, (was, now) in events.items()
    ]
    conn.execute(insert(cast(Table, AuditEvent.__table__)), rows)


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
    stamp: AuditStamp | None = None,
) -> bool:
    """Bind the manifests' secrets to their origins and store the egress policy (apply's
    transaction); True when anything was written (the caller then announces it).

    With ``stamp``, the bindings that moved are audited (:func:`record_binding_audit`).
    """
    if desired is None:
        return False
    due = origins_due(desired, after, written)
    moves = anchor_moves(conn, desired, after)
    rebound = record_origins(conn, due, {pid: new for pid, (_, new) in moves.items()})
    if stamp is not None:
        record_binding_audit(conn, binding_events(due, moves, after.origins, written), stamp)
    changed = store_egress_policy(conn, desired)
    return bool(rebound) or changed


def record_extras(
    conn: Connection,
    desired: Mapping[str, Any] | None,
    state: ActualState,
    actor: str | None = None,
) -> None:
    """:func:`record_apply_extras` for an apply without changes, announced when it wrote;
    the bindings are audited as ``actor``'s (no revision) when given."""
    stamp = None if actor is None else AuditStamp(actor, None, datetime.now(UTC))
    if record_apply_extras(conn, desired, state, stamp=stamp):
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
