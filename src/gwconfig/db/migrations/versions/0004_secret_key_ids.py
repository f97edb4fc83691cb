"""Every stored secret records the id of the encryption key it is under.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

``api_keys.key_id`` and ``connection_parameters.key_id`` hold :func:`gwconfig.secrets.keys.key_id`
of
the Fernet key a ciphertext is under (never the key), so gwconfig refuses a key set that cannot
open the stored secrets before planning or writing anything. A migration has no key: existing
rows get NULL, meaning "not recorded yet". Until then the key of such a row is found by trying
the given keys on it, and the first apply that writes (or ``keys rotate``) records it.
Downgrading drops the columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = ("api_keys", "connection_parameters")


def upgrade() -> None:
    """Add the nullable ``key_id`` column (existing rows: NULL, learned later)."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop ``key_id`` (older gwconfig ignores which key a secret is under)."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("key_id")
