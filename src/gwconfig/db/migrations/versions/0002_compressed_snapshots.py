"""Revision snapshots stored zlib-compressed (binary) instead of as JSON.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Existing snapshots are converted in place, a batch of revisions at a time; downgrading turns
them back into JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from gwconfig.db.snapshots import compress_snapshot, decompress_snapshot

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BINARY = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
_BATCH = 20


def _convert(old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any],
             change: Callable[[Any], Any]) -> None:  # fmt: skip
    """Add ``snapshot_new`` of type ``new``, fill it from ``snapshot``, swap the columns."""
    with op.batch_alter_table("config_revisions") as batch:
        batch.add_column(sa.Column("snapshot_new", new, nullable=True))
    conn = op.get_bind()
    table = sa.table(
        "config_revisions",
        sa.column("number", sa.Integer()),
        sa.column("snapshot", old),
        sa.column("snapshot_new", new),
    )
    numbers = [n for (n,) in conn.execute(sa.select(table.c.number).order_by(table.c.number))]
    for start in range(0, len(numbers), _BATCH):
        batch_numbers = numbers[start : start + _BATCH]
        rows = conn.execute(
            sa.select(table.c.number, table.c.snapshot).where(table.c.number.in_(batch_numbers))
        ).all()
        for number, value in rows:
            conn.execute(
                table.update().where(table.c.number == number).values(snapshot_new=change(value))
            )
    with op.batch_alter_table("config_revisions") as batch:
        batch.drop_column("snapshot")
    with op.batch_alter_table("config_revisions") as batch:
        batch.alter_column(
            "snapshot_new", new_column_name="snapshot", existing_type=new, nullable=False
        )


def _parsed(value: Any) -> Any:
    """A stored JSON snapshot (text, or already parsed by the driver) as Python data."""
    return orjson.loads(value) if isinstance(value, str | bytes | bytearray) else value


def upgrade() -> None:
    """JSON snapshots -> compressed binary."""
    _convert(sa.Text(), _BINARY, lambda value: compress_snapshot(_parsed(value)))


def downgrade() -> None:
    """Compressed binary snapshots -> JSON."""
    _convert(_BINARY, sa.JSON(), decompress_snapshot)
