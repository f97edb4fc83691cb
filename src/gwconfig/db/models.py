"""The gateway database schema: SQLAlchemy 2.0 typed ORM models (seed names kept).

Identities follow ARCHITECTURE.md: ``provider_id``; ``(provider_id, model_id)`` for models;
``(provider_id, name, environment)`` for API keys; ``(provider_id, param_name, environment)`` for
connection parameters. Identity strings are compared byte-wise on MySQL/MariaDB (``utf8mb4_bin``),
as they are on SQLite and PostgreSQL, so ``GPT-4o`` and ``gpt-4o`` are different models everywhere.
String lengths keep every index within MySQL's 3072-byte limit under utf8mb4.

Secrets (``ApiKey.key_value``, sensitive ``ConnectionParameter.param_value``) hold Fernet
ciphertext only, with a keyed fingerprint beside them (see :mod:`gwconfig.secrets.keys`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column, relationship

from gwconfig.db import columns as col
from gwconfig.db.snapshots import compress_snapshot, decompress_snapshot

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always returns aware UTC datetimes.

    SQLite and MySQL drop the zone, so values are written as naive UTC there and read back
    with ``tzinfo=UTC``; PostgreSQL stores ``timestamptz`` natively.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name != "postgresql":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class CompressedJSON(TypeDecorator[Any]):
    """A JSON document stored zlib-compressed in a binary column (revision snapshots).

    See :mod:`gwconfig.db.snapshots`; ``LONGBLOB`` on MySQL/MariaDB, whose ``BLOB`` holds 64 KB.
    """

    impl = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None or isinstance(value, bytes):  # bytes: already in stored form
            return value
        return compress_snapshot(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else decompress_snapshot(value)


def ident_type(length: int) -> String:
    """A case-sensitive identifier column type (byte-wise collation on MySQL/MariaDB)."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


class JSONText(TypeDecorator[Any]):
    """Any JSON value (including bare scalars) stored as TEXT on every engine.

    Used where a value may be a bare number: SQLite gives a column declared ``JSON`` numeric
    affinity and would turn the text ``1.0`` into the integer ``1``.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str:
        return orjson.dumps(value).decode()

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else orjson.loads(value)


# Nullable JSON documents are SQL NULL when absent (not the JSON literal 'null').
NullableJSON = JSON(none_as_null=True)


def _owner_column() -> MappedColumn[Any]:
    """``provider_id`` of a provider's model, API key or parameter (deleted with the provider)."""
    return mapped_column(
        ident_type(col.IDENT),
        ForeignKey("providers.provider_id", ondelete="CASCADE"),
        nullable=False,
    )


def _environment_column() -> MappedColumn[Any]:
    """``environment`` of an API key or connection parameter (``default`` when not given)."""
    return mapped_column(ident_type(col.IDENT), nullable=False, default="default")


