"""Configuration generations: every write of the configuration announces itself in its transaction.

``config_generation`` (migration 0006) holds one row whose ``generation`` goes up by one in
the transaction of every write that changes what the runtime serves: ``apply`` and
``rollback`` (:func:`gwconfig.reconcile.apply.execute_plan`), ``keys rotate``
(:func:`gwconfig.reconcile.rotation.rotate_secrets`) and every ``ProviderRepository`` /
``ProviderService`` write (so the REST API's too). :func:`announce` is the one function they
call, last in their transaction (the row stays locked only for the commit, and two writers
never wait on each other's rows while holding it). On PostgreSQL it also sends
``pg_notify('gwconfig_config', '<epoch>.<generation>')``, which the server delivers to every
``LISTEN``-ing session when (and only if) the transaction commits. Readers compare the counter
with one primary-key SELECT (:func:`read_generation`); see :mod:`gwconfig.db.watch`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

#: the PostgreSQL NOTIFY channel of configuration writes
CHANNEL = "gwconfig_config"
_TABLE = "config_generation"


@dataclass(frozen=True)
class ConfigGeneration:
    """Where the configuration stands: the database's random ``epoch`` and the write counter."""

    epoch: str
    number: int

    @property
    def etag(self) -> str:
        """The strong HTTP entity tag of the configuration at this generation."""
        return f'"{self.epoch}.{self.number}"'

    @property
    def token(self) -> str:
        """``epoch.number`` (the NOTIFY payload, and the ETag without its quotes)."""
        return f"{self.epoch}.{self.number}"

    @classmethod
    def parse(cls, token: str) -> ConfigGeneration | None:
        """The generation of a :attr:`token` or :attr:`etag` (None when it is not one)."""
        epoch, dot, number = token.strip().strip('"').rpartition(".")
        if not dot or not epoch or not number.isdigit() or len(number) > 19:
            return None
        return cls(epoch, int(number))


def _dialect(conn: Any) -> str:
    bind = conn.get_bind() if hasattr(conn, "get_bind") else conn
    return str(bind.dialect.name)


def announce(conn: Any) -> ConfigGeneration:
    """Bump the configuration generation in ``conn``'s transaction (a Connection or Session).

    Call it last, after the write itself and before the commit: the new generation (and, on
    PostgreSQL, the notification) becomes visible exactly when the write does, never if it is
    rolled back.
    """
    bumped = conn.execute(text(f"UPDATE {_TABLE} SET generation = generation + 1 WHERE id = 1"))
    if bumped.rowcount == 0:  # the row was removed by hand: start again with a new epoch
        conn.execute(
            text(f"INSERT INTO {_TABLE} (id, epoch, generation) VALUES (1, :e, 1)"),
            {"e": secrets.token_hex(8)},
        )
    row = conn.execute(text(f"SELECT epoch, generation FROM {_TABLE} WHERE id = 1")).one()
    current = ConfigGeneration(str(row[0]), int(row[1]))
    if _dialect(conn) == "postgresql":
        conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": current.token})
    return current


GENERATION_SQL = f"SELECT epoch, generation FROM {_TABLE} WHERE id = 1"


def read_generation(conn: Any) -> ConfigGeneration | None:
    """The committed generation (one primary-key SELECT); None when the row is missing."""
    if hasattr(conn, "exec_driver_sql"):
        row = conn.exec_driver_sql(GENERATION_SQL).first()
    else:
        row = conn.execute(text(GENERATION_SQL)).first()
    return None if row is None else ConfigGeneration(str(row[0]), int(row[1]))
