"""Read the ``Gateway`` settings apply stores beside the routes (``gateway_settings``, 0008).

Read only, on a SQLAlchemy connection or session or a DBAPI :class:`~gwconfig.reconcile.state.
Reader` (``dump`` reads without SQLAlchemy); :mod:`gwconfig.reconcile.bindings` writes them.
"""

from __future__ import annotations

from typing import Any

from gwconfig.manifests.egress import EgressPolicy
from gwconfig.reconcile.state import stored_setting

EGRESS = "egress"


def read_egress_policy(source: Any) -> EgressPolicy | None:
    """The egress policy the last apply stored (None: no policy)."""
    return EgressPolicy.from_config({EGRESS: stored_setting(source, EGRESS)})
