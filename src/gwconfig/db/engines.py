"""The SQLAlchemy engine behind whatever a caller holds (importing this needs no SQLAlchemy)."""

from __future__ import annotations

from typing import Any


def engine_of(source: Any) -> Any | None:
    """The SQLAlchemy engine behind a Session, Engine, ``Database``, Connection or database URL;
    None when ``source`` is none of them (the caller says what it expected)."""
    if isinstance(source, str):
        from gwconfig.db.session import open_database  # SQLAlchemy: only for a database

        return open_database(source).engine
    if hasattr(source, "get_bind"):  # Session
        return source.get_bind()
    if hasattr(source, "engine"):  # gwconfig.db.session.Database, Connection
        return source.engine
    if hasattr(source, "dialect") and hasattr(source, "connect"):  # Engine
        return source
    return None
