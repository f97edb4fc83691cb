"""The database lock that serialises everything that writes configuration: apply (and rollback),
``keys rotate``, and the writes of the REST API and the seed service.

PostgreSQL: a transaction-level advisory lock; MySQL/MariaDB: a named ``GET_LOCK``; SQLite:
``BEGIN IMMEDIATE``. The lock is tried once without waiting; when it is busy one line on stderr
says so (a silent wait looks like a hang), then the wait is bounded by ``lock_timeout``.

Apply holds the lock from before it reads the state until it commits, so a write of the API
(which takes the same lock in its own transaction, :func:`hold_in_transaction`) lands either
before apply reads or after it committed: never in between, where apply would overwrite it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from gwconfig.db.session import Database
from gwconfig.db.urls import error_detail
from gwconfig.errors import DatabaseError, LockError

LOCK_NAME = "gwconfig_apply"
PG_LOCK_KEY = 0x6777_636F_6E66  # "gwconf"
#: how long a write of the REST API or the seed service waits for a running apply (seconds)
WRITE_LOCK_TIMEOUT = 10.0
#: the connection record's ``info`` key of a MySQL lock held until the connection is returned
_HELD = "gwconfig_apply_lock"
BUSY_MESSAGE = (
    "an apply (or a key rotation) is writing the configuration right now; nothing was written"
)


def _lock_error(db: Database, timeout: float) -> LockError:
    return LockError(
        f"another apply or key rotation holds the lock on {db.masked_url}; gave up after "
        f"{timeout:g} s",
        hint="wait for it to finish, or raise --lock-timeout",
    )


def _waiting(db: Database, timeout: float) -> None:
    """Say on stderr that the lock is busy, once, before waiting for it (not a silent hang)."""
    print(
        f"gwconfig: waiting for the lock on {db.masked_url}: another apply or key rotation "
        f"holds it (--lock-timeout {timeout:g} s)",
        file=sys.stderr,
        flush=True,
    )


@contextmanager
def locked(db: Database, lock_timeout: float = 60.0) -> Iterator[Connection]:
    """A connection in one transaction holding the apply lock; commits on success.

    Taken by ``apply`` (and ``rollback``) and by ``keys rotate``, so they never interleave. The
    lock is tried once without waiting; when it is busy, a line on stderr says so, then the wait
    is bounded by ``lock_timeout`` seconds.
    """
    conn = db.engine.connect()
    dialect = db.dialect
    previous_busy: int | None = None
    try:
        try:
            if dialect == "sqlite":
                previous_busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                wait_ms = int(lock_timeout * 1000)
                for waits in (False, True):
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms if waits else 0}")
                    try:
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                        break
                    except OperationalError as exc:
                        if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
                            raise
                        if waits:
                            raise _lock_error(db, lock_timeout) from None
                        _waiting(db, lock_timeout)
                # the commit may wait for readers to finish, as long as the lock could have
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
            elif dialect == "postgresql":
                deadline = time.monotonic() + lock_timeout
                if not _pg_try_lock(conn):
                    _waiting(db, lock_timeout)
                    while not _pg_try_lock(conn):
                        if time.monotonic() >= deadline:
                            raise _lock_error(db, lock_timeout)
                        time.sleep(0.05)
            else:  # MySQL / MariaDB: a named session lock, released after commit
                name = mysql_lock_name(db)
                got = conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar()
                if got != 1:
                    _waiting(db, lock_timeout)
                    got = conn.execute(
                        text("SELECT GET_LOCK(:n, :t)"),
                        {"n": name, "t": max(0, math.ceil(lock_timeout))},
                    ).scalar()
                if got != 1:
                    raise _lock_error(db, lock_timeout)
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            _release(conn, dialect, previous_busy, mysql_lock_name(db))
    except SQLAlchemyError as exc:
        detail = error_detail(getattr(exc, "orig", None) or exc, db.url)
        raise DatabaseError(
            f"writing to {db.masked_url} failed and was rolled back: {detail}",
            hint="nothing was written",
        ) from None
    finally:
        conn.close()


def _pg_try_lock(conn: Connection) -> bool:
    return bool(
        conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY}).scalar()
    )


def mysql_lock_name(db: Database) -> str:
    """GET_LOCK names are server-wide: qualify by database (at most 64 characters)."""
    return _mysql_name(db.engine.url.database)


def _mysql_name(database: str | None) -> str:
    return f"{LOCK_NAME}:{database or ''}"[:64]


def _release(conn: Connection, dialect: str, previous_busy: int | None, lock_name: str) -> None:
    """Release the MySQL lock / restore SQLite's busy timeout; on failure drop the connection.

    This runs after commit or rollback, so it must not turn a finished apply into an error:
    a connection that cannot be cleaned is invalidated (closing it frees a MySQL lock too).
    """
    try:
        if dialect in ("mysql", "mariadb"):
            conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock_name})
            conn.commit()
        elif previous_busy is not None:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous_busy)}")
            conn.commit()
    except Exception:
        conn.invalidate()


def hold_in_transaction(conn: Connection, lock_timeout: float = WRITE_LOCK_TIMEOUT) -> None:
    """Take the apply lock in ``conn``'s current transaction (a write of the API or the seed
    service), waiting at most ``lock_timeout`` seconds; :class:`LockError` when it is busy.

    Released when the transaction ends (PostgreSQL, SQLite) or, on MySQL/MariaDB, when the
    connection goes back to the pool, after its commit or rollback. Taken first, before any row
    lock: apply takes it before the rows too, so the two never wait for each other's rows.
    """
    dialect = conn.dialect.name
    wait = max(0.0, lock_timeout)
    if dialect == "sqlite":  # the database's write lock is the apply lock (BEGIN IMMEDIATE)
        busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait * 1000)}")
        try:
            conn.exec_driver_sql("UPDATE providers SET provider_id = provider_id WHERE 0 = 1")
        except OperationalError as exc:
            if "locked" not in str(exc.orig) and "busy" not in str(exc.orig):
                raise
            raise LockError(BUSY_MESSAGE, hint="retry when it has finished") from None
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy or 0)}")
    elif dialect == "postgresql":
        if _pg_try_lock(conn):
            return
        if wait > 0:  # wait in the server (visible in pg_locks), bounded by lock_timeout
            previous = conn.execute(text("SELECT current_setting('lock_timeout')")).scalar()
            conn.execute(
                text("SELECT set_config('lock_timeout', :t, true)"),
                {"t": f"{max(1, int(wait * 1000))}ms"},
            )
            try:  # a timeout aborts the transaction: the caller rolls it back
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
            except OperationalError:
                raise LockError(BUSY_MESSAGE, hint="retry when it has finished") from None
            conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})
            return
        raise LockError(BUSY_MESSAGE, hint="retry when it has finished")
    else:
        record = conn.connection.info
        if record.get(_HELD):
            return
        name = _mysql_name(conn.engine.url.database)
        if not event.contains(conn.engine.pool, "checkin", _release_on_checkin):
            event.listen(conn.engine.pool, "checkin", _release_on_checkin)
        got = conn.execute(
            text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": math.ceil(wait)}
        ).scalar()
        if got != 1:
            raise LockError(BUSY_MESSAGE, hint="retry when it has finished")
        record[_HELD] = name


def _release_on_checkin(dbapi_connection: Any, record: Any) -> None:
    """Release a MySQL apply lock taken by :func:`hold_in_transaction` (after the connection's
    commit or rollback: the pool resets it first); a connection that cannot is invalidated."""
    name = record.info.pop(_HELD, None)
    if name is None or dbapi_connection is None:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
        cursor.fetchall()
        cursor.close()
        dbapi_connection.rollback()
    except Exception:
        record.invalidate()  # closing the connection frees its lock
