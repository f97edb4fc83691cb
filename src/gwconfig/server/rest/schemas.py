"""Request and response shapes of the REST API (``/api/v1``), for validation and OpenAPI.

Request bodies are the migration guide's seed dicts (what :class:`~gwconfig.seed.service.
ProviderService` accepts), validated strictly here first and then by the manifest schema in the
service. Response models document what the handlers return; the handlers serialise the service's
dicts themselves (no second validation on the way out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from gwconfig.db import columns as col
from gwconfig.reconcile.revisions import RevisionInfo
from gwconfig.runtime.config.table import ModelConfig

#: Upper bounds of list fields of a request body (the body size limit bounds the rest).
MAX_ITEMS = 10_000
MAX_SECRET = 8_192


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ApiKeyIn(_In):
    """An API key to store (write-only: the value is never returned)."""

    key_value: str = Field(min_length=1, max_length=MAX_SECRET, description="The secret key.")
    is_encrypted: bool | None = Field(default=None, description="Seed flag; always encrypted.")
    name: str | None = Field(default=None, max_length=col.IDENT, description="Default: default.")
    environment: str | None = Field(default=None, max_length=col.IDENT)
    expires_at: str | None = Field(default=None, description="YYYY-MM-DDTHH:MM:SSZ.")


class ParameterIn(_In):
    """A connection parameter; a sensitive value is stored encrypted and returned masked."""

    param_name: str = Field(min_length=1, max_length=col.IDENT)
    param_value: Any = Field(description="Any JSON value; a sensitive one must be a string.")
    is_sensitive: bool = False
    environment: str | None = Field(default=None, max_length=col.IDENT)


class ModelFields(_In):
    """The fields of a model (seed shape); None means the default."""

    display_name: str | None = None
    model_type: str | None = None
    context_window: int | None = None
    max_tokens: int | None = None
    enabled: bool | None = None
    capabilities: list[str] | dict[str, bool] | None = None
    parameters: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None
    aliases: list[str] | None = Field(default=None, max_length=256)


class ModelIn(ModelFields):
    """A model to create."""

    model_id: str = Field(min_length=1, max_length=col.MODEL_ID)
    provider_id: str | None = Field(default=None, description="If given, the provider's id.")


class ProviderFields(_In):
    """The provider-level fields of the seed dict (a PUT changes only those given)."""

    provider_id: str | None = Field(default=None, max_length=col.IDENT)
    provider_type: str | None = Field(default=None, max_length=col.PROVIDER_TYPE)
    display_name: str | None = None
    description: str | None = None
    enabled: bool | None = None
    connection_params: dict[str, Any] | None = None
    request_settings: dict[str, Any] | None = None
    tags: list[str] | None = Field(default=None, max_length=256)
    deletion_protection: bool | None = None


class ProviderIn(ProviderFields):
    """A provider to create, with nested models, API key(s) and connection parameters."""

    provider_id: str = Field(min_length=1, max_length=col.IDENT)
    provider_type: str = Field(min_length=1, max_length=col.PROVIDER_TYPE)
    models: list[ModelIn] | None = Field(default=None, max_length=MAX_ITEMS)
    api_key: ApiKeyIn | None = None
    api_keys: list[ApiKeyIn] | None = Field(default=None, max_length=MAX_ITEMS)
    connection_parameters: list[ParameterIn] | None = Field(default=None, max_length=MAX_ITEMS)


# -- responses ---------------------------------------------------------------------------------


class Problem(_Out):
    """An RFC 9457 problem (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class ProviderOut(_Out):
    """A provider without its children (list items)."""

    provider_id: str
    provider_type: str
    display_name: str
    description: str | None
    enabled: bool
    tags: list[str]
    deletion_protection: bool
    connection_params: dict[str, Any]
    request_settings: dict[str, Any]
    created_at: str | None
    updated_at: str | None


def _fields_of(source: type, **first: Any) -> dict[str, Any]:
    """Required fields: ``first`` (name: type), then those of the dataclass ``source`` (its
    tuples as lists and mappings as dicts: the JSON a handler returns)."""
    hints = get_type_hints(source)
    out = {name: (tp, ...) for name, tp in first.items()}
    out.update({f.name: (_as_json(hints[f.name]), ...) for f in fields(source)})
    return out


def _as_json(tp: Any) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, UnionType):
        return Union[tuple(_as_json(a) for a in args)]  # noqa: UP007
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return list[args[0]]  # type: ignore[valid-type]
    if origin is Mapping:
        return dict[args[0], args[1]]  # type: ignore[valid-type]
    return tp


def _out(name: str, doc: str, fields_: dict[str, Any]) -> Any:
    """A response model ``name`` with ``fields_`` (see :func:`_fields_of`)."""
    return create_model(name, __base__=_Out, __doc__=doc, __module__=__name__, **fields_)


# a model answers the runtime's fields of a model, a revision those of ``gwconfig history``
if TYPE_CHECKING:
    ModelOut = _Out
    RevisionOut = _Out
else:
    ModelOut = _out("ModelOut", "A model.", _fields_of(ModelConfig, id=int, provider_id=str))
    RevisionOut = _out(
        "RevisionOut",
        "One configuration revision (a row of ``gwconfig history``).",
        _fields_of(RevisionInfo),
    )


class ApiKeyOut(_Out):
    """An API key: never its value (``key_value`` is a mask), a short fingerprint."""

    id: int
    provider_id: str
    name: str
    environment: str
    key_value: str
    is_encrypted: bool
    fingerprint: str | None
    expires_at: str | None
    created_at: str | None


class ParameterOut(_Out):
    """A connection parameter; a sensitive value is masked."""

    id: int
    provider_id: str
    param_name: str
    param_value: Any
    is_sensitive: bool
    environment: str
    fingerprint: str | None


class ProviderDetail(ProviderOut):
    """A provider with its models, API keys (masked) and connection parameters."""

    models: list[ModelOut]
    api_keys: list[ApiKeyOut]
    connection_parameters: list[ParameterOut]


class ProviderPage(_Out):
    """One page of providers; ``next`` is the URL of the next page or null."""

    items: list[ProviderOut]
    next: str | None


class Deleted(_Out):
    """What a DELETE answers: ``deleted`` and the identity of what was deleted."""

    deleted: bool


class RevisionPage(_Out):
    """One page of revisions, newest first."""

    items: list[RevisionOut]
    next: str | None


class RevisionDetail(RevisionOut):
    """``gwconfig show-revision``: the revision, its configuration (secret references only)
    and the changes it made."""

    config: dict[str, Any] | None
    changes: list[dict[str, Any]]


class ConsumerOut(_Out):
    """A ``kind: Consumer`` with its spend in the current window (``gwconfig consumers``)."""

    name: str
    description: str | None
    models: list[str] = Field(description="Route names, aliases or provider/model patterns.")
    limits: dict[str, int] = Field(description="rpm and tpm, those set.")
    budget: dict[str, Any] | None = Field(description="usd and period (day, week, month).")
    tags: list[str]
    window: dict[str, str] = Field(description="The UTC window spend counts over: period, start.")
    spend_usd: float = Field(description="Spend in the window, by the models' pricing.")
    remaining_usd: float | None = Field(description="What is left of the budget (null: none).")


class ConsumerPage(_Out):
    """One page of consumers, by name."""

    items: list[ConsumerOut]
    next: str | None
