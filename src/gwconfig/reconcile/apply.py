"""Apply a plan: DB-level lock, staleness check, ONE transaction, revision and audit rows.

The only writer of the gateway tables for the reconciler. Everything between :func:`locked` and
its commit is one transaction: a failure anywhere (or a killed process) leaves the database as
it was. Writes are Core statements with executemany, grouped by table and action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Table, bindparam, insert, update

from gwconfig.canonical import content_hash
from gwconfig.db import bulk
from gwconfig.db.models import AuditEvent, Base, ConfigRevision, Route
from gwconfig.db.notify import announce
from gwconfig.db.rows import (
    api_key_row,
    model_row,
    parameter_row,
    plain_columns,
    provider_row,
    route_row,
)
from gwconfig.db.snapshots import compress_snapshot
from gwconfig.entities import (
    API_KEY,
    CONNECTION_PARAMETER,
    CONSUMER,
    CREATE_ORDER,
    DEFAULT_ROUTE,
    DELETE_ORDER,
    KINDS,
    MODEL,
    PROVIDER,
    ROUTE,
    EntityKind,
    SecretScope,
    mask_entity,
)
from gwconfig.errors import PlanError, StalePlanError
from gwconfig.reconcile.after import patched_state
from gwconfig.reconcile.bindings import AuditStamp, record_apply_extras, record_extras
from gwconfig.reconcile.diff import Change
from gwconfig.reconcile.plan import Plan
from gwconfig.reconcile.rotation import record_key_ids
from gwconfig.reconcile.state import ActualState
from gwconfig.secrets.keys import EncryptionKeys
from gwconfig.words import bulleted, plural

STALE_MESSAGE = "plan is stale: the database changed since it was made; run plan again"

#: secret scope -> plaintext, keyed like ``ActualState.secrets``
SecretValues = Mapping[SecretScope, str]


@dataclass(frozen=True)
class ApplyResult:
    """What an apply did: the new revision (None when nothing changed) and the counts."""

    revision: int | None
    summary: Mapping[str, int]
    state_hash: str


def check_base(plan: Plan, state: ActualState) -> None:
    """Refuse a saved plan whose base state moved (raises :class:`StalePlanError`)."""
    if plan.base_state_hash is not None and plan.base_state_hash != state.state_hash:
        raise StalePlanError(STALE_MESSAGE)


def check_safety(plan: Plan, max_deletes: int | None) -> None:
    """Refuse unknown secrets and more deletes than ``max_deletes``."""
    unknown = plan.unknown_secrets
    if unknown:
        raise PlanError(
            f"cannot apply: {plural(len(unknown), 'secret')} cannot be resolved:"
            + bulleted(unknown),
            hint="set the variables / create the files, then run again",
        )
    deletes = plan.summary["delete"]
    if max_deletes is not None and deletes > max_deletes:
        raise PlanError(
            f"refusing to delete {plural(deletes, 'entity', 'entities')} "
            f"(more than --max-deletes {max_deletes})",
            hint=f"review the plan, then pass --max-deletes {deletes} to allow it",
        )


def _secret(values: SecretValues, pid: str, entity: str, body: Mapping[str, Any]) -> str:
    scope = SecretScope.of(entity, pid, body)
    try:
        return values[scope]
    except KeyError:
        raise PlanError(
            f"no resolved value for the secret of {pid}/{scope.kind}:{scope.name}"
        ) from None


#: ``row(change, values, keys, default route)``: the table row a create or update writes
RowBuilder = Callable[[Change, SecretValues, EncryptionKeys, str | None], dict[str, Any]]


def _provider_row(
    c: Change, values: SecretValues, keys: EncryptionKeys, default: str | None
) -> dict[str, Any]:
    return provider_row(c.after or {})


def _model_row(
    c: Change, values: SecretValues, keys: EncryptionKeys, default: str | None
) -> dict[str, Any]:
    return model_row(pid_of(c), c.after or {})


def _api_key_row(
    c: Change, values: SecretValues, keys: EncryptionKeys, default: str | None
) -> dict[str, Any]:
    body, pid = c.after or {}, pid_of(c)
    return api_key_row(pid, body, _secret(values, pid, c.entity, body), keys)


def _parameter_row(
    c: Change, values: SecretValues, keys: EncryptionKeys, default: str | None
) -> dict[str, Any]:
    body, pid = c.after or {}, pid_of(c)
    plain = _secret(values, pid, c.entity, body) if c.kind.is_secret(body) else None
    return parameter_row(pid, body, keys, plain)


def _route_row(
    c: Change, values: SecretValues, keys: EncryptionKeys, default: str | None
) -> dict[str, Any]:
    return route_row(c.after or {}, default)


#: kind -> its row builder (every kind with a table)
_ROWS: dict[EntityKind, RowBuilder] = {
    PROVIDER: _provider_row,
    MODEL: _model_row,
    API_KEY: _api_key_row,
    CONNECTION_PARAMETER: _parameter_row,
    ROUTE: _route_row,
    CONSUMER: lambda c, values, keys, default: plain_columns(CONSUMER, c.after or {}),
}


#: ``provider_models`` columns that are canonical model fields of the same name (see rows.py)
_MODEL_FIELDS = MODEL.fields
assert all(MODEL.column(f) == f for f in _MODEL_FIELDS)

#: entity -> (table, identity columns, identity fields: None is the owning provider's id)
_TABLES: dict[str, tuple[Any, tuple[str, ...], tuple[str | None, ...]]] = {
    k.name: (
        Base.metadata.tables[k.table],
        tuple(column for column, _ in k.identity),
        tuple(f for _, f in k.identity),
    )
    for k in KINDS.values()
    if k.table is not None
}


def _ident_values(c: Change, fields: tuple[str | None, ...]) -> tuple[Any, ...]:
    body = c.before or c.after or {}
    return tuple(c.provider_id if f is None else body[f] for f in fields)


@dataclass(frozen=True)
class Written:
    """What :func:`write_changes` stored beyond the plan: new ciphertexts, the default route."""

    ciphertexts: dict[SecretScope, str]
    default_route: str | None


def pid_of(c: Change) -> str:
    """The provider id of a child change."""
    return c.provider_id or ""


def write_changes(
    conn: Connection,
    plan: Plan,
    values: SecretValues,
    keys: EncryptionKeys,
    base: ActualState,
    now: datetime,
    meanwhile: Callable[[Written], None] | None = None,
) -> Written:
    """Execute the plan's effective changes (deletes children first, creates parents first).

    ``meanwhile`` is given what has been written once every secret is (keys and parameters
    come before models), while the database inserts the models (see
    :func:`gwconfig.db.bulk.insert_tuples`); it may not be called at all.
    """
    effective = plan.effective_changes
    default_change = next((c for c in effective if c.kind is DEFAULT_ROUTE), None)
    default = (
        (default_change.after or {}).get("default_route")
        if default_change is not None
        else base.data["gateway"]["default_route"]
    )
    written: dict[SecretScope, str] = {}
    groups: dict[tuple[str, str], list[Change]] = {}
    for c in effective:
        groups.setdefault((c.action, c.entity), []).append(c)
    # children deleted before their parents, parents created before their children
    order = [("delete", e) for e in DELETE_ORDER]
    order += [(action, e) for e in CREATE_ORDER for action in ("create", "update")]
    for action, entity in order:
        changes = groups.get((action, entity))
        if not changes:
            continue
        table, ident, fields = _TABLES[entity]
        kind = KINDS[entity]
        if action == "delete":
            idents = [_ident_values(c, fields) for c in changes]
            bulk.delete_rows(conn, table, ident, idents)
            continue
        if kind is MODEL:  # the bulk of a large apply: straight from the bodies
            bodies = [c.after or {} for c in changes]
            columns: dict[str, list[Any]] = {"provider_id": [c.provider_id for c in changes]}
            columns.update({f: [b[f] for b in bodies] for f in _MODEL_FIELDS})
        else:
            build = _ROWS[kind]
            rows = [build(c, values, keys, default) for c in changes]
            columns = bulk.by_column(rows)
            if kind.ciphertext_column is not None:
                for c, row in zip(changes, rows, strict=True):
                    if kind.is_secret(c.after):
                        scope = SecretScope.of(entity, pid_of(c), c.after or {})
                        written[scope] = row[kind.ciphertext_column]
        stamped = (*kind.stamped_on_write, *(kind.stamped_on_create if action == "create" else ()))
        constants: dict[str, Any] = dict.fromkeys(stamped, now)
        if action == "create" and kind is MODEL and meanwhile is not None:
            done = partial(meanwhile, Written(dict(written), default))
            bulk.insert_columns(conn, table, columns, constants, meanwhile=done)
        elif action == "create":
            bulk.insert_columns(conn, table, columns, constants)
        else:
            bulk.update_columns(conn, table, columns, ident, constants)
    if default_change is not None:
        routes = cast(Table, Route.__table__)
        conn.execute(
            update(routes)
            .where(routes.c.is_default.is_(True), routes.c.name != bindparam("n"))
            .values(is_default=False),
            {"n": default or ""},
        )
        if default is not None:
            conn.execute(update(routes).where(routes.c.name == default).values(is_default=True))
    return Written(written, default)


def revision_snapshot(state: ActualState, desired: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stored snapshot: resulting config (secret refs where known) plus ciphertexts."""
    refs: dict[SecretScope, Any] = {}
    for p in (desired or {}).get("providers", ()):
        pid = p["provider_id"]
        for k in p.get("api_keys", ()):
            refs[SecretScope.of("api_key", pid, k)] = k["value"]
        for prm in p.get("connection_parameters", ()):
            if prm.get("sensitive"):
                refs[SecretScope.of("connection_parameter", pid, prm)] = prm["value"]
    fingerprints: dict[str, str] = {}
    providers = []
    for p in state.data["providers"]:
        pid = p["provider_id"]
        q = dict(p)
        q["api_keys"] = []
        for k in p["api_keys"]:
            scope = SecretScope.of("api_key", pid, k)
            fingerprints[scope.id] = k["value"]["fingerprint"]
            ref = refs.get(scope)
            q["api_keys"].append({**k, "value": ref if _is_ref(ref) else k["value"]})
        q["connection_parameters"] = []
        for prm in p["connection_parameters"]:
            if prm["sensitive"]:
                scope = SecretScope.of("connection_parameter", pid, prm)
                fingerprints[scope.id] = prm["value"]["fingerprint"]
                ref = refs.get(scope)
                prm = {**prm, "value": ref if _is_ref(ref) else prm["value"]}
            q["connection_parameters"].append(prm)
        providers.append(q)
    config = {**state.data, "providers": providers}
    egress = ((desired or {}).get("gateway") or {}).get("egress")
    if egress is not None:  # rollback to this revision restores the policy it had
        config["gateway"] = {**state.data["gateway"], "egress": egress}
    return {
        "format_version": 1,
        "config": config,
        "fingerprints": fingerprints,
        "ciphertexts": {SecretScope(*s).id: v for s, v in sorted(state.secrets.items())},
    }


