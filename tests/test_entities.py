"""The entity registry: keys, secret scopes, masking, phases and row mapping of every kind."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from builders import SECRETS, fake_resolve, sample_config
from gwconfig import entities
from gwconfig.db.models import ApiKey, Base, ConnectionParameter, Provider, ProviderModel, Route
from gwconfig.db.rows import insert_config
from gwconfig.entities import (
    CREATE_ORDER,
    DELETE_ORDER,
    KINDS,
    MASK,
    SecretScope,
    entity_key,
    mask_entity,
    parse_key,
)
from gwconfig.reconcile.apply import audit_rows
from gwconfig.reconcile.changes import to_json
from gwconfig.reconcile.diff import Create, diff
from gwconfig.reconcile.state import read_state
from gwconfig.secrets import keys as secrets
from gwconfig.secrets.keys import EncryptionKeys
from gwconfig.seed import service
from gwconfig.seed.validation import key_entity, model_entity, param_entity, provider_entity

#: identity values of each kind, several each (names with the separators ``/ : @ .`` in them)
EXAMPLES: dict[str, list[tuple[str | None, dict[str, Any]]]] = {
    "provider": [(None, {"provider_id": p}) for p in ("openai", "a.b-c", "x_1")],
    "connection_parameter": [
        ("openai", {"name": "organization", "environment": "default"}),
        ("p.q", {"name": "x.y-z", "environment": "prod"}),
        ("a", {"name": "_n", "environment": "E_2"}),
    ],
    "api_key": [
        ("openai", {"name": "default", "environment": "default"}),
        ("p-q", {"name": "batch.2", "environment": "staging"}),
        ("a", {"name": "k", "environment": "x"}),
    ],
    "model": [
        ("openai", {"model_id": "gpt-4o"}),
        ("openrouter", {"model_id": "meta/llama-3:free"}),
        ("a", {"model_id": "key:x@y"}),
    ],
    "route": [(None, {"name": n}) for n in ("smart", "a:b", "x.y-z_1")],
    "consumer": [(None, {"name": n}) for n in ("team-search", "a.b", "x_1")],
    "default_route": [(None, {"default_route": "smart"})],
    "egress_policy": [(None, {"allow": ["*.corp.example", "10.0.0.0/8"]})],
}


def _cases() -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(kind, pid, body) for kind, items in EXAMPLES.items() for pid, body in items]


def test_every_kind_has_examples() -> None:
    assert set(EXAMPLES) == set(KINDS) == set(entities.ENTITY_TYPES)


@pytest.mark.parametrize(("kind", "pid", "body"), _cases())
def test_key_format_round_trips(kind: str, pid: str | None, body: dict[str, Any]) -> None:
    key = entity_key(kind, pid, body)
    parsed_pid, ident = parse_key(kind, key)
    spec = KINDS[kind]
    if spec.parent is not None:
        assert parsed_pid == pid
    assert ident == tuple(body[f] for _, f in spec.identity if f is not None and f in body) or (
        kind == "provider" and parsed_pid == body["provider_id"]
    )


@pytest.mark.parametrize(
    ("kind", "pid", "body", "key"),
    [
        ("provider", None, {"provider_id": "openai"}, "openai"),
        ("connection_parameter", "o", {"name": "n", "environment": "e"}, "o/param:n@e"),
        ("api_key", "o", {"name": "n", "environment": "e"}, "o/key:n@e"),
        ("model", "o", {"model_id": "m"}, "o/m"),
        ("route", None, {"name": "r"}, "route:r"),
        ("default_route", None, {"default_route": None}, "gateway:default_route"),
    ],
)
def test_key_formats_are_the_published_ones(
    kind: str, pid: str | None, body: dict[str, Any], key: str
) -> None:
    assert entity_key(kind, pid, body) == key


@pytest.mark.parametrize(("kind", "pid", "body"), _cases())
def test_secret_scope_forms_round_trip(kind: str, pid: str | None, body: dict[str, Any]) -> None:
    if KINDS[kind].scope_kind is None:
        return
    assert pid is not None
    scope = SecretScope.of(kind, pid, body)
    assert scope.entity == kind
    assert scope.id == entity_key(kind, pid, body)  # a secret's scope id is its entity key
    assert SecretScope.parse(scope.id) == scope
    assert SecretScope.from_sealed(scope.sealed) == scope
    assert scope == (pid, scope.kind, body["name"], body["environment"])  # a plain tuple too
    assert hash(scope) == hash(tuple(scope))


def _secret_body(kind: str) -> dict[str, Any]:
    """A body of ``kind`` whose secret fields hold a plaintext-looking value."""
    spec = KINDS[kind]
    body: dict[str, Any] = {f: f"plain-{f}" for f in spec.fields}
    if spec.secret_when is not None:
        body[spec.secret_when] = True
    for f in spec.secret_fields:
        body[f] = "sk-do-not-show"
    return body


SECRET_KINDS = [k for k in KINDS.values() if k.secret_fields]


def test_the_secret_kinds_are_keys_and_sensitive_parameters() -> None:
    assert {k.name for k in SECRET_KINDS} == {"api_key", "connection_parameter"}


@pytest.mark.parametrize("kind", [k.name for k in SECRET_KINDS])
@pytest.mark.parametrize(
    "masker",
    [mask_entity, secrets.mask_entity, service._masked],
    ids=["registry", "secrets", "service"],
)
def test_every_secret_field_is_masked(kind: str, masker: Any) -> None:
    body = _secret_body(kind)
    masked = masker(kind, body)
    for f in KINDS[kind].secret_fields:
        assert masked[f] == MASK
    assert "sk-do-not-show" not in repr(masked)
    assert body[KINDS[kind].secret_fields[0]] == "sk-do-not-show"  # the input is not changed
    assert masker(kind, None) is None


def test_a_plain_parameter_and_other_kinds_are_not_masked() -> None:
    plain = {"name": "n", "environment": "e", "sensitive": False, "value": 3}
    assert mask_entity("connection_parameter", plain) == plain
    for kind in KINDS:
        if not KINDS[kind].secret_fields:
            body = _secret_body(kind)
            assert mask_entity(kind, body) == body


def test_audit_rows_and_plans_mask_with_the_registry() -> None:
    changes = [
        Create(
            entity=k.name,  # type: ignore[arg-type]
            key=entity_key(k.name, "p", _secret_body(k.name)),
            provider_id="p",
            after=_secret_body(k.name),
        )
        for k in SECRET_KINDS
    ]
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        rows = audit_rows(conn, changes, 1, "me", __import__("datetime").datetime.now())
    for row in rows:
        assert "sk-do-not-show" not in repr(row)
    for c in changes:
        assert "sk-do-not-show" not in repr(to_json(c))


# -- phases ---------------------------------------------------------------------------------------


def _table_kinds() -> dict[str, entities.EntityKind]:
    return {k.table: k for k in KINDS.values() if k.table is not None}


def test_every_gateway_table_has_one_kind() -> None:
    assert set(_table_kinds()) == {"providers", "provider_models", "api_keys",
                                    "connection_parameters", "routes", "consumers"}  # fmt: skip
    for table in _table_kinds():
        assert table in Base.metadata.tables


def test_phases_follow_the_foreign_keys() -> None:
    by_table = _table_kinds()
    pairs = 0
    for table, child in by_table.items():
        for fk in Base.metadata.tables[table].foreign_keys:
            parent = by_table.get(fk.column.table.name)
            if parent is None:
                continue
            pairs += 1
            assert child.create_phase > parent.create_phase
            assert child.delete_phase < parent.delete_phase
            assert CREATE_ORDER.index(child.name) > CREATE_ORDER.index(parent.name)
            assert DELETE_ORDER.index(child.name) < DELETE_ORDER.index(parent.name)
            assert child.parent is not None  # children of a provider in the canonical shape
    assert pairs == 3


def test_apply_and_diff_orders_are_the_published_ones() -> None:
    assert CREATE_ORDER == (
        "provider", "connection_parameter", "api_key", "model", "route", "consumer",
    )  # fmt: skip
    assert DELETE_ORDER == (
        "consumer", "route", "model", "api_key", "connection_parameter", "provider",
    )  # fmt: skip
    before = copy.deepcopy(sample_config().data)
    plan = diff(before, {"format_version": 1, "providers": [], "gateway": {"routes": []}})
    phases = [entities.phase(c.entity, c.action) for c in plan.changes]
    assert phases == sorted(phases)
    actual = copy.deepcopy(before)
    actual["providers"][0]["deletion_protection"] = False
    mock = [p for p in before["providers"] if p["provider_id"] == "mock"]
    empty_gateway = {"default_route": None, "routes": []}
    back = diff({**before, "providers": mock, "gateway": empty_gateway}, actual, prune=True)
    kinds = [c.entity for c in back.changes]
    assert kinds.index("route") < kinds.index("model") < kinds.index("provider")


# -- rows <-> canonical ---------------------------------------------------------------------

#: columns that are not canonical fields: surrogate ids, bookkeeping, secret storage (with the
#: origin a secret is bound to), the flag of the default route (the gateway's ``default_route``)
NOT_FIELDS = {"id", "created_at", "updated_at", "is_encrypted", "fingerprint", "key_id",
              "origin", "key_origin", "is_default", "provider_id"}  # fmt: skip


def test_every_column_of_every_table_is_a_field_or_bookkeeping() -> None:
    for table, kind in _table_kinds().items():
        columns = {c.name for c in Base.metadata.tables[table].columns}
        mapped = {kind.column(f) for f in kind.fields}
        assert mapped <= columns, (table, mapped - columns)
        assert columns - mapped <= NOT_FIELDS, (table, columns - mapped)


def test_rows_round_trip_through_both_readers(fernet_key: str) -> None:
    """Canonical -> rows (db.rows) -> canonical, by the state reader and by the ORM readers."""
    keys = EncryptionKeys(fernet_key)
    data = sample_config().data
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        insert_config(conn, data, keys, resolve=fake_resolve)
    with engine.connect() as conn:
        state = read_state(conn)
    with Session(engine) as session:
        orm: dict[str, list[dict[str, Any]]] = {
            "providers": [provider_entity(p) for p in session.scalars(select(Provider))],
            "models": [model_entity(m) for m in session.scalars(select(ProviderModel))],
            "api_keys": [key_entity(k) for k in session.scalars(select(ApiKey))],
            "parameters": [param_entity(c) for c in session.scalars(select(ConnectionParameter))],
        }
        assert {r.name for r in session.scalars(select(Route))} == {"smart", "cheap"}
    fingerprints = {keys.fingerprint(v) for v in SECRETS.values()}
    for p, read in zip(data["providers"], state.data["providers"], strict=True):
        pid = p["provider_id"]
        assert {k: read[k] for k in entities.PROVIDER.fields} == {
            k: p[k] for k in entities.PROVIDER.fields
        }
        assert {k: read[k] for k in entities.PROVIDER.fields} in orm["providers"]
        assert read["models"] == p["models"]
        for m in read["models"]:
            assert m in orm["models"]
            assert tuple(m) == entities.MODEL.fields
        for want, got in zip(p["api_keys"], read["api_keys"], strict=True):
            assert got["value"]["fingerprint"] in fingerprints
            assert {**want, "value": got["value"]} == got
            assert got in orm["api_keys"]
            assert SecretScope.of("api_key", pid, got) in state.secrets
        for want, got in zip(
            p["connection_parameters"], read["connection_parameters"], strict=True
        ):
            if want["sensitive"]:
                assert got["value"]["fingerprint"] in fingerprints
                assert SecretScope.of("connection_parameter", pid, got) in state.secrets
                want = {**want, "value": got["value"]}
            assert want == got
            assert got in orm["parameters"]
    assert state.data["gateway"] == data["gateway"]
    for route in state.data["gateway"]["routes"]:
        assert tuple(route) == entities.ROUTE.fields
