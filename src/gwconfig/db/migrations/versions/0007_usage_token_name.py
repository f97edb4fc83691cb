"""Usage records name the API token that sent the request.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

``usage_records.token_name`` is the name of the ``gwconfig serve`` token (scope ``invoke``) a
request came with; NULL for requests made in-process (``LLMGatewayClient``, ``generate``) and for
rows written before this revision. Downgrading drops the column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable ``token_name`` column."""
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("token_name", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop ``token_name``."""
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("token_name")