def _is_ref(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and next(iter(value))
        in (
            "env",
            "file",
            "sealed",
        )
    )


_AUDIT_COLUMNS = (
    "revision_number", "created_at", "actor", "entity_type", "entity_key", "action", "before",
    "after",
)  # fmt: skip


def audit_rows(
    conn: Connection, changes: Sequence[Change], number: int, actor: str, now: datetime
) -> list[tuple[Any, ...]]:
    """One ``audit_events`` row per change (secrets masked), JSON serialised once by orjson."""
    table = cast(Table, AuditEvent.__table__)
    stamp = bulk.converter(conn, table.c.created_at)
    when = stamp(now) if stamp is not None else now
    dumps = orjson.dumps
    rows = []
    for c in changes:
        before = mask_entity(c.entity, c.before)
        after = mask_entity(c.entity, c.after)
        rows.append((
            number, when, actor, c.entity, c.key[:512], c.action,
            None if before is None else dumps(before).decode(),
            None if after is None else dumps(after).decode(),
        ))  # fmt: skip
    return rows


class _Outcome:
    """What an apply records besides the changes (the state after, the snapshot, the audit
    rows): pure computation, done once, while the server inserts the models if it can."""

    def __init__(
        self, conn: Connection, plan: Plan, base: ActualState, number: int, actor: str,
        now: datetime,
    ) -> None:  # fmt: skip
        self.conn, self.plan, self.base = conn, plan, base
        self.number, self.actor, self.now = number, actor, now
        self.after: ActualState | None = None
        self.snapshot = b""
        self.audit: list[tuple[Any, ...]] = []

    def compute(self, written: Written) -> None:
        if self.after is not None:
            return
        effective = self.plan.effective_changes
        # the tables now hold the base state with the changes written (no need to read them)
        data, secrets, fingerprints = patched_state(
            self.base.data, self.base.secrets, effective, written.default_route,
            written.ciphertexts,
        )  # fmt: skip
        self.after = ActualState(data, secrets, content_hash(data), self.number, fingerprints)
        self.snapshot = compress_snapshot(revision_snapshot(self.after, self.plan.desired))
        self.audit = audit_rows(self.conn, effective, self.number, self.actor, self.now)


