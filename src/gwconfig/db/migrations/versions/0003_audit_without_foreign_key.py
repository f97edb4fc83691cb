"""Audit events keep their revision number as a plain (indexed) column, without a foreign key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

An audit log records what happened; checking every row against ``config_revisions`` cost
PostgreSQL ~0.25 s per 25,000 rows of a large apply (a lock on the same revision row, row after
row) and protected nothing gwconfig does: revisions are never deleted. Downgrading restores the
constraint.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_NAME = "fk_audit_events_revision_number_config_revisions"


def upgrade() -> None:
    """Drop the foreign key of ``audit_events.revision_number``."""
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint(_NAME, type_="foreignkey")


def downgrade() -> None:
    """Restore it (``ON DELETE SET NULL``)."""
    with op.batch_alter_table("audit_events") as batch:
        batch.create_foreign_key(
            _NAME, "config_revisions", ["revision_number"], ["number"], ondelete="SET NULL"
        )
