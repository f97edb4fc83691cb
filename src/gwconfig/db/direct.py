"""Read-only DBAPI connections for ``plan``: the gateway database without importing SQLAlchemy.

Importing SQLAlchemy and its ORM costs a short-lived ``gwconfig plan`` about half a second,
a third of its budget, while planning only runs a handful of SELECTs (see
:mod:`gwconfig.reconcile.state`). :func:`open_direct` connects with the DBAPI driver itself
(``sqlite3``,
psycopg 3, PyMySQL) when the URL is one it understands exactly as SQLAlchemy would and the
schema is at gwconfig's head revision. In every other case (an unusual URL, a driver option it
does not know, a missing or out-of-date schema, a connection error) it returns ``None`` and the
caller goes through :func:`gwconfig.db.session.open_database`, which creates, upgrades or
explains as usual. So the fast path can only ever be faster, never give another answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from gwconfig.db.urls import URL_GRAMMAR, error_detail, mask_url
from gwconfig.db.version import HEAD_REVISION, VERSION_TABLE
from gwconfig.errors import DatabaseError

__all__ = ["DirectConnection", "ParsedURL", "open_direct", "parse_url"]

#: URL scheme -> dialect, for the drivers gwconfig uses (a bare scheme means that driver too)
_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "mysql": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb": "mariadb",
    "mariadb+pymysql": "mariadb",
}


@dataclass(frozen=True)
class ParsedURL:
    """The parts of a database URL, as SQLAlchemy's ``make_url`` reads them."""

    scheme: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: dict[str, str] = field(default_factory=dict, repr=False)

    def connect_args(self, database: str) -> dict[str, Any]:
        """Host, port, user, password and (as ``database``) the database name, when given."""
        parts = (
            ("host", self.host),
            ("port", self.port),
            ("user", self.username),
            ("password", self.password),
            (database, self.database),
        )
        return {name: value for name, value in parts if value}

    @property
    def dialect(self) -> str | None:
        """``sqlite``, ``postgresql``, ``mysql`` or ``mariadb`` (None: not a gwconfig driver)."""
        return _SCHEMES.get(self.scheme)


def parse_url(url: str) -> ParsedURL | None:
    """Split ``url`` like SQLAlchemy does (None: not parseable, or a query key given twice)."""
    m = URL_GRAMMAR.match(url)
    if m is None:
        return None
    query: dict[str, str] = {}
    for key, value in parse_qsl(m["query"] or ""):
        if key in query:
            return None  # a list value: leave it to SQLAlchemy
        query[key] = value
    port = m["port"]
    if port and not port.isdigit():
        return None
    return ParsedURL(
        scheme=m["name"],
        username=unquote(m["username"]) if m["username"] is not None else None,
        password=unquote(m["password"]) if m["password"] is not None else None,
        host=m["ipv4host"] or m["ipv6host"],
        port=int(port) if port else None,
        database=m["database"],
        query=query,
    )


class DirectConnection:
    """A read-only DBAPI connection: a :class:`gwconfig.reconcile.state.Reader` (use as a context
    manager).

    Every statement runs in one transaction (a consistent snapshot where the engine offers
    one), rolled back on close.
    """

    def __init__(self, url: str, dialect: str, connection: Any, errors: type[Exception]) -> None:
        self.url = url
        self.dialect = dialect
        self._connection = connection
        self._errors = errors

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of ``sql`` (``?`` markers on SQLite, ``%s`` otherwise)."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    @contextmanager
    def translate_errors(self, doing: str) -> Iterator[None]:
        """Driver errors as :class:`DatabaseError` naming the masked URL (as SQLAlchemy's are)."""
        try:
            yield
        except self._errors as exc:
            detail = error_detail(exc, self.url)
            raise DatabaseError(f"{doing} {mask_url(self.url)} failed: {detail}") from None

    def close(self) -> None:
        """Roll back the read transaction and close."""
        try:
            with suppress(self._errors):  # a broken connection has nothing to roll back
                self._connection.rollback()
        finally:
            self._connection.close()

    def __enter__(self) -> DirectConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# each driver is imported for a URL of its engine only (psycopg and PyMySQL are optional)
def _sqlite(parsed: ParsedURL) -> tuple[Any, type[Exception]] | None:
    import sqlite3

    if parsed.query or parsed.host or parsed.database in (None, "", ":memory:"):
        return None  # in-memory databases are per engine; options are SQLAlchemy's to read
    path = Path(parsed.database or "").expanduser()
    if not path.is_file():
        return None  # the embedded default creates itself through SQLAlchemy
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    conn.execute("BEGIN")  # one snapshot for every SELECT
    return conn, sqlite3.Error


def _postgresql(parsed: ParsedURL) -> tuple[Any, type[Exception]] | None:
    import psycopg

    # what SQLAlchemy's psycopg dialect passes: the URL's parts, then its query as options
    options = {**parsed.connect_args("dbname"), **parsed.query}
    conn = psycopg.connect(**options)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn, psycopg.Error


def _mysql(parsed: ParsedURL) -> tuple[Any, type[Exception]] | None:
    if set(parsed.query) - {"charset"}:
        return None  # ssl and other options: SQLAlchemy translates them for PyMySQL
    import pymysql  # type: ignore[import-untyped]

    charset = parsed.query.get("charset", "utf8mb4")
    conn = pymysql.connect(charset=charset, **parsed.connect_args("database"))
    conn.cursor().execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    return conn, pymysql.Error


_CONNECT = {"sqlite": _sqlite, "postgresql": _postgresql, "mysql": _mysql, "mariadb": _mysql}


def _unreachable(exc: Exception) -> bool:
    """A server that cannot be reached or refuses us (asking again through SQLAlchemy would
    only wait for the same timeout twice)."""
    kind = type(exc)
    return kind.__name__ == "OperationalError" and kind.__module__.split(".")[0] in (
        "psycopg",
        "pymysql",
    )


def open_direct(url: str) -> DirectConnection | None:
    """A read-only DBAPI connection to ``url`` at the head schema revision, or None.

    None means "use :func:`gwconfig.db.session.open_database`": this fast path declines
    anything it cannot do exactly as the SQLAlchemy path would, and any failure but one: a
    database server that cannot be reached raises :class:`DatabaseError` at once, worded as the
    SQLAlchemy path words it.
    """
    parsed = parse_url(url)
    dialect = parsed.dialect if parsed is not None else None
    if parsed is None or dialect is None:
        return None
    try:
        opened = _CONNECT[dialect](parsed)
    except Exception as exc:  # the SQLAlchemy path reports it properly
        if _unreachable(exc):
            detail = error_detail(exc, url)
            raise DatabaseError(f"opening {mask_url(url)} failed: {detail}") from None
        return None
    if opened is None:
        return None
    direct = DirectConnection(url, dialect, *opened)
    try:
        revision = direct.rows(f"SELECT version_num FROM {VERSION_TABLE}")
    except Exception:  # no version table yet, and so on
        revision = []
    if revision != [(HEAD_REVISION,)]:
        direct.close()
        return None
    return direct
