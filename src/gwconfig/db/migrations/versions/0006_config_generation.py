"""A configuration generation counter, bumped by every write of the configuration.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

``config_generation`` holds one row (``id`` 1): ``generation`` goes up by one in the
transaction of every write that changes what the runtime serves (``apply``, ``rollback``,
``keys rotate``, ``ProviderService`` and the REST API), see :mod:`gwconfig.db.notify`. Servers
and database-sourced runtimes compare it (one primary-key SELECT) instead of reading the whole
configuration; PostgreSQL also sends ``NOTIFY gwconfig_config`` at commit. ``epoch`` is a random
value chosen when the row is created, so a generation number of a re-created database never
matches one handed out before. Downgrading drops the table.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``config_generation`` with its one row (generation 0, a random epoch)."""
    table = op.create_table(
        "config_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_generation")),
    )
    op.bulk_insert(table, [{"id": 1, "epoch": secrets.token_hex(8), "generation": 0}])


def downgrade() -> None:
    """Drop ``config_generation`` (older gwconfig does not announce writes)."""
    op.drop_table("config_generation")
