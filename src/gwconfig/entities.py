"""The entity registry: every kind of configuration entity, described once.

Compile, the state reader, diff, apply, the after-apply state, audit masking and the
seed-compatible service all take from here what they know about an entity kind:

* its identity and key format (the keys of ``CompiledConfig.sources``, plan changes and audit
  rows): :func:`entity_key`, :func:`parse_key`;
* its canonical fields (see :mod:`gwconfig.canonical`) and how a stored row becomes them
  (``*_body`` functions, used by :mod:`gwconfig.reconcile.state` and
  :mod:`gwconfig.seed.validation`);
* which fields are secret, and the one masking function :func:`mask_entity`;
* its dependency phase: when it is created and when deleted relative to the others
  (:data:`CREATE_ORDER`, :data:`DELETE_ORDER`, :func:`phase`);
* its table, identity columns and parent collection in the canonical provider;
* its human label.

A new field or entity kind is added here (plus the row builder in :mod:`gwconfig.db.rows` and a
migration). The module imports nothing of gwconfig but :mod:`gwconfig.canonical`, so every layer
may use it.

Keys:

* ``provider``             ``provider_id``
* ``connection_parameter`` ``provider_id/param:NAME@ENV``
* ``api_key``              ``provider_id/key:NAME@ENV``
* ``model``                ``provider_id/model_id``
* ``route``                ``route:NAME``
* ``default_route``        ``gateway:default_route``
* ``egress_policy``        ``gateway:egress`` (the ``Gateway`` manifest's ``egress``, stored in
  ``gateway_settings``; present in the canonical form only when set)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from gwconfig.canonical import format_timestamp

EntityType = Literal[
    "provider",
    "connection_parameter",
    "api_key",
    "model",
    "route",
    "default_route",
    "egress_policy",
]
MASK = "(sensitive)"
DEFAULT_ROUTE_KEY = "gateway:default_route"
EGRESS_POLICY_KEY = "gateway:egress"
ROUTE_PREFIX = "route:"


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
        return "api_key" if self.kind == "key" else "connection_parameter"

    @classmethod
    def of(cls, entity: str, provider_id: str, body: Mapping[str, Any]) -> SecretScope:
        """The scope of the secret of an ``api_key`` or ``connection_parameter`` body."""
        kind: Literal["key", "param"] = "key" if entity == "api_key" else "param"
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


# -- canonical bodies: from compiled manifests, stored rows (state reader) and seed dicts ---------


def provider_body(
    provider_id: str, provider_type: str, display_name: str, description: str | None,
    enabled: Any, tags: list[str], deletion_protection: Any, connection: dict[str, Any],
    request_settings: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The canonical provider (without its children) from its ``providers`` columns."""
    return {
        "provider_id": provider_id,
        "provider_type": provider_type,
        "display_name": display_name,
        "description": description,
        "enabled": bool(enabled),
        "tags": tags,
        "deletion_protection": bool(deletion_protection),
        "connection": connection,
        "request_settings": request_settings,
    }


def model_body(
    model_id: str, display_name: str, model_type: str, context_window: int | None,
    max_tokens: int | None, enabled: Any, capabilities: list[str], parameters: dict[str, Any],
    pricing: dict[str, Any] | None, aliases: list[str],
) -> dict[str, Any]:  # fmt: skip
    """The canonical model from its ``provider_models`` columns (JSON columns parsed)."""
    return {
        "model_id": model_id,
        "display_name": display_name,
        "model_type": model_type,
        "context_window": context_window,
        "max_tokens": max_tokens,
        "enabled": bool(enabled),
        "capabilities": capabilities,
        "parameters": parameters,
        "pricing": pricing,
        "aliases": aliases,
    }


def key_body(
    name: str, environment: str, value: dict[str, Any], expires_at: datetime | None
) -> dict[str, Any]:
    """The canonical API key; ``value`` is a reference (compiled) or a fingerprint (stored)."""
    return {
        "name": name,
        "environment": environment,
        "value": value,
        "expires_at": format_timestamp(expires_at),
    }


def param_body(name: str, environment: str, sensitive: Any, value: Any) -> dict[str, Any]:
    """The canonical connection parameter; a sensitive ``value`` is a reference or fingerprint."""
    return {"name": name, "environment": environment, "sensitive": bool(sensitive), "value": value}


def api_key_body(
    name: str, environment: str, fingerprint: str | None, expires_at: datetime | str | None
) -> dict[str, Any]:
    """The canonical API key from its ``api_keys`` columns: the value is the stored fingerprint."""
    if isinstance(expires_at, str):  # SQLite gives the stored text
        expires_at = datetime.fromisoformat(expires_at)
    return key_body(name, environment, {"fingerprint": fingerprint}, expires_at)


def parameter_body(
    name: str, environment: str, sensitive: Any, value: Any, fingerprint: str | None
) -> dict[str, Any]:
    """The canonical connection parameter; a sensitive value is its stored fingerprint."""
    return param_body(
        name, environment, sensitive, {"fingerprint": fingerprint} if sensitive else value
    )


def route_body(
    name: str, description: str | None, strategy: str, targets: list[Any], fallbacks: list[str]
) -> dict[str, Any]:
    """The canonical route from its ``routes`` columns (``is_default`` is the gateway's)."""
    return {
        "name": name,
        "description": description,
        "strategy": strategy,
        "targets": targets,
        "fallbacks": fallbacks,
    }


