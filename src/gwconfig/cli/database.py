"""``gwconfig db upgrade | current`` and ``gwconfig keys generate | rotate``: thin adapters."""

from __future__ import annotations

import click

from gwconfig import settings
from gwconfig.cli import database_url_option, lock_timeout_option
from gwconfig.words import plural

# ``gwconfig --help`` imports every command module: the database layer (SQLAlchemy, Alembic)
# and the keys (cryptography) are imported inside the commands, when they run.


@click.group("db")
def db_group() -> None:
    """Manage the gateway database schema (Alembic migrations shipped with gwconfig)."""


@db_group.command("upgrade")
@database_url_option
def upgrade_cmd(database_url: str | None) -> None:
    """Create or upgrade the gateway database schema to this gwconfig's revision."""
    from gwconfig.db.session import upgrade_url

    before, after = upgrade_url(database_url)
    where = settings.mask_url(settings.database_url(database_url))
    if before.current == after.current:
        click.echo(f"{where}: already at revision {after.current} (head)")
    else:
        click.echo(f"{where}: upgraded from {before.current or 'empty'} to {after.current} (head)")


@db_group.command("current")
@database_url_option
def current_cmd(database_url: str | None) -> None:
    """Show the database's schema revision; exit 1 unless it is this gwconfig's head."""
    from gwconfig.db.session import status_url

    status = status_url(database_url)
    click.echo(f"{settings.mask_url(settings.database_url(database_url))}: {status.describe()}")
    if not status.up_to_date:
        raise SystemExit(1)


@click.group("keys")
def keys_group() -> None:
    """Encryption keys for secrets at rest (GWCONFIG_ENCRYPTION_KEY)."""


@keys_group.command("generate")
def generate_cmd() -> None:
    """Print a new Fernet key (put it first in GWCONFIG_ENCRYPTION_KEY)."""
    from gwconfig.secrets.keys import generate_key

    click.echo(generate_key())
    click.echo(
        "Store it in your secret manager; to rotate, set GWCONFIG_ENCRYPTION_KEY=NEW,OLD and run "
        "'gwconfig keys rotate'.",
        err=True,
    )


@keys_group.command("id")
@database_url_option
def id_cmd(database_url: str | None) -> None:
    """Print the id of each encryption key, newest first (the ids error messages name)."""
    from gwconfig.secrets.keys import load_encryption_keys

    keys = load_encryption_keys(database_url)
    for i, kid in enumerate(keys.ids):
        click.echo(f"{kid}{'  (newest)' if i == 0 else ''}")


@keys_group.command("rotate")
@database_url_option
@lock_timeout_option("How long to wait for an apply (or another rotation) holding the lock.")
def rotate_cmd(database_url: str | None, lock_timeout: float) -> None:
    """Re-encrypt every stored secret under the newest key (apply lock, one transaction)."""
    from gwconfig.reconcile.rotation import rotate_url

    result = rotate_url(database_url, lock_timeout=lock_timeout)
    click.echo(
        f"re-encrypted {plural(result.secrets, 'secret')} under the newest key "
        f"({plural(result.api_keys, 'API key')}, "
        f"{plural(result.parameters, 'sensitive parameter')}); "
        f"{plural(result.revisions, 'revision snapshot')} updated"
    )
