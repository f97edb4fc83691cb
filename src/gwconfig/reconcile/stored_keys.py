"""Which Fernet keys the stored secrets are under, read without the whole state."""

from __future__ import annotations

from typing import Any

from gwconfig.reconcile.state import parse_json_cells, reader
from gwconfig.secrets.keys import StoredKeys


def read_stored_keys(source: Any) -> StoredKeys:
    """Which keys the stored secrets are under, without reading the whole state (3 queries).

    The recorded key ids, and the ciphertexts of the secrets that have none yet.
    """
    source = reader(source)
    rows = source.rows(
        "SELECT key_id FROM api_keys WHERE key_id IS NOT NULL UNION SELECT key_id FROM "
        "connection_parameters WHERE is_sensitive AND key_id IS NOT NULL"
    )
    tokens = [row[0] for row in source.rows("SELECT key_value FROM api_keys WHERE key_id IS NULL")]
    params = source.rows(
        "SELECT param_value FROM connection_parameters WHERE is_sensitive AND key_id IS NULL"
    )
    tokens += parse_json_cells([row[0] for row in params])
    return StoredKeys(frozenset(row[0] for row in rows), tuple(tokens))
