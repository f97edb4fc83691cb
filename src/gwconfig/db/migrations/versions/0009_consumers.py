"""Consumers as code: the ``consumers`` table, tokens for a consumer, spend in the ledger.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

``consumers`` holds the ``kind: Consumer`` manifests apply writes (name, description, the model
patterns, limits, budget, tags). ``api_tokens.consumer`` names the consumer a token inherits its
models and limits from (NULL: the token's own, as before). ``usage_records.consumer`` and
``usage_records.cost_usd`` make the usage records the ledger of spend: the consumer of the
request's token and what the request cost by the model's manifest pricing (NULL when the model
has none); rows written before this revision have NULL in both. Downgrading drops them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _ident(length: int) -> sa.types.TypeEngine[str]:
    """Case-sensitive identifier (byte-wise collation on MySQL/MariaDB), as in the models."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:
    """Create ``consumers``; add the nullable consumer and cost columns."""
    op.create_table(
        "consumers",
        sa.Column("name", _ident(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("budget", sa.JSON(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_consumers")),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("consumer", sa.String(64), nullable=True))
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("consumer", sa.String(64), nullable=True))
        batch.add_column(sa.Column("cost_usd", sa.Numeric(18, 9), nullable=True))
    op.create_index(
        op.f("ix_usage_records_consumer_created_at"),
        "usage_records",
        ["consumer", "created_at"],
    )


def downgrade() -> None:
    """Drop the consumer and cost columns and ``consumers``."""
    op.drop_index(op.f("ix_usage_records_consumer_created_at"), table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("cost_usd")
        batch.drop_column("consumer")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("consumer")
    op.drop_table("consumers")