# -- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityKind:
    """Everything gwconfig knows about one kind of entity (see the module docstring)."""

    name: EntityType
    #: how people read the kind (``API key``)
    label: str
    #: ``key(provider_id, body)``: the entity key
    key: Callable[[str | None, Mapping[str, Any]], str]
    #: ``parse(key)``: ``(provider_id, identity values)``; inverse of :attr:`key`
    parse: Callable[[str], tuple[str | None, tuple[str, ...]]]
    #: canonical fields, in the order the state reader writes them
    fields: tuple[str, ...]
    #: order of creates and updates (lower first) and of deletes (lower first)
    create_phase: int
    delete_phase: int
    #: the gateway table and its identity as ``(column, canonical field)``; a field of None is
    #: the owning provider's id
    table: str | None = None
    identity: tuple[tuple[str, str | None], ...] = ()
    #: canonical field -> table column, where they differ (the rest have the field's name)
    columns: tuple[tuple[str, str], ...] = ()
    #: the canonical provider's list holding this kind (children of a provider only)
    parent: str | None = None
    #: fields holding a secret, and the boolean field that makes them secret (None: always)
    secret_fields: tuple[str, ...] = ()
    secret_when: str | None = None
    #: the table column holding the ciphertext of the secret
    ciphertext_column: str | None = None
    #: ``SecretScope.kind`` of the secret
    scope_kind: Literal["key", "param"] | None = None

    def is_secret(self, body: Mapping[str, Any] | None) -> bool:
        """True when ``body``'s :attr:`secret_fields` hold a secret."""
        if body is None or not self.secret_fields:
            return False
        return self.secret_when is None or bool(body.get(self.secret_when))

    def column(self, field: str) -> str:
        """The table column of a canonical field."""
        return dict(self.columns).get(field, field)


PROVIDER = EntityKind(
    "provider", "provider", _provider_key, lambda key: (key, ()),
    ("provider_id", "provider_type", "display_name", "description", "enabled", "tags",
     "deletion_protection", "connection", "request_settings"),
    create_phase=3, delete_phase=2, table="providers",
    identity=(("provider_id", "provider_id"),), columns=(("connection", "connection_params"),),
)  # fmt: skip
CONNECTION_PARAMETER = EntityKind(
    "connection_parameter", "connection parameter", _param_key, _secret_parse("param"),
    ("name", "environment", "sensitive", "value"),
    create_phase=4, delete_phase=1, table="connection_parameters",
    identity=(("provider_id", None), ("param_name", "name"), ("environment", "environment")),
    columns=(("name", "param_name"), ("sensitive", "is_sensitive"), ("value", "param_value")),
    parent="connection_parameters", secret_fields=("value",), secret_when="sensitive",
    ciphertext_column="param_value", scope_kind="param",
)  # fmt: skip
API_KEY = EntityKind(
    "api_key", "API key", _api_key_key, _secret_parse("key"),
    ("name", "environment", "value", "expires_at"),
    create_phase=4, delete_phase=1, table="api_keys",
    identity=(("provider_id", None), ("name", "name"), ("environment", "environment")),
    columns=(("value", "key_value"),),
    parent="api_keys", secret_fields=("value",), ciphertext_column="key_value", scope_kind="key",
)  # fmt: skip
MODEL = EntityKind(
    "model", "model", _model_key, _parse_model,
    ("model_id", "display_name", "model_type", "context_window", "max_tokens", "enabled",
     "capabilities", "parameters", "pricing", "aliases"),
    create_phase=5, delete_phase=1, table="provider_models",
    identity=(("provider_id", None), ("model_id", "model_id")), parent="models",
)  # fmt: skip
ROUTE = EntityKind(
    "route", "route", _route_key, lambda key: (None, (key.removeprefix(ROUTE_PREFIX),)),
    ("name", "description", "strategy", "targets", "fallbacks"),
    create_phase=6, delete_phase=0, table="routes", identity=(("name", "name"),),
)  # fmt: skip
#: the gateway's default route: a flag on the ``routes`` rows, never created nor deleted
DEFAULT_ROUTE = EntityKind(
    "default_route", "default route", _default_route_key, lambda key: (None, ()),
    ("default_route",), create_phase=7, delete_phase=7,
)  # fmt: skip
#: the gateway's egress policy (``{"allow": [...]}``): a ``gateway_settings`` row apply stores
#: (:mod:`gwconfig.reconcile.bindings`), created, changed and removed like an entity
EGRESS_POLICY = EntityKind(
    "egress_policy", "egress policy", _egress_policy_key, lambda key: (None, ()),
    ("allow",), create_phase=7, delete_phase=7,
)  # fmt: skip

#: every kind, parents before children (the order of creates within a phase)
KINDS: dict[str, EntityKind] = {
    k.name: k
    for k in (PROVIDER, CONNECTION_PARAMETER, API_KEY, MODEL, ROUTE, DEFAULT_ROUTE, EGRESS_POLICY)
}
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
    if entity == "route":
        return key.removeprefix(ROUTE_PREFIX)
    if entity == "default_route":
        return "gateway.default_route"
    if entity == "egress_policy":
        return "gateway.egress"
    return key


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
