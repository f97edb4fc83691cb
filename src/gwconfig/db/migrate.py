"""Alembic, driven programmatically: the migrations ship inside the package (``db/migrations``).

This module works on an open :class:`~gwconfig.db.session.Database` and never opens one itself:
``session`` calls it to upgrade or check a database, so the commands that open a database and
then upgrade it (``upgrade_url``, ``status_url``) live in ``session``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gwconfig.db.version import VERSION_TABLE
from gwconfig.errors import SchemaVersionError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from gwconfig.db.session import Database

#: The Alembic environment and revisions shipped inside the package.
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
UPGRADE_HINT = "run 'gwconfig db upgrade' (with the same --database-url)"


def alembic_config() -> Config:
    """An Alembic ``Config`` whose script location is the package's migrations directory."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision this gwconfig knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None when it has no gwconfig schema yet."""
    ctx = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    heads = ctx.get_current_heads()
    return heads[0] if heads else None


@dataclass(frozen=True)
class RevisionStatus:
    """Where a database stands relative to this gwconfig's migrations."""

    current: str | None
    head: str
    known: bool

    @property
    def up_to_date(self) -> bool:
        """True when the database is at this gwconfig's head revision."""
        return self.current == self.head

    def describe(self) -> str:
        """A one-line, human description."""
        if self.current is None:
            return f"no gwconfig schema (head is {self.head}); {UPGRADE_HINT}"
        if not self.known:
            return (
                f"{self.current} is newer than this gwconfig (head {self.head}); "
                "upgrade gwconfig before using this database"
            )
        if self.up_to_date:
            return f"{self.current} (head)"
        return f"{self.current} (head is {self.head}); {UPGRADE_HINT}"


def revision_status(db: Database) -> RevisionStatus:
    """Compare the database's revision with the migrations shipped in this package."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None
    with db.engine.connect() as conn:
        current = current_revision(conn)
    known = True
    if current is not None:
        known = current in {rev.revision for rev in script.walk_revisions()}
    return RevisionStatus(current=current, head=head, known=known)


def _refuse_newer(status: RevisionStatus, db: Database) -> None:
    if status.current is not None and not status.known:
        raise SchemaVersionError(
            f"the database {db.masked_url} is at schema revision {status.current}, made by a "
            f"newer gwconfig (this one knows up to {status.head}); refusing to use it",
            hint="upgrade gwconfig (pip install -U gwconfig)",
        )


def check_revision(db: Database) -> RevisionStatus:
    """Raise :class:`SchemaVersionError` unless the database is at this gwconfig's head."""
    status = revision_status(db)
    _refuse_newer(status, db)
    if status.current is None:
        raise SchemaVersionError(
            f"the database {db.masked_url} has no gwconfig schema", hint=UPGRADE_HINT
        )
    if not status.up_to_date:
        raise SchemaVersionError(
            f"the database {db.masked_url} is at schema revision {status.current}, older than "
            f"this gwconfig's {status.head}",
            hint=UPGRADE_HINT,
        )
    return status


def upgrade_database(db: Database, revision: str = "head") -> RevisionStatus:
    """Apply the shipped migrations up to ``revision``; refuse a database from a newer gwconfig."""
    status = revision_status(db)
    _refuse_newer(status, db)
    if status.current == status.head and revision == "head":
        return status
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return revision_status(db)