def execute_plan(
    conn: Connection,
    plan: Plan,
    *,
    base: ActualState,
    values: SecretValues,
    keys: EncryptionKeys,
    actor: str,
    git_sha: str | None = None,
) -> ApplyResult:
    """Write the plan, one revision and one audit row per change (inside ``locked``)."""
    check_base(plan, base)
    effective = plan.effective_changes
    if not effective:  # the manifests' origins and egress policy may still be due
        record_extras(conn, plan.desired, base, actor)
        return ApplyResult(None, plan.summary, base.state_hash)
    now = datetime.now(UTC)
    number = (base.last_revision or 0) + 1
    outcome = _Outcome(conn, plan, base, number, actor, now)
    written = write_changes(conn, plan, values, keys, base, now, meanwhile=outcome.compute)
    outcome.compute(written)
    if None in base.key_ids.values():  # rows stored before key ids were kept: record theirs
        record_key_ids(conn, keys.primary_id)
    after = outcome.after
    assert after is not None
    bound = replace(after, origins=base.origins)
    stamp = AuditStamp(actor, number, now)
    record_apply_extras(conn, plan.desired, bound, written.ciphertexts, stamp)
    summary = {**plan.summary, "drift_revision": plan.drift_revision}
    conn.execute(
        insert(cast(Table, ConfigRevision.__table__)),
        {
            "number": number,
            "content_hash": plan.desired_hash or content_hash(plan.desired or {}),
            "state_hash": after.state_hash,
            "snapshot": outcome.snapshot,  # already in stored form
            "actor": actor,
            "git_sha": git_sha,
            "created_at": now,
            "summary": summary,
        },
    )
    bulk.insert_tuples(conn, cast(Table, AuditEvent.__table__), _AUDIT_COLUMNS, outcome.audit)
    announce(conn)  # last: runtimes learn of the revision when (and if) it commits
    return ApplyResult(number, plan.summary, after.state_hash)
