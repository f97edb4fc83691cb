"""The gateway database: models, engines/sessions, migrations and row builders.

``Database``, ``open_database`` and ``get_db_session`` are imported from
:mod:`gwconfig.db.session` on first use, so that :mod:`gwconfig.db.direct` (the plan path's
DBAPI reader) can be imported without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gwconfig.db.session import Database, get_db_session, open_database

__all__ = ["Database", "get_db_session", "open_database"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gwconfig.db import session

        return getattr(session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
