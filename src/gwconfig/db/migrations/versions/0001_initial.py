"""Initial gateway schema: providers, models, keys, parameters, routes, revisions, audit, usage.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ident(length: int) -> sa.types.TypeEngine[str]:
    """Case-sensitive identifier (byte-wise collation on MySQL/MariaDB), as in the models."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def _provider_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["provider_id"],
        ["providers.provider_id"],
        name=op.f(f"fk_{table}_provider_id_providers"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create every table of schema revision 0001."""
    op.create_table(
        "config_revisions",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("content_hash", sa.String(80), nullable=False),
        sa.Column("state_hash", sa.String(80), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("git_sha", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_config_revisions")),
    )
    op.create_table(
        "providers",
        sa.Column("provider_id", _ident(64), nullable=False),
        sa.Column("provider_type", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("connection_params", sa.JSON(), nullable=False),
        sa.Column("request_settings", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("deletion_protection", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider_id", name=op.f("pk_providers")),
    )
    op.create_table(
        "routes",
        sa.Column("name", _ident(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("fallbacks", sa.JSON(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_routes")),
    )
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider_id", _ident(64), nullable=False),
        sa.Column("model_id", _ident(255), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    op.create_index(op.f("ix_usage_records_created_at"), "usage_records", ["created_at"])
    op.create_index(
        op.f("ix_usage_records_provider_id_model_id"), "usage_records", ["provider_id", "model_id"]
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", _ident(64), nullable=False),
        sa.Column("name", _ident(64), nullable=False),
        sa.Column("environment", _ident(64), nullable=False),
        sa.Column("key_value", sa.Text(), nullable=False),
        sa.Column("is_encrypted", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(96), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _provider_fk("api_keys"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint(
            "provider_id",
            "name",
            "environment",
            name=op.f("uq_api_keys_provider_id_name_environment"),
        ),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("entity_key", sa.String(512), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["revision_number"],
            ["config_revisions.number"],
            name=op.f("fk_audit_events_revision_number_config_revisions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_created_at"), "audit_events", ["created_at"])
    op.create_index(
        op.f("ix_audit_events_entity_type_entity_key"),
        "audit_events",
        ["entity_type", "entity_key"],
    )
    op.create_index(op.f("ix_audit_events_revision_number"), "audit_events", ["revision_number"])
    op.create_table(
        "connection_parameters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", _ident(64), nullable=False),
        sa.Column("param_name", _ident(128), nullable=False),
        sa.Column("environment", _ident(64), nullable=False),
        sa.Column("param_value", sa.Text(), nullable=False),
        sa.Column("is_sensitive", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(96), nullable=True),
        _provider_fk("connection_parameters"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection_parameters")),
        sa.UniqueConstraint(
            "provider_id",
            "param_name",
            "environment",
            name=op.f("uq_connection_parameters_provider_id_param_name_environment"),
        ),
    )
    op.create_table(
        "provider_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", _ident(64), nullable=False),
        sa.Column("model_id", _ident(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("context_window", sa.Integer(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("pricing", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("aliases", sa.JSON(), nullable=False),
        _provider_fk("provider_models"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_models")),
        sa.UniqueConstraint(
            "provider_id", "model_id", name=op.f("uq_provider_models_provider_id_model_id")
        ),
    )


def downgrade() -> None:
    """Drop every table of schema revision 0001 (children first)."""
    for table in (
        "provider_models",
        "connection_parameters",
        "audit_events",
        "api_keys",
        "usage_records",
        "routes",
        "providers",
        "config_revisions",
    ):
        op.drop_table(table)
