"""Bulk writes through the DBAPI cursor's ``executemany``, bypassing per-row bind processing.

SQLAlchemy's Core ``executemany`` runs every value of every row through its type's bind
processor (JSON serialisation, boolean coercion) and builds a parameter dict per row; for tens
of thousands of rows that costs more than the database. Here JSON documents are serialised once
by ``orjson`` (the same text the engine's ``json_serializer`` writes), constant values (the apply
time) go through their column type's bind processor once, and the rows reach the driver as
tuples of one plain ``INSERT``/``UPDATE``/``DELETE`` statement (psycopg 3 pipelines the batch;
PyMySQL folds an ``INSERT`` into multi-row statements). Inserts on PostgreSQL use ``COPY``.

Statements still go through :meth:`sqlalchemy.engine.Connection.exec_driver_sql` on the caller's
connection: they are part of its transaction and fire the engine's ``before_cursor_execute``
events like any other statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Column, Connection, Table
from sqlalchemy.exc import DBAPIError

from gwconfig.db.models import JSONText

Converter = Callable[[Any], Any] | None


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _dumps_or_null(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def converter(conn: Connection, column: Column[Any]) -> Converter:
    """How one value of ``column`` becomes a DBAPI parameter on ``conn`` (None: as it is)."""
    kind = column.type
    if isinstance(kind, JSON):
        return _dumps_or_null if kind.none_as_null else _dumps
    if isinstance(kind, JSONText):
        return _dumps
    processor = kind.bind_processor(conn.dialect)
    return processor


def _placeholder(conn: Connection) -> str:
    style = conn.dialect.paramstyle
    if style == "qmark":
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    raise ValueError(f"unsupported DBAPI paramstyle {style!r}")


def _quote(conn: Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote(name))


def _column_values(
    conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]]
) -> list[list[Any]]:
    """Each column's values converted for the DBAPI, column by column (one map per column)."""
    out = []
    dumps = orjson.dumps
    for name, values in columns.items():
        f = converter(conn, table.c[name])
        if f is _dumps:
            out.append([dumps(v).decode() for v in values])
        elif f is None:
            out.append(list(values))
        else:
            out.append(list(map(f, values)))
    return out


def _constant_values(
    conn: Connection, table: Table, constants: Mapping[str, Any] | None
) -> tuple[Any, ...]:
    fixed = []
    for name, value in (constants or {}).items():
        f = converter(conn, table.c[name])
        fixed.append(value if f is None else f(value))
    return tuple(fixed)


def by_column(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Rows (dicts with the same keys) as name -> values."""
    return {name: [r[name] for r in rows] for name in rows[0]} if rows else {}


def insert_columns(
    conn: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
    *,
    meanwhile: Callable[[], None] | None = None,
) -> int:
    """``INSERT`` rows given column-wise (name -> values) plus ``constants`` in every row.

    ``meanwhile``: see :func:`insert_tuples`.
    """
    values = _column_values(conn, table, columns)
    if not values or not values[0]:
        return 0
    tail = _constant_values(conn, table, constants)
    params = list(zip(*values, *([v] * len(values[0]) for v in tail), strict=True))
    names = [*columns, *(constants or {})]
    return insert_tuples(conn, table, names, params, meanwhile=meanwhile)


def insert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    constants: Mapping[str, Any] | None = None,
) -> int:
    """``INSERT`` ``rows`` (dicts with the same keys) plus ``constants`` into ``table``."""
    return insert_columns(conn, table, by_column(rows), constants) if rows else 0


def insert_tuples(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    *,
    meanwhile: Callable[[], None] | None = None,
) -> int:
    """``INSERT`` rows already converted to DBAPI values (see :func:`converter`).

    ``meanwhile`` is CPU work of the caller's run while the server still works on the rows
    (PostgreSQL's ``COPY``: after the last row is sent, before waiting for the result); on the
    other engines it runs after the statement. It must not use ``conn``.
    """
    if not rows:
        if meanwhile is not None:
            meanwhile()
        return 0
    names = ", ".join(_quote(conn, c) for c in columns)
    if uses_copy(conn):
        statement = f"COPY {_quote(conn, table.name)} ({names}) FROM STDIN"
        return _copy(conn, statement, rows, meanwhile)
    marks = ", ".join(_placeholder(conn) for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {_quote(conn, table.name)} ({names}) VALUES ({marks})", rows)
    if meanwhile is not None:
        meanwhile()
    return len(rows)


def uses_copy(conn: Connection) -> bool:
    """True when inserts on ``conn`` go through ``COPY`` (PostgreSQL through psycopg 3)."""
    return conn.dialect.driver == "psycopg"


def _copy(
    conn: Connection,
    statement: str,
    rows: list[tuple[Any, ...]],
    meanwhile: Callable[[], None] | None = None,
) -> int:
    """PostgreSQL (psycopg 3): stream ``rows`` with ``COPY ... FROM STDIN`` on ``conn``.

    Several times faster than even a pipelined executemany. It runs on the DBAPI connection of
    ``conn`` (same transaction); the engine's ``before_cursor_execute`` and
    ``after_cursor_execute`` listeners are called as for any statement, and driver errors are
    raised as SQLAlchemy's ``DBAPIError`` (values never in the message).
    """
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        conn.dispatch.before_cursor_execute(conn, cursor, statement, rows, None, True)
        try:
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
                if meanwhile is not None:  # the server is still busy with the rows sent
                    meanwhile()
        except conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                statement, None, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True
            ) from exc
        conn.dispatch.after_cursor_execute(conn, cursor, statement, rows, None, True)
    finally:
        cursor.close()
    return len(rows)


def update_columns(
    conn: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    ident: Sequence[str],
    constants: Mapping[str, Any] | None = None,
) -> int:
    """``UPDATE`` rows given column-wise, each matched by its ``ident`` columns."""
    sets = {n: v for n, v in columns.items() if n not in ident}
    keys = {n: columns[n] for n in ident}
    set_values = _column_values(conn, table, sets)
    key_values = _column_values(conn, table, keys)
    n = len(key_values[0])
    if not n:
        return 0
    tail = _constant_values(conn, table, constants)
    params = list(zip(*set_values, *([v] * n for v in tail), *key_values, strict=True))
    mark = _placeholder(conn)
    assignments = ", ".join(f"{_quote(conn, c)} = {mark}" for c in [*sets, *(constants or {})])
    where = " AND ".join(f"{_quote(conn, c)} = {mark}" for c in ident)
    sql = f"UPDATE {_quote(conn, table.name)} SET {assignments} WHERE {where}"
    conn.exec_driver_sql(sql, params)
    return n


def update_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    ident: Sequence[str],
    constants: Mapping[str, Any] | None = None,
) -> int:
    """``UPDATE`` each row (dicts with the same keys) matched by its ``ident`` columns."""
    return update_columns(conn, table, by_column(rows), ident, constants) if rows else 0


def delete_rows(
    conn: Connection, table: Table, ident: Sequence[str], keys: Sequence[Sequence[Any]]
) -> int:
    """``DELETE`` the rows whose ``ident`` columns equal each of ``keys``."""
    if not keys:
        return 0
    columns = {name: [k[i] for k in keys] for i, name in enumerate(ident)}
    params = list(zip(*_column_values(conn, table, columns), strict=True))
    mark = _placeholder(conn)
    where = " AND ".join(f"{_quote(conn, c)} = {mark}" for c in ident)
    conn.exec_driver_sql(f"DELETE FROM {_quote(conn, table.name)} WHERE {where}", params)
    return len(params)
