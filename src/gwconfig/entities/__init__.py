"""The entity registry: every kind of configuration entity, described once.

Compile, the state reader, diff, apply, the after-apply state, audit masking and the
seed-compatible service all take from here what they know about an entity kind:

* its identity and key format (the keys of ``CompiledConfig.sources``, plan changes and audit
  rows): :func:`entity_key`, :func:`parse_key`;
* its canonical fields, each a :class:`~gwconfig.entities.fields.Field` spec (column, store,
  default, secret or not, compared by verify: :mod:`gwconfig.entities.fields`), and the frozen
  record of its canonical body (:mod:`gwconfig.entities.records`);
* which fields are secret, and the one masking function :func:`mask_entity`;
* its dependency phase: when it is created and when deleted relative to the others
  (:data:`CREATE_ORDER`, :data:`DELETE_ORDER`, :func:`phase`);
* its table, identity columns, the columns the database stamps, and its parent collection in
  the canonical provider;
* its human label.

A new field is one spec entry in :mod:`gwconfig.entities.fields` (and its attribute in the
record) plus a migration; a new kind is added here. The package imports nothing of gwconfig but
:mod:`gwconfig.canonical`, so every layer may use it.

Keys:

* ``provider``             ``provider_id``
* ``connection_parameter`` ``provider_id/param:NAME@ENV``
* ``api_key``              ``provider_id/key:NAME@ENV``
* ``model``                ``provider_id/model_id``
* ``route``                ``route:NAME``
* ``consumer``             ``consumer:NAME`` (a ``kind: Consumer`` manifest, top-level
  ``consumers`` of the canonical form, present only when there is one)
* ``default_route``        ``gateway:default_route``
* ``egress_policy``        ``gateway:egress`` (the ``Gateway`` manifest's ``egress``, stored in
  ``gateway_settings``; present in the canonical form only when set)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from gwconfig.entities.fields import (
    API_KEY_FIELDS,
    CONNECTION_PARAMETER_FIELDS,
    CONSUMER_FIELDS,
    DEFAULT_ROUTE_FIELDS,
    EGRESS_POLICY_FIELDS,
    MODEL_FIELDS,
    PROVIDER_FIELDS,
    ROUTE_FIELDS,
    Field,
    names,
)

EntityType = Literal[
    "provider",
    "connection_parameter",
    "api_key",
    "model",
    "route",
    "consumer",
    "default_route",
    "egress_policy",
]
MASK = "(sensitive)"
DEFAULT_ROUTE_KEY = "gateway:default_route"
EGRESS_POLICY_KEY = "gateway:egress"
ROUTE_PREFIX = "route:"
CONSUMER_PREFIX = "consumer:"


#: A secret's scope in the form sealed values are bound to: ``(pid, name, env)``, the name
#: ``param:NAME`` for a connection parameter (:attr:`SecretScope.sealed`).
SealedScope = tuple[str, str, str]
#: ``resolve(reference, scope)``: the plaintext behind a secret reference.
SecretResolver = Callable[[Mapping[str, Any], SealedScope], str]


class SecretScope(NamedTuple):
    """Where a secret belongs: ``(provider_id, "key" | "param", name, environment)``.

    A tuple, so it is equal to (and hashes like) the plain 4-tuple. Its two serialised forms
    are :attr:`id` (the entity key, ``pid/key:name@env``, used in snapshots and sources) and
    :attr:`sealed` (the ``(pid, name | "param:name", env)`` bound into sealed values).
    """

    provider_id: str
    kind: Literal["key", "param"]
    name: str
    environment: str

    @property
    def id(self) -> str:
        """``pid/key:name@env`` or ``pid/param:name@env``: the entity key of the secret."""
        return f"{self.provider_id}/{self.kind}:{self.name}@{self.environment}"

    @property
    def sealed(self) -> SealedScope:
        """The scope sealed values are bound to: ``(pid, name, env)``, ``param:name`` for a
        parameter (see :mod:`gwconfig.secrets.sealing`)."""
        name = self.name if self.kind == "key" else f"param:{self.name}"
        return (self.provider_id, name, self.environment)

    @property
    def entity(self) -> EntityType:
        """The entity kind holding this secret."""
        return _SCOPE_KINDS[self.kind].name

    @classmethod
    def of(cls, entity: str, provider_id: str, body: Mapping[str, Any]) -> SecretScope:
        """The scope of the secret of an ``api_key`` or ``connection_parameter`` body."""
        kind = _SECRET_KINDS[entity].scope_kind
        assert kind is not None
        return cls(provider_id, kind, body["name"], body["environment"])

    @classmethod
    def parse(cls, scope_id: str) -> SecretScope:
        """Inverse of :attr:`id`."""
        pid, _, rest = scope_id.partition("/")
        kind, _, rest = rest.partition(":")
        name, _, environment = rest.rpartition("@")
        if kind not in ("key", "param"):
            raise ValueError(f"not a secret scope: {scope_id!r}")
        return cls(pid, "key" if kind == "key" else "param", name, environment)

    @classmethod
    def from_sealed(cls, scope: SealedScope) -> SecretScope:
        """Inverse of :attr:`sealed`."""
        pid, name, environment = scope
        if name.startswith("param:"):
            return cls(pid, "param", name[6:], environment)
        return cls(pid, "key", name, environment)


# -- key formats ---------------------------------------------------------------------------------


def model_key(provider_id: str, model_id: str) -> str:
    """``provider_id/model_id``."""
    return f"{provider_id}/{model_id}"


def route_key(name: str) -> str:
    """``route:NAME``."""
    return ROUTE_PREFIX + name


def _provider_key(pid: str | None, body: Mapping[str, Any]) -> str:
    return body["provider_id"]  # type: ignore[no-any-return]


def _param_key(pid: str | None, body: Mapping[str, Any]) -> str:
    return f"{pid}/param:{body['name']}@{body['environment']}"


def _api_key_key(pid: str | None, body: Mapping[str, Any]) -> str:
    return f"{pid}/key:{body['name']}@{body['environment']}"


def _model_key(pid: str | None, body: Mapping[str, Any]) -> str:
    return f"{pid}/{body['model_id']}"


def _route_key(pid: str | None, body: Mapping[str, Any]) -> str:
    return f"{ROUTE_PREFIX}{body['name']}"


def consumer_key(name: str) -> str:
    """``consumer:NAME``."""
    return CONSUMER_PREFIX + name


def _consumer_key(pid: str | None, body: Mapping[str, Any]) -> str:
    return f"{CONSUMER_PREFIX}{body['name']}"


def _default_route_key(pid: str | None, body: Mapping[str, Any]) -> str:
    return DEFAULT_ROUTE_KEY


def _egress_policy_key(pid: str | None, body: Mapping[str, Any]) -> str:
    return EGRESS_POLICY_KEY


def _secret_parse(marker: str) -> Callable[[str], tuple[str | None, tuple[str, ...]]]:
    def parse(key: str) -> tuple[str | None, tuple[str, ...]]:
        pid, _, rest = key.partition(f"/{marker}:")
        name, _, environment = rest.rpartition("@")
        return pid, (name, environment)

    return parse


def _parse_model(key: str) -> tuple[str | None, tuple[str, ...]]:
    pid, _, model_id = key.partition("/")
    return pid, (model_id,)


# -- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EntityKind:
    """Everything gwconfig knows about one kind of entity (see the module docstring).

    Kinds compare by identity: code that behaves per kind dispatches on these objects (or
    tables keyed by them), never on the kind's name.
    """

    name: EntityType
    #: how people read the kind (``API key``)
    label: str
    #: ``key(provider_id, body)``: the entity key
    key: Callable[[str | None, Mapping[str, Any]], str]
    #: ``parse(key)``: ``(provider_id, identity values)``; inverse of :attr:`key`
    parse: Callable[[str], tuple[str | None, tuple[str, ...]]]
    #: the field specs, in canonical order (the order the state reader writes them)
    specs: tuple[Field, ...]
    #: order of creates and updates (lower first) and of deletes (lower first)
    create_phase: int
    delete_phase: int
    #: the gateway table and its identity as ``(column, canonical field)``; a field of None is
    #: the owning provider's id
    table: str | None = None
    identity: tuple[tuple[str, str | None], ...] = ()
    #: columns the database stamps with the time of the write: on every create, on every write
    stamped_on_create: tuple[str, ...] = ()
    stamped_on_write: tuple[str, ...] = ()
    #: the canonical provider's list holding this kind (children of a provider only)
    parent: str | None = None
    #: the boolean field that makes the :attr:`secret_fields` secret (None: always)
    secret_when: str | None = None
    #: the table column holding the ciphertext of the secret
    ciphertext_column: str | None = None
    #: ``SecretScope.kind`` of the secret
    scope_kind: Literal["key", "param"] | None = None
    #: ``shown(key)``: the key as plan, apply and show-revision print it
    shown: Callable[[str], str] = str
    #: canonical field names, in order (from :attr:`specs`)
    fields: tuple[str, ...] = field(init=False)
    #: fields holding a secret (from :attr:`specs`)
    secret_fields: tuple[str, ...] = field(init=False)
    _columns: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", names(self.specs))
        object.__setattr__(self, "secret_fields", tuple(f.name for f in self.specs if f.secret))
        object.__setattr__(self, "_columns", {f.name: f.column for f in self.specs})

    def is_secret(self, body: Mapping[str, Any] | None) -> bool:
        """True when ``body``'s :attr:`secret_fields` hold a secret."""
        if body is None or not self.secret_fields:
            return False
        return self.secret_when is None or bool(body.get(self.secret_when))

    def column(self, field: str) -> str:
        """The table column of a canonical field."""
        return self._columns[field]


