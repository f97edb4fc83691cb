"""The gateway database: models, engines/sessions, migrations and row builders."""

from __future__ import annotations

from gwconfig.db.session import Database, get_db_session, open_database

__all__ = ["Database", "get_db_session", "open_database"]
