"""The reads of the REST API: one provider and its children, pages of providers, the row lock
of a locked write. Rows come back as they are stored (the server shapes and masks them).

A read of one provider runs four statements; they are built once, since building them would
cost as much as running them on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, Connection, Row, bindparam, select, text
from sqlalchemy.orm import Session

from gwconfig.db.models import ApiKey, ConnectionParameter, Provider, ProviderModel

__all__ = [
    "Reader",
    "api_key_rows",
    "connection",
    "find_provider",
    "lock_provider",
    "model_rows",
    "parameter_rows",
    "provider_row",
    "providers_after",
]

#: a session (reads in its transaction) or a Core connection
Reader = Session | Connection

_P = Provider.__table__
_M = ProviderModel.__table__
_K = ApiKey.__table__
_C = ConnectionParameter.__table__

_BY_PID: BindParameter[str] = bindparam("pid")
_SELECT = {
    "provider": select(_P).where(_P.c.provider_id == _BY_PID),
    "models": select(_M).where(_M.c.provider_id == _BY_PID),
    "keys": select(_K).where(_K.c.provider_id == _BY_PID),
    "params": select(_C).where(_C.c.provider_id == _BY_PID),
}


def connection(db: Reader) -> Connection:
    """The Core connection of ``db`` (a session's, in its transaction)."""
    return db.connection() if isinstance(db, Session) else db


def provider_row(db: Reader, pid: str) -> Row[Any] | None:
    """The ``providers`` row of ``pid`` (Core, no ORM object), or None."""
    return connection(db).execute(_SELECT["provider"], {"pid": pid}).first()


def model_rows(db: Reader, pid: str) -> list[Row[Any]]:
    """The provider's ``provider_models`` rows, ordered by model_id."""
    rows = connection(db).execute(_SELECT["models"], {"pid": pid}).all()
    return sorted(rows, key=lambda m: m.model_id)


def api_key_rows(db: Reader, pid: str) -> list[Row[Any]]:
    """The provider's ``api_keys`` rows, ordered by (name, environment)."""
    rows = connection(db).execute(_SELECT["keys"], {"pid": pid}).all()
    return sorted(rows, key=lambda k: (k.name, k.environment))


def parameter_rows(db: Reader, pid: str) -> list[Row[Any]]:
    """The provider's ``connection_parameters`` rows, ordered by (param_name, environment)."""
    rows = connection(db).execute(_SELECT["params"], {"pid": pid}).all()
    return sorted(rows, key=lambda c: (c.param_name, c.environment))


def find_provider(session: Session, pid: str) -> Provider | None:
    """Provider ``pid`` as an ORM object in ``session``, or None."""
    return session.get(Provider, pid)


def providers_after(session: Session, after: str | None, limit: int) -> Sequence[Provider]:
    """Up to ``limit`` providers ordered by id, those after ``after`` (None: from the first)."""
    stmt = select(Provider).order_by(Provider.provider_id).limit(limit)
    if after is not None:
        stmt = stmt.where(Provider.provider_id > after)
    return list(session.scalars(stmt))


def lock_provider(session: Session, provider_id: str) -> bool:
    """Lock the provider row for this transaction; False if there is no such provider.

    ``SELECT ... FOR UPDATE`` on PostgreSQL and MariaDB; on SQLite a no-op ``UPDATE``, which
    takes the database write lock.
    """
    if session.get_bind().dialect.name == "sqlite":
        result = session.execute(
            text("UPDATE providers SET provider_id = provider_id WHERE provider_id = :pid"),
            {"pid": provider_id},
        )
        return bool(getattr(result, "rowcount", 0))
    found = session.execute(
        select(Provider.provider_id).where(Provider.provider_id == provider_id).with_for_update()
    ).first()
    return found is not None