class Base(DeclarativeBase):
    """Declarative base with a naming convention so every engine gets the same constraint names."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Provider(Base):
    """An LLM provider (seed ``Provider``); ``connection_params`` is the canonical connection."""

    __tablename__ = "providers"

    provider_id: Mapped[str] = mapped_column(ident_type(col.IDENT), primary_key=True)
    provider_type: Mapped[str] = mapped_column(String(col.PROVIDER_TYPE), nullable=False)
    display_name: Mapped[str] = mapped_column(String(col.DISPLAY_NAME), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    connection_params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    request_settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    deletion_protection: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )
    #: the origin apply or an ``admin`` token last bound the provider's secrets to: where a
    #: secret a ``write`` token stores is bound (NULL: the current origin; see
    #: :mod:`gwconfig.seed.origins`)
    key_origin: Mapped[str | None] = mapped_column(String(col.ORIGIN), nullable=True)

    models: Mapped[list[ProviderModel]] = relationship(
        back_populates="provider", cascade="all, delete-orphan", passive_deletes=True
    )
    api_keys: Mapped[list[ApiKey]] = relationship(
        back_populates="provider", cascade="all, delete-orphan", passive_deletes=True
    )
    connection_parameters: Mapped[list[ConnectionParameter]] = relationship(
        back_populates="provider", cascade="all, delete-orphan", passive_deletes=True
    )


class ProviderModel(Base):
    """A model served by a provider (seed ``ProviderModel``)."""

    __tablename__ = "provider_models"
    __table_args__ = (UniqueConstraint("provider_id", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = _owner_column()
    model_id: Mapped[str] = mapped_column(ident_type(col.MODEL_ID), nullable=False)
    display_name: Mapped[str] = mapped_column(String(col.DISPLAY_NAME), nullable=False)
    model_type: Mapped[str] = mapped_column(String(col.MODEL_TYPE), nullable=False, default="chat")
    context_window: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    capabilities: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    pricing: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    aliases: Mapped[list[str]] = mapped_column(JSON, nullable=False)

    provider: Mapped[Provider] = relationship(back_populates="models")


class ApiKey(Base):
    """An API key (seed ``ApiKey``); ``key_value`` is Fernet ciphertext, never plaintext."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("provider_id", "name", "environment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = _owner_column()
    name: Mapped[str] = mapped_column(ident_type(col.IDENT), nullable=False, default="default")
    environment: Mapped[str] = _environment_column()
    key_value: Mapped[str] = mapped_column(Text, nullable=False)
    is_encrypted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    fingerprint: Mapped[str] = mapped_column(String(col.FINGERPRINT), nullable=False)
    #: id of the Fernet key ``key_value`` is under (:func:`gwconfig.secrets.keys.key_id`); NULL for
    #: rows stored before revision 0004 until an apply or ``keys rotate`` records it
    key_id: Mapped[str | None] = mapped_column(String(col.KEY_ID), nullable=True)
    #: the origin (``scheme://host:port``) the key may be sent to (:mod:`gwconfig.secrets.origin`);
    #: NULL for rows stored before revision 0008: the provider's current origin
    origin: Mapped[str | None] = mapped_column(String(col.ORIGIN), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    provider: Mapped[Provider] = relationship(back_populates="api_keys")


class ConnectionParameter(Base):
    """A named connection parameter (seed ``ConnectionParameter``); encrypted when sensitive.

    ``param_value`` is JSON so plain values keep their type (str, int, float, bool); for a
    sensitive parameter it is the Fernet ciphertext string and ``fingerprint`` is set.
    """

    __tablename__ = "connection_parameters"
    __table_args__ = (UniqueConstraint("provider_id", "param_name", "environment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = _owner_column()
    param_name: Mapped[str] = mapped_column(ident_type(col.PARAM_NAME), nullable=False)
    environment: Mapped[str] = _environment_column()
    param_value: Mapped[Any] = mapped_column(JSONText, nullable=False)
    is_sensitive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    fingerprint: Mapped[str | None] = mapped_column(String(col.FINGERPRINT), nullable=True)
    #: id of the key a sensitive value is under (NULL for plain values; see ``ApiKey.key_id``)
    key_id: Mapped[str | None] = mapped_column(String(col.KEY_ID), nullable=True)
    #: the origin a sensitive value may be sent to (NULL for plain values; see ``ApiKey.origin``)
    origin: Mapped[str | None] = mapped_column(String(col.ORIGIN), nullable=True)

    provider: Mapped[Provider] = relationship(back_populates="connection_parameters")


class Route(Base):
    """A named gateway route with ordered targets and fallbacks."""

    __tablename__ = "routes"

    name: Mapped[str] = mapped_column(ident_type(col.ROUTE_NAME), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    strategy: Mapped[str] = mapped_column(
        String(col.ROUTE_STRATEGY), nullable=False, default="fallback"
    )
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    fallbacks: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Consumer(Base):
    """A ``kind: Consumer``: the models it may call, its limits and its budget (0009)."""

    __tablename__ = "consumers"

    name: Mapped[str] = mapped_column(ident_type(col.IDENT), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    models: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    budget: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False)


class ConfigRevision(Base):
    """One applied configuration: content hash, compiled snapshot (no secrets), who, when."""

    __tablename__ = "config_revisions"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    content_hash: Mapped[str] = mapped_column(String(col.HASH), nullable=False)
    state_hash: Mapped[str] = mapped_column(String(col.HASH), nullable=False)
    snapshot: Mapped[dict[str, Any]] = mapped_column(CompressedJSON, nullable=False)
    actor: Mapped[str] = mapped_column(String(col.ACTOR), nullable=False)
    git_sha: Mapped[str | None] = mapped_column(String(col.GIT_SHA), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class AuditEvent(Base):
    """One write to the gateway tables: who, what, when, before/after with secrets masked."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index(None, "entity_type", "entity_key"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: the revision that wrote it (None for service writes); no foreign key: see migration 0003
    revision_number: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(col.ACTOR), nullable=False)
    entity_type: Mapped[str] = mapped_column(String(col.ENTITY_TYPE), nullable=False)
    entity_key: Mapped[str] = mapped_column(String(col.ENTITY_KEY), nullable=False)
    action: Mapped[str] = mapped_column(String(col.ACTION), nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON, nullable=True)


class UsageRecord(Base):
    """One routed request as seen by the runtime (tokens, latency, outcome)."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "provider_id", "model_id"),
        Index(None, "consumer", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    provider_id: Mapped[str] = mapped_column(ident_type(col.IDENT), nullable=False)
    model_id: Mapped[str] = mapped_column(ident_type(col.MODEL_ID), nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(col.SESSION_ID), nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    outcome: Mapped[str] = mapped_column(String(col.OUTCOME), nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the ``gwconfig serve`` API token the request came with (None: in-process callers)
    token_name: Mapped[str | None] = mapped_column(String(col.IDENT), nullable=True)
    #: the consumer of that token (None: a token without one, or in-process callers)
    consumer: Mapped[str | None] = mapped_column(String(col.IDENT), nullable=True)
    #: what the request cost in USD by the model's manifest pricing (None: not priced)
    cost_usd: Mapped[float | None] = mapped_column(Numeric(18, 9, asdecimal=False), nullable=True)


class ApiToken(Base):
    """A bearer token of ``gwconfig serve``: only its SHA-256 is stored, never the token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(ident_type(col.IDENT), nullable=False, unique=True)
    scope: Mapped[str] = mapped_column(String(col.TOKEN_SCOPE), nullable=False)
    #: hex SHA-256 of the token text (a token is 256 random bits: no salt or slow hash needed)
    token_hash: Mapped[str] = mapped_column(String(col.TOKEN_HASH), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: allowed model/route patterns (JSON list as text); NULL allows every model
    models: Mapped[str | None] = mapped_column(Text, nullable=True)
    rate_limit_rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the ``kind: Consumer`` whose models and limits the token inherits (NULL: its own)
    consumer: Mapped[str | None] = mapped_column(String(col.IDENT), nullable=True)


class ConfigGeneration(Base):
    """One row (``id`` 1): the generation counter every configuration write bumps (0006)."""

    __tablename__ = "config_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: random, chosen when the row is created: tells a re-created database's numbers apart
    epoch: Mapped[str] = mapped_column(String(32), nullable=False)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)


class GatewaySetting(Base):
    """A setting of the ``Gateway`` manifest that is not a route (``egress``), written by apply."""

    __tablename__ = "gateway_settings"

    name: Mapped[str] = mapped_column(String(col.IDENT), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=False)


GATEWAY_TABLES = (
    "providers", "provider_models", "api_keys", "connection_parameters", "routes", "consumers",
)  # fmt: skip
