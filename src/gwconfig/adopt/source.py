"""Reading the back-office database: read only, one ``SELECT`` per table.

The connection is opened read only where the engine offers it: SQLite as a ``mode=ro`` URI with
``PRAGMA query_only``, PostgreSQL with ``SET TRANSACTION READ ONLY``, MySQL/MariaDB with
``START TRANSACTION READ ONLY``. The transaction is rolled back at the end: ``import`` and
``verify`` never change a row of the back-office (the guide's rollback plan depends on it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gwconfig import settings
from gwconfig.adopt.mapping import TABLES, Mapping
from gwconfig.db.urls import error_detail
from gwconfig.errors import DatabaseError

#: logical table -> rows, each a dict logical column -> value (absent columns: None)
Tables = dict[str, list[dict[str, Any]]]
#: the most rows read from one back-office table
MAX_ROWS = 1_000_000
CONNECT_TIMEOUT_SECONDS = 10


def _engine(url: str) -> Any:
    from sqlalchemy import event

    from gwconfig.db.session import create_checked_engine, normalise_url

    parsed = normalise_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not Path(path).is_file():
            raise DatabaseError(
                f"reading the back-office {settings.mask_url(url)} failed: no such database file"
            )
        # read only at the file level: the driver cannot write, whatever is executed
        parsed = parsed.set(
            database=f"file:{quote(str(Path(path).resolve()))}?mode=ro", query={"uri": "true"}
        )
    else:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    engine = create_checked_engine(parsed, url, **kwargs)
    if backend == "sqlite":

        def query_only(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only = ON")
            cursor.close()

        event.listen(engine, "connect", query_only)
    return engine


@contextmanager
def read_only(url: str) -> Iterator[Any]:
    """A SQLAlchemy connection to the back-office in a read-only transaction (rolled back)."""
    from sqlalchemy.exc import SQLAlchemyError

    settings.database_url(url)  # a malformed URL: a ConfigurationError that quotes no secret
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            dialect = conn.dialect.name
            if dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif dialect in ("mysql", "mariadb"):
                conn.exec_driver_sql("START TRANSACTION READ ONLY")
            try:
                yield conn
            finally:
                conn.rollback()
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        raise DatabaseError(
            f"reading the back-office {settings.mask_url(url)} failed: {error_detail(orig, url)}"
        ) from None
    finally:
        engine.dispose()


def _columns(conn: Any, table: str) -> dict[str, str] | None:
    """The table's columns (lower-cased name -> real name), or None when there is no table."""
    from sqlalchemy import inspect

    inspector = inspect(conn)
    if not inspector.has_table(table):
        return None
    return {c["name"].lower(): c["name"] for c in inspector.get_columns(table)}


def read_tables(conn: Any, mapping: Mapping) -> Tables:
    """Every row of the four back-office tables, keyed by the logical column names.

    A table or column that the back-office lacks is a :class:`DatabaseError` naming it (and the
    mapping line that named it).
    """
    quote_name = conn.dialect.identifier_preparer.quote
    out: Tables = {}
    for logical, columns in TABLES.items():
        table = mapping.table(logical)
        present = _columns(conn, table)
        if present is None:
            raise DatabaseError(
                f"the back-office has no table {table!r} (the {logical} table)"
                + mapping.where(logical),
                hint="map it to the back-office's table with --mapping (tables: "
                f"{{{logical}: NAME}})",
            )
        selected: list[tuple[str, str]] = []
        for column in columns:
            real = mapping.column(logical, column)
            if real is None:
                continue
            found = present.get(real.lower())
            if found is None:
                raise DatabaseError(
                    f"the back-office table {table!r} has no column {real!r} "
                    f"({logical}.{column}){mapping.where(logical, column)}",
                    hint=f"map it with --mapping (columns: {{{logical}.{column}: NAME}}, or "
                    "null when the back-office has no such column and the default applies)",
                )
            selected.append((column, found))
        sql = (
            "SELECT "
            + ", ".join(quote_name(real) for _, real in selected)
            + f" FROM {quote_name(table)}"
        )
        result = conn.exec_driver_sql(sql)
        rows = result.fetchmany(MAX_ROWS + 1)
        result.close()
        if len(rows) > MAX_ROWS:
            raise DatabaseError(f"the back-office table {table!r} has more than {MAX_ROWS} rows")
        names = [column for column, _ in selected]
        missing = {column: None for column in columns if column not in names}
        out[logical] = [{**missing, **dict(zip(names, row, strict=True))} for row in rows]
    return out
