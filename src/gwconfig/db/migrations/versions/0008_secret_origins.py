"""Every stored secret records the origin it is bound to; the Gateway's egress policy is kept.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

``api_keys.origin`` and ``connection_parameters.origin`` hold the ``scheme://host:port`` a secret
may be sent to (:mod:`gwconfig.secrets.origin`): the origin its provider had when ``apply`` or an
``admin`` token wrote it. A migration cannot tell which origin a secret was written for: existing
rows get NULL, meaning "bound to the provider's current origin"; the next apply records it, and a
change of ``api_base`` through the REST API or the seed service first binds such rows to the
origin the provider had. ``providers.key_origin`` is the origin apply or an ``admin`` token last
bound the provider's secrets to: what a ``write`` token's new secret is bound to (NULL: the
current origin). ``gateway_settings`` holds settings of the ``Gateway`` manifest that are
not routes, one JSON value per name (``egress``: the egress policy), written by apply.
Downgrading drops them (on SQLite it needs SQLite 3.35 or newer, for DROP COLUMN).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("api_keys", "connection_parameters")


def upgrade() -> None:
    """Add the nullable ``origin`` columns and the ``gateway_settings`` table."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("origin", sa.String(300), nullable=True))
    # not in batch mode: SQLite would copy ``providers`` and drop the old table, and the drop
    # would cascade to every child row; ADD/DROP COLUMN alter it in place on every engine
    op.add_column("providers", sa.Column("key_origin", sa.String(300), nullable=True))
    op.create_table(
        "gateway_settings",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_gateway_settings")),
    )


def downgrade() -> None:
    """Drop ``gateway_settings`` and the ``origin`` columns."""
    op.drop_table("gateway_settings")
    op.drop_column("providers", "key_origin")
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("origin")
