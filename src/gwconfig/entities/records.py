"""The canonical bodies as frozen records, one per entity kind, built from the field specs.

Compile (manifests -> canonical), the state reader (rows -> canonical) and the seed service
(ORM rows -> canonical) name every field when they build a body::

    ModelBody(model_id="gpt-4o", display_name="GPT-4o", ..., aliases=[]).body()

Each record's attributes are its kind's :mod:`gwconfig.entities.fields` in the same order
(checked when this module is imported); :meth:`body` is the canonical dict, each value
converted as its field is stored (``flag`` -> ``bool``, ``timestamp`` -> canonical text).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from gwconfig.canonical import format_timestamp
from gwconfig.entities.fields import (
    API_KEY_FIELDS,
    CONNECTION_PARAMETER_FIELDS,
    CONSUMER_FIELDS,
    MODEL_FIELDS,
    PROVIDER_FIELDS,
    ROUTE_FIELDS,
    Field,
    names,
)

#: ``build(*values) -> canonical dict`` (see :func:`body_builder`)
Builder = Callable[..., dict[str, Any]]


def _timestamp(value: datetime | str | None) -> str | None:
    if isinstance(value, str):  # SQLite gives the stored text
        value = datetime.fromisoformat(value)
    return format_timestamp(value)


def body_builder(
    fields: Sequence[Field], at: Mapping[str, tuple[int, int]] | None = None
) -> Builder:
    """A function building the canonical dict of ``fields`` from positional values.

    Without ``at`` it takes one sequence, the values in the order of ``fields``; with it, field
    ``name`` is ``args[at[name][0]][at[name][1]]`` (the state reader passes a row and its parsed
    JSON documents). Generated once per use, like ``dataclasses`` generates ``__init__``: tens of
    thousands of models go through it, and a dict display is what keeps that fast.
    """
    cells = []
    for i, f in enumerate(fields):
        arg, index = at[f.name] if at is not None else (0, i)
        cell = f"a{arg}[{index}]"
        if f.store == "flag":
            cell = f"bool({cell})"
        elif f.store == "timestamp":
            cell = f"timestamp({cell})"
        cells.append(f"{f.name!r}: {cell}")
    count = 1 + max((a for a, _ in (at or {}).values()), default=0)
    args = ", ".join(f"a{i}" for i in range(count))
    source = f"def build({args}):\n    return {{{', '.join(cells)}}}\n"
    namespace: dict[str, Any] = {"timestamp": _timestamp}
    exec(source, namespace)  # the source is made of field names and indexes only
    return namespace["build"]  # type: ignore[no-any-return]


class ProviderBody(NamedTuple):
    """The canonical provider without its children (:data:`PROVIDER_FIELDS`)."""

    provider_id: str
    provider_type: str
    display_name: str
    description: str | None
    enabled: Any
    tags: list[str]
    deletion_protection: Any
    connection: dict[str, Any]
    request_settings: dict[str, Any]

    def body(self) -> dict[str, Any]:
        """The canonical dict."""
        return _PROVIDER(self)


class ModelBody(NamedTuple):
    """The canonical model (:data:`MODEL_FIELDS`; JSON columns parsed)."""

    model_id: str
    display_name: str
    model_type: str
    context_window: int | None
    max_tokens: int | None
    enabled: Any
    capabilities: list[str]
    parameters: dict[str, Any]
    pricing: dict[str, Any] | None
    aliases: list[str]

    def body(self) -> dict[str, Any]:
        """The canonical dict."""
        return _MODEL(self)


class ApiKeyBody(NamedTuple):
    """The canonical API key; ``value`` is a reference (compiled) or ``{"fingerprint": ...}``
    (stored)."""

    name: str
    environment: str
    value: dict[str, Any]
    expires_at: datetime | str | None

    def body(self) -> dict[str, Any]:
        """The canonical dict (``expires_at`` as canonical text)."""
        return _API_KEY(self)


class ParameterBody(NamedTuple):
    """The canonical connection parameter; a sensitive ``value`` is a reference (compiled) or
    ``{"fingerprint": ...}`` (stored)."""

    name: str
    environment: str
    sensitive: Any
    value: Any

    def body(self) -> dict[str, Any]:
        """The canonical dict."""
        return _PARAMETER(self)

    @classmethod
    def stored(
        cls, *, name: str, environment: str, sensitive: Any, value: Any, fingerprint: str | None
    ) -> ParameterBody:
        """The parameter as a table holds it: a sensitive value is its stored fingerprint."""
        shown = {"fingerprint": fingerprint} if sensitive else value
        return cls(name=name, environment=environment, sensitive=sensitive, value=shown)


class RouteBody(NamedTuple):
    """The canonical route (``routes.is_default`` is the gateway's ``default_route``)."""

    name: str
    description: str | None
    strategy: str
    targets: list[Any]
    fallbacks: list[str]

    def body(self) -> dict[str, Any]:
        """The canonical dict."""
        return _ROUTE(self)


class ConsumerBody(NamedTuple):
    """The canonical consumer (``kind: Consumer``)."""

    name: str
    description: str | None
    models: list[str]
    limits: dict[str, Any]
    budget: dict[str, Any] | None
    tags: list[str]

    def body(self) -> dict[str, Any]:
        """The canonical dict."""
        return _CONSUMER(self)


_RECORDS: tuple[tuple[type[tuple[Any, ...]], tuple[Field, ...]], ...] = (
    (ProviderBody, PROVIDER_FIELDS),
    (ModelBody, MODEL_FIELDS),
    (ApiKeyBody, API_KEY_FIELDS),
    (ParameterBody, CONNECTION_PARAMETER_FIELDS),
    (RouteBody, ROUTE_FIELDS),
    (ConsumerBody, CONSUMER_FIELDS),
)
for _record, _fields in _RECORDS:
    if getattr(_record, "_fields", None) != names(_fields):
        raise TypeError(f"{_record.__name__}'s attributes are not its kind's fields")

_PROVIDER = body_builder(PROVIDER_FIELDS)
_MODEL = body_builder(MODEL_FIELDS)
_API_KEY = body_builder(API_KEY_FIELDS)
_PARAMETER = body_builder(CONNECTION_PARAMETER_FIELDS)
_ROUTE = body_builder(ROUTE_FIELDS)
_CONSUMER = body_builder(CONSUMER_FIELDS)
