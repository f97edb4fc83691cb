"""Field specs: each canonical field of each entity kind, described once.

One :class:`Field` per field, in canonical order (the order of the canonical dicts, see
:mod:`gwconfig.canonical`). Everything that handles the fields one by one derives from these
tuples: the records of :mod:`gwconfig.entities.records` (canonical bodies), the row builders
of :mod:`gwconfig.db.rows`, the state reader's ``SELECT`` columns
(:mod:`gwconfig.reconcile.state`), the fields ``gwconfig verify`` compares
(:mod:`gwconfig.adopt.parity`) and the key order and defaults of the manifests ``dump`` and
``import`` write (:mod:`gwconfig.adopt.writer`).

A new field is one entry here, its attribute in the record, and a migration adding its column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: how a field is stored and read back: ``text`` and ``integer`` as they are, ``flag`` as a
#: boolean (read back with ``bool()``: SQLite and MySQL give 0/1), ``timestamp`` as a datetime
#: column (canonical text, see :func:`gwconfig.canonical.format_timestamp`), ``list``,
#: ``object`` and ``records`` (a list of objects) as JSON columns, ``secret`` as a ciphertext
#: column whose canonical value is a reference or a fingerprint, ``any`` as JSON text (a
#: connection parameter's typed value, or its ciphertext)
Store = Literal[
    "text", "integer", "flag", "timestamp", "list", "object", "records", "secret", "any"
]
JSON_STORES = frozenset(["list", "object", "records"])


class _Required:
    """The default of a field a manifest must give (the writer always writes it)."""

    def __repr__(self) -> str:
        return "REQUIRED"


class _Empty:
    """The default of a collection a manifest may leave out: empty (the writer omits it)."""

    def __repr__(self) -> str:
        return "EMPTY"


REQUIRED: Any = _Required()
EMPTY: Any = _Empty()


@dataclass(frozen=True, slots=True)
class Field:
    """One canonical field of an entity kind."""

    name: str
    store: Store = "text"
    #: the table column ("" : the field's name)
    column: str = ""
    #: the value a manifest may leave out (the writer omits it): :data:`REQUIRED`, :data:`EMPTY`
    #: or a value
    default: Any = REQUIRED
    #: a manifest may leave the field out when it equals this other field (``display_name``)
    same_as: str | None = None
    #: a JSON column that may hold SQL NULL (the canonical value is then None)
    nullable: bool = False
    #: the field holds a secret (see :attr:`gwconfig.entities.EntityKind.secret_when`)
    secret: bool = False
    #: ``gwconfig verify`` compares it: the back-office has a column for it
    compared: bool = False

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", self.name)

    @property
    def json(self) -> bool:
        """True when the column is a JSON document."""
        return self.store in JSON_STORES

    def omitted(self, body: Mapping[str, Any]) -> bool:
        """True when a manifest leaves this field of ``body`` out (it holds the default)."""
        value = body.get(self.name)
        if self.same_as is not None:
            return bool(value == body.get(self.same_as))
        if self.default is REQUIRED:
            return False
        if self.default is EMPTY:
            return not value
        return bool(value == self.default)


#: the columns that store a secret beside its ciphertext: its fingerprint, the id of the key it
#: is encrypted with and the origin it is bound to (:mod:`gwconfig.secrets.origin`)
SECRET_COLUMNS = ("fingerprint", "key_id", "origin")

PROVIDER_FIELDS = (
    Field("provider_id"),
    Field("provider_type", compared=True),
    Field("display_name", same_as="provider_id", compared=True),
    Field("description", default=None, compared=True),
    Field("enabled", "flag", default=True, compared=True),
    Field("tags", "list", default=EMPTY),
    Field("deletion_protection", "flag", default=False),
    Field("connection", "object", column="connection_params", compared=True),
    Field("request_settings", "object", compared=True),
)
CONNECTION_PARAMETER_FIELDS = (
    Field("name", column="param_name"),
    Field("environment", default="default"),
    Field("sensitive", "flag", column="is_sensitive", default=False, compared=True),
    Field("value", "any", column="param_value", secret=True, compared=True),
)
API_KEY_FIELDS = (
    Field("name"),
    Field("environment", default="default"),
    Field("value", "secret", column="key_value", secret=True, compared=True),
    Field("expires_at", "timestamp", default=None, compared=True),
)
MODEL_FIELDS = (
    Field("model_id"),
    Field("display_name", same_as="model_id", compared=True),
    Field("model_type", default="chat", compared=True),
    Field("context_window", "integer", default=None, compared=True),
    Field("max_tokens", "integer", default=None, compared=True),
    Field("enabled", "flag", default=True, compared=True),
    Field("capabilities", "list", default=EMPTY, compared=True),
    Field("parameters", "object", default=EMPTY, compared=True),
    Field("pricing", "object", default=None, nullable=True),
    Field("aliases", "list", default=EMPTY),
)
ROUTE_FIELDS = (
    Field("name"),
    Field("description", default=None),
    Field("strategy", default="fallback"),
    Field("targets", "records"),
    Field("fallbacks", "list", default=EMPTY),
)
#: a ``kind: Consumer``: ``limits`` holds the limits set (``rpm``, ``tpm``), ``budget`` is
#: ``{"usd", "period"}`` or None
CONSUMER_FIELDS = (
    Field("name"),
    Field("description", default=None),
    Field("models", "list"),
    Field("limits", "object", default=EMPTY),
    Field("budget", "object", default=None, nullable=True),
    Field("tags", "list", default=EMPTY),
)
DEFAULT_ROUTE_FIELDS = (Field("default_route", default=None),)
EGRESS_POLICY_FIELDS = (Field("allow", "list"),)


def names(fields: tuple[Field, ...]) -> tuple[str, ...]:
    """The names of ``fields``, in order."""
    return tuple(f.name for f in fields)


def scalars_then_json(fields: tuple[Field, ...]) -> tuple[Field, ...]:
    """``fields`` with the JSON documents last (the order the state reader selects them in)."""
    return (*(f for f in fields if not f.json), *(f for f in fields if f.json))
