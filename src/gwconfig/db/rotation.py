"""Encryption-key rotation: re-encrypt every stored secret under the newest key, in one transaction.

Fingerprints are keyed by the newest key, so they are recomputed too. Revision snapshots that
carry ciphertexts/fingerprints (``snapshot["ciphertexts"]``, ``snapshot["fingerprints"]``, keyed
by ``pid/key:name@env``) are rewritten the same way, and the last revision's ``state_hash`` is
moved along when it described the state before rotation, so a rotation never shows up as drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from gwconfig.db.models import ApiKey, ConfigRevision, ConnectionParameter
from gwconfig.secrets import EncryptionKeys
from gwconfig.state import read_state


@dataclass(frozen=True)
class RotationResult:
    """How many stored secrets (and revision snapshots) were re-encrypted."""

    api_keys: int
    parameters: int
    revisions: int

    @property
    def secrets(self) -> int:
        """API keys plus sensitive parameters."""
        return self.api_keys + self.parameters


def _rewrite_snapshot(snapshot: Any, keys: EncryptionKeys) -> dict[str, Any] | None:
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("ciphertexts"), dict):
        return None
    ciphertexts: dict[str, str] = {}
    fingerprints = dict(snapshot.get("fingerprints") or {})
    for scope, token in snapshot["ciphertexts"].items():
        plain = keys.decrypt(token)
        ciphertexts[scope] = keys.encrypt(plain)
        if scope in fingerprints:
            fingerprints[scope] = keys.fingerprint(plain)
    return {**snapshot, "ciphertexts": ciphertexts, "fingerprints": fingerprints}


def rotate_secrets(conn: Connection, keys: EncryptionKeys) -> RotationResult:
    """Re-encrypt API keys, sensitive parameters and revision snapshots under ``keys``' newest.

    Run it inside one transaction (``engine.begin()``): a secret no listed key opens raises
    :class:`~gwconfig.errors.EncryptionKeyError` before anything is written.
    """
    before_hash = read_state(conn).state_hash
    k = ApiKey.__table__
    key_rows = []
    for row in conn.execute(select(k.c.id, k.c.key_value)):
        plain = keys.decrypt(row.key_value)
        key_rows.append(
            {
                "b_id": row.id,
                "key_value": keys.encrypt(plain),
                "fingerprint": keys.fingerprint(plain),
            }
        )
    c = ConnectionParameter.__table__
    param_rows = []
    for row in conn.execute(select(c.c.id, c.c.param_value).where(c.c.is_sensitive.is_(True))):
        plain = keys.decrypt(row.param_value)
        param_rows.append(
            {
                "b_id": row.id,
                "param_value": keys.encrypt(plain),
                "fingerprint": keys.fingerprint(plain),
            }
        )
    r = ConfigRevision.__table__
    revisions = []
    last = conn.execute(select(r.c.number, r.c.state_hash).order_by(r.c.number.desc())).first()
    for row in conn.execute(select(r.c.number, r.c.snapshot)):
        snapshot = _rewrite_snapshot(row.snapshot, keys)
        if snapshot is not None:
            revisions.append({"b_number": row.number, "snapshot": snapshot})
    # every value was decrypted above: only now write anything
    if key_rows:
        conn.execute(update(ApiKey).where(k.c.id == bindparam("b_id")), key_rows)
    if param_rows:
        conn.execute(update(ConnectionParameter).where(c.c.id == bindparam("b_id")), param_rows)
    if revisions:
        conn.execute(
            update(ConfigRevision).where(ConfigRevision.number == bindparam("b_number")), revisions
        )
    if last is not None and last.state_hash == before_hash:
        after_hash = read_state(conn).state_hash
        conn.execute(
            update(ConfigRevision)
            .where(ConfigRevision.number == last.number)
            .values(state_hash=after_hash)
        )
    return RotationResult(
        api_keys=len(key_rows), parameters=len(param_rows), revisions=len(revisions)
    )


def rotate_url(url: str | None = None) -> RotationResult:
    """``gwconfig keys rotate``: re-encrypt every secret of the database at ``url`` (one txn)."""
    from gwconfig.db.session import open_database, translate_errors
    from gwconfig.secrets import load_encryption_keys

    db = open_database(url)
    try:
        keys = load_encryption_keys(db.url)
        with translate_errors(db.url, "rotating the secrets of"), db.engine.begin() as conn:
            return rotate_secrets(conn, keys)
    finally:
        db.dispose()
