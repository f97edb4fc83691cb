"""The gateway database: models, engines/sessions, migrations and row builders."""

from __future__ import annotations

from gwconfig.db.session import Database, open_database

__all__ = ["Database", "open_database"]
