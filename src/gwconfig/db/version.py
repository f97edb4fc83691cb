"""The schema revision gwconfig expects, and where Alembic records it (no SQLAlchemy import)."""

from __future__ import annotations

#: Alembic's version table; named for gwconfig so a shared database can host other apps' Alembic.
VERSION_TABLE = "gwconfig_alembic_version"
#: The newest migration shipped in ``migrations/versions`` (a test keeps it equal to Alembic's
#: head). Opening a database at this revision is one plain SELECT; Alembic is imported only
#: when the revision differs (to upgrade, or to explain why not).
HEAD_REVISION = "0009"
