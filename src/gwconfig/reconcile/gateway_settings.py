"""Read the ``Gateway`` settings apply stores beside the routes (``gateway_settings``, 0008).

Read only, on a SQLAlchemy connection or session or a DBAPI :class:`~gwconfig.reconcile.state.
Reader` (``dump`` reads without SQLAlchemy); :mod:`gwconfig.reconcile.bindings` writes them.
"""

from __future__ import annotations

from typing import Any

import orjson

from gwconfig.manifests.egress import EgressPolicy
from gwconfig.reconcile.state import mark, reader

EGRESS = "egress"


def stored_setting(source: Any, name: str) -> Any:
    """The JSON value of setting ``name`` (None when there is none)."""
    source = reader(source)
    sql = f"SELECT value FROM gateway_settings WHERE name = {mark(source.dialect)}"
    rows = source.rows(sql, (name,))
    if not rows:
        return None
    value = rows[0][0]
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def read_egress_policy(source: Any) -> EgressPolicy | None:
    """The egress policy the last apply stored (None: no policy)."""
    return EgressPolicy.from_config({EGRESS: stored_setting(source, EGRESS)})