PROVIDER = EntityKind(
    "provider", "provider", _provider_key, lambda key: (key, ()), PROVIDER_FIELDS,
    create_phase=3, delete_phase=2, table="providers", identity=(("provider_id", "provider_id"),),
    stamped_on_create=("created_at",), stamped_on_write=("updated_at",),
)  # fmt: skip
CONNECTION_PARAMETER = EntityKind(
    "connection_parameter", "connection parameter", _param_key, _secret_parse("param"),
    CONNECTION_PARAMETER_FIELDS, create_phase=4, delete_phase=1, table="connection_parameters",
    identity=(("provider_id", None), ("param_name", "name"), ("environment", "environment")),
    parent="connection_parameters", secret_when="sensitive", ciphertext_column="param_value",
    scope_kind="param",
)  # fmt: skip
API_KEY = EntityKind(
    "api_key", "API key", _api_key_key, _secret_parse("key"), API_KEY_FIELDS,
    create_phase=4, delete_phase=1, table="api_keys",
    identity=(("provider_id", None), ("name", "name"), ("environment", "environment")),
    stamped_on_create=("created_at",), parent="api_keys", ciphertext_column="key_value",
    scope_kind="key",
)  # fmt: skip
MODEL = EntityKind(
    "model", "model", _model_key, _parse_model, MODEL_FIELDS,
    create_phase=5, delete_phase=1, table="provider_models",
    identity=(("provider_id", None), ("model_id", "model_id")), parent="models",
)  # fmt: skip
ROUTE = EntityKind(
    "route", "route", _route_key, lambda key: (None, (key.removeprefix(ROUTE_PREFIX),)),
    ROUTE_FIELDS, create_phase=6, delete_phase=0, table="routes", identity=(("name", "name"),),
    shown=lambda key: key.removeprefix(ROUTE_PREFIX),
)  # fmt: skip
#: a ``kind: Consumer``: who may call which models, with which limits and budget
CONSUMER = EntityKind(
    "consumer", "consumer", _consumer_key,
    lambda key: (None, (key.removeprefix(CONSUMER_PREFIX),)), CONSUMER_FIELDS, create_phase=6,
    delete_phase=0, table="consumers", identity=(("name", "name"),),
    shown=lambda key: key.removeprefix(CONSUMER_PREFIX),
)  # fmt: skip
#: the gateway's default route: a flag on the ``routes`` rows, never created nor deleted
DEFAULT_ROUTE = EntityKind(
    "default_route", "default route", _default_route_key, lambda key: (None, ()),
    DEFAULT_ROUTE_FIELDS, create_phase=7, delete_phase=7, shown=lambda key: "gateway.default_route",
)  # fmt: skip
#: the gateway's egress policy (``{"allow": [...]}``): a ``gateway_settings`` row apply stores
#: (:mod:`gwconfig.reconcile.bindings`), created, changed and removed like an entity
EGRESS_POLICY = EntityKind(
    "egress_policy", "egress policy", _egress_policy_key, lambda key: (None, ()),
    EGRESS_POLICY_FIELDS, create_phase=7, delete_phase=7, shown=lambda key: "gateway.egress",
)  # fmt: skip

