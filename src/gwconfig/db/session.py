"""Engines, sessions and the schema-revision check for the gateway database.

``open_database(url)`` picks the engine from the URL (SQLite, PostgreSQL via psycopg 3,
MySQL/MariaDB via PyMySQL), checks the Alembic revision of the schema and returns a
:class:`Database`. The embedded default (``sqlite:///.gwconfig/gateway.db``) creates and upgrades
itself; any other database must be upgraded explicitly with ``gwconfig db upgrade``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from gwconfig import settings
from gwconfig.db.urls import check_url, error_detail
from gwconfig.db.version import HEAD_REVISION, VERSION_TABLE
from gwconfig.errors import (
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailable,
    SchemaVersionError,
)

if TYPE_CHECKING:
    # migrate works on an open Database and never imports this module; it is imported
    # lazily here (Alembic is heavy and only needed to upgrade or explain a revision)
    from gwconfig.db.migrate import RevisionStatus

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _json_loads(value: Any) -> Any:
    # SQLAlchemy's SQLite JSON type expects TypeError (as json.loads raises) for numbers.
    if not isinstance(value, str | bytes | bytearray | memoryview):
        raise TypeError(f"JSON text expected, got {type(value).__name__}")
    return orjson.loads(value)


def normalise_url(url: str) -> URL:
    """Parse ``url`` and pick gwconfig's drivers (psycopg 3, PyMySQL) when none is named."""
    check_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise _invalid(url, "SQLAlchemy cannot read it") from None
    if parsed.drivername in _DRIVERS:
        parsed = parsed.set(drivername=_DRIVERS[parsed.drivername])
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ConfigurationError(
            f"unsupported database {backend!r} in {settings.mask_url(url)}",
            hint="gwconfig supports SQLite, PostgreSQL and MySQL/MariaDB",
        )
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def _invalid(url: str, problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"invalid database URL {settings.mask_url(url)}: {problem}",
        hint="check the URL and its options (docs/database.md)",
    )


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_checked_engine(parsed: URL, url: str, **kwargs: Any) -> Engine:
    """``create_engine(parsed, **kwargs)``; a missing driver, or options the dialect refuses, is
    a :class:`ConfigurationError` naming ``url`` (masked)."""
    try:
        return create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(
            f"no database driver for {settings.mask_url(url)}",
            hint="install gwconfig[postgres] (psycopg 3) or gwconfig[mysql] (PyMySQL)",
        ) from exc
    except (ArgumentError, TypeError, ValueError) as exc:
        raise _invalid(url, error_detail(exc, url)) from None


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` (SQLite gets foreign keys on; its directory is created)."""
    parsed = normalise_url(url)
    kwargs: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": _json_loads,
    }
    if parsed.get_backend_name() == "sqlite":
        if _is_sqlite_memory(parsed):
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_checked_engine(parsed, url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "do_connect", _refusing_bad_options(url))
    return engine


def _refusing_bad_options(url: str) -> Any:
    """A ``do_connect`` hook: a driver that rejects an option of the URL (PyMySQL raises
    TypeError for an unknown keyword) is a configuration error, not a crash."""

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.loaded_dbapi.connect(*cargs, **cparams)
        except (TypeError, ValueError) as exc:
            raise _invalid(url, f"the driver refused it: {error_detail(exc, url)}") from None

    return connect


def database_error(exc: SQLAlchemyError, url: str, doing: str) -> DatabaseError:
    """A :class:`DatabaseError` for ``exc`` that names the (masked) URL and never a password."""
    orig = getattr(exc, "orig", None) or exc
    message = f"{doing} {settings.mask_url(url)} failed: {error_detail(orig, url)}"
    if is_unreachable(exc):
        return DatabaseUnavailable(message)
    return DatabaseError(message)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached (refused, lost, gone), as opposed
    to refusing one statement."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@contextmanager
def translate_errors(url: str, doing: str) -> Iterator[None]:
    """Turn SQLAlchemy errors into :class:`DatabaseError` naming the masked URL."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise database_error(exc, url, doing) from None


@dataclass
class Database:
    """An open gateway database: engine, session factory, URL and dialect name."""

    url: str = field(repr=False)
    engine: Engine = field(repr=False)
    _sessions: sessionmaker[Session] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql``/``mariadb``."""
        return self.engine.dialect.name

    @property
    def masked_url(self) -> str:
        """The URL with its password masked (safe to print)."""
        return settings.mask_url(self.url)

    def session(self) -> Session:
        """A new ORM session (use as a context manager; commit explicitly)."""
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    def connect(self) -> Connection:
        """A Core connection (use as a context manager)."""
        return self.engine.connect()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(
    url: str | None = None, *, upgrade: bool | None = None, check: bool = True
) -> Database:
    """Open the gateway database at ``url`` (default from settings) and check its schema.

    ``upgrade=None`` upgrades only the embedded default; ``True`` upgrades any database (tests,
    ``gwconfig db upgrade``); ``False`` never does. ``check=False`` skips the revision check
    (``gwconfig db current`` uses it to report an out-of-date database).
    """
    resolved = settings.database_url(url)
    engine = make_engine(resolved)
    db = Database(url=resolved, engine=engine)
    if upgrade is None:
        upgrade = settings.is_embedded_default(resolved)
    try:
        if (upgrade or check) and stored_revision(db) == HEAD_REVISION:
            return db
        if upgrade:
            from gwconfig.db.migrate import upgrade_database

            # several processes may meet a fresh database at once: one creates the schema,
            # the others wait and then find it at the head revision
            with schema_lock(db):
                if stored_revision(db) != HEAD_REVISION:
                    upgrade_database(db)
        elif check:
            from gwconfig.db.migrate import check_revision

            check_revision(db)
    except SchemaVersionError:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise database_error(exc, resolved, "opening") from exc
    return db


@contextmanager
def connected(url: str | None, doing: str) -> Iterator[Connection]:
    """A connection to the gateway database at ``url`` for one short read; the database is
    disposed of on exit, and SQLAlchemy errors name the masked URL and what was being ``doing``.
    """
    db = open_database(url)
    try:
        with translate_errors(db.url, doing), db.connect() as conn:
            yield conn
    finally:
        db.dispose()


@contextmanager
def schema_lock(db: Database) -> Iterator[None]:
    """Hold an exclusive lock on creating or upgrading ``db``'s schema (SQLite files only).

    A SQLite file gets ``<file>.lock`` beside it, locked with ``flock`` (released when the
    process ends, even if killed); SQLite runs DDL outside the migration's transaction, so two
    processes creating the schema at once would each create half. Server databases are
    upgraded explicitly (``gwconfig db upgrade``) and are not locked here.
    """
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or _is_sqlite_memory(url):
        yield
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): creation is not serialised there
        yield
        return
    path = Path(url.database or "").expanduser()
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def stored_revision(db: Database) -> str | None:
    """The revision in gwconfig's version table, by a plain SELECT (None: unreadable or empty).

    The fast path of :func:`open_database`; anything unexpected (no table yet, several rows)
    returns None so that the caller falls back to Alembic's own check.
    """
    try:
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").all()
    except SQLAlchemyError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def get_db_session(url: str | None = None) -> Session:
    """A session on the gateway database (the seed's ``get_db_session``); close it when done."""
    return open_database(url).session()


def upgrade_url(url: str | None = None) -> tuple[RevisionStatus, RevisionStatus]:
    """``gwconfig db upgrade``: upgrade the database at ``url``; return (before, after)."""
    from gwconfig.db.migrate import revision_status, upgrade_database

    db = open_database(url, upgrade=False, check=False)
    try:
        with translate_errors(db.url, "upgrading"), schema_lock(db):
            before = revision_status(db)
            after = upgrade_database(db)
    finally:
        db.dispose()
    return before, after


def status_url(url: str | None = None) -> RevisionStatus:
    """``gwconfig db current``: where the database at ``url`` stands (never upgrades)."""
    from gwconfig.db.migrate import revision_status

    db = open_database(url, upgrade=False, check=False)
    try:
        with translate_errors(db.url, "reading the schema revision of"):
            return revision_status(db)
    finally:
        db.dispose()
