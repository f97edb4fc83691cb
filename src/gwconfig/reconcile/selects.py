"""The state reader's ``SELECT`` statements, derived from the field specs of each kind.

One statement per table: the owning provider's id (children of a provider), the kind's scalar
columns in canonical order, the bookkeeping columns the reader needs (``routes.is_default``,
the secret columns of :data:`~gwconfig.entities.fields.SECRET_COLUMNS`), then the JSON
documents as their stored text, parsed in bulk by the reader (for ``provider_models``, the
tables' largest, all of a row's documents as one JSON array text).

No ORDER BY: sorting on the server costs more than Python's sort of rows that usually come back
in insertion order, and only Python's sort gives code-point order on every engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gwconfig.entities import (
    API_KEY,
    CONNECTION_PARAMETER,
    CONSUMER,
    MODEL,
    PROVIDER,
    ROUTE,
    EntityKind,
)
from gwconfig.entities.fields import SECRET_COLUMNS, Field
from gwconfig.entities.records import Builder, body_builder


def _json_text(dialect: str, column: str) -> str:
    """A JSON column selected as its stored text."""
    return f"CAST({column} AS TEXT)" if dialect == "postgresql" else column


def _concat(dialect: str, parts: Sequence[str]) -> str:
    if dialect in ("mysql", "mariadb"):
        return f"concat({', '.join(parts)})"
    return " || ".join(parts)


@dataclass(frozen=True)
class Select:
    """The ``SELECT`` of one kind's table and where each column lands in its rows."""

    kind: EntityKind
    #: columns selected after the kind's scalar fields
    extra: tuple[str, ...] = ()
    #: the JSON documents as one JSON array text in the last cell (else one cell each)
    array: bool = False
    #: the kind's scalar fields, then its JSON fields, in canonical order
    scalars: tuple[Field, ...] = field(init=False)
    documents: tuple[Field, ...] = field(init=False)
    #: the selected columns before the JSON documents
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        specs = self.kind.specs
        object.__setattr__(self, "scalars", tuple(f for f in specs if not f.json))
        object.__setattr__(self, "documents", tuple(f for f in specs if f.json))
        owner = ("provider_id",) if self.kind.parent else ()
        scalars = tuple(f.column for f in self.scalars)
        object.__setattr__(self, "columns", (*owner, *scalars, *self.extra))

    def index(self, column: str) -> int:
        """The position of ``column`` (not a JSON document) in the rows."""
        return self.columns.index(column)

    @property
    def first_document(self) -> int:
        """The position of the first JSON document (of the array, with :attr:`array`)."""
        return len(self.columns)

    def body(self) -> Builder:
        """``build(row, parsed documents) -> canonical body`` for this statement's rows."""
        at = {f.name: (0, self.index(f.column)) for f in self.scalars}
        at.update({f.name: (1, i) for i, f in enumerate(self.documents)})
        return body_builder(self.kind.specs, at)

    def sql(self, dialect: str) -> str:
        """The statement for ``dialect``."""
        docs = [_json_text(dialect, f.column) for f in self.documents]
        if self.array:
            parts = []
            for doc in docs:
                parts += [f"coalesce({doc}, 'null')", "','"]
            parts[-1] = "']'"
            docs = [_concat(dialect, ["'['", *parts])]
        return f"SELECT {', '.join([*self.columns, *docs])} FROM {self.kind.table}"


MODELS = Select(MODEL, array=True)
PROVIDERS = Select(PROVIDER)
ROUTES = Select(ROUTE, extra=("is_default",))
CONSUMERS = Select(CONSUMER)
KEYS = Select(API_KEY, extra=SECRET_COLUMNS)
PARAMETERS = Select(CONNECTION_PARAMETER, extra=SECRET_COLUMNS)