#: every kind, parents before children (the order of creates within a phase)
KINDS: dict[str, EntityKind] = {
    k.name: k
    for k in (
        PROVIDER, CONNECTION_PARAMETER, API_KEY, MODEL, ROUTE, CONSUMER, DEFAULT_ROUTE,
        EGRESS_POLICY,
    )
}  # fmt: skip
ENTITY_TYPES: tuple[str, ...] = tuple(KINDS)
#: kinds that are children of a provider, and the canonical provider's lists of them
CHILD_KINDS: tuple[EntityKind, ...] = tuple(k for k in KINDS.values() if k.parent)
CHILDREN: tuple[str, ...] = tuple(k.parent for k in CHILD_KINDS if k.parent)
#: kinds with a table, in the order apply creates (and updates) them
CREATE_ORDER: tuple[str, ...] = tuple(
    k.name for k in sorted(KINDS.values(), key=lambda k: k.create_phase) if k.table
)
#: kinds with a table, in the order apply deletes them (children before their parents)
DELETE_ORDER: tuple[str, ...] = tuple(
    k.name for k in sorted(reversed(KINDS.values()), key=lambda k: k.delete_phase) if k.table
)
#: entity -> phase of its creates/updates and of its deletes (precomputed for the sort in diff)
CREATE_PHASES: dict[str, int] = {k.name: k.create_phase for k in KINDS.values()}
DELETE_PHASES: dict[str, int] = {k.name: k.delete_phase for k in KINDS.values()}
#: entity -> its key function (one dict lookup, no attribute access, in hot loops)
KEY_FUNCTIONS: dict[str, Callable[[str | None, Mapping[str, Any]], str]] = {
    k.name: k.key for k in KINDS.values()
}
_SECRET_KINDS: dict[str, EntityKind] = {k.name: k for k in KINDS.values() if k.secret_fields}
_SCOPE_KINDS: dict[str, EntityKind] = {k.scope_kind: k for k in KINDS.values() if k.scope_kind}


def phase(entity: str, action: str) -> int:
    """Where a change sorts in a plan: deletes first (children first), then creates/updates."""
    return DELETE_PHASES[entity] if action == "delete" else CREATE_PHASES[entity]


def entity_key(entity: str, provider_id: str | None, body: Mapping[str, Any]) -> str:
    """The key of an entity of kind ``entity`` owned by ``provider_id`` (None: not a child)."""
    return KEY_FUNCTIONS[entity](provider_id, body)


def parse_key(entity: str, key: str) -> tuple[str | None, tuple[str, ...]]:
    """``(provider_id, identity values)`` of an entity key (inverse of :func:`entity_key`)."""
    return KINDS[entity].parse(key)


def entity_label(entity: str, key: str) -> str:
    """An entity key as plan, apply and show-revision print it (``route:x`` -> ``x``)."""
    return KINDS[entity].shown(key)


def is_secret_field(entity: str, body: Mapping[str, Any] | None) -> bool:
    """True when ``body`` (an entity of kind ``entity``) holds a secret value."""
    kind = _SECRET_KINDS.get(entity)
    return kind is not None and kind.is_secret(body)


def mask_entity(entity: str, body: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``body`` with every secret field replaced by :data:`MASK` (a copy; None stays None).

    The one masking function: plans, audit rows (apply and the seed service) and messages use
    it. A body without secrets is returned as is (callers only read it).
    """
    if body is None:
        return None
    kind = _SECRET_KINDS.get(entity)
    if kind is None or not kind.is_secret(body):
        return body
    out = dict(body)
    for name in kind.secret_fields:
        out[name] = MASK
    return out
