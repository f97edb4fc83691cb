"""Encryption-key rotation: re-encrypt every stored secret under the newest key, in one transaction.

Fingerprints are keyed by the key the secrets are under, so they are recomputed too, and every
secret records the newest key's id. Revision snapshots that carry ciphertexts/fingerprints
(``snapshot["ciphertexts"]``, ``snapshot["fingerprints"]``, keyed by ``pid/key:name@env``) are
rewritten the same way, and the last revision's ``state_hash`` is moved along when it described
the state before rotation, so a rotation never shows up as drift. Rotation takes the apply lock
(:func:`gwconfig.db.lock.locked`) and reads what it re-encrypts under it, so it never writes back
values an apply replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from gwconfig.db.lock import locked
from gwconfig.db.models import ApiKey, ConfigRevision, ConnectionParameter
from gwconfig.db.notify import announce
from gwconfig.db.session import open_database, translate_errors
from gwconfig.reconcile.state import read_state
from gwconfig.secrets.keys import EncryptionKeys, load_encryption_keys


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


def _rewrite_snapshot(
    snapshot: Any, keys: EncryptionKeys, new: EncryptionKeys
) -> dict[str, Any] | None:
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("ciphertexts"), dict):
        return None
    ciphertexts: dict[str, str] = {}
    fingerprints = dict(snapshot.get("fingerprints") or {})
    for scope, token in snapshot["ciphertexts"].items():
        plain = keys.decrypt(token)
        ciphertexts[scope] = new.encrypt(plain)
        if scope in fingerprints:
            fingerprints[scope] = new.fingerprint(plain)
    return {**snapshot, "ciphertexts": ciphertexts, "fingerprints": fingerprints}


def record_key_ids(conn: Connection, kid: str) -> None:
    """Record ``kid`` on every secret row that has no key id yet (stored before revision 0004).

    Only for a caller that checked (:meth:`EncryptionKeys.bind`, on this transaction) that
    every such row opens with that key.
    """
    k, c = ApiKey.__table__, ConnectionParameter.__table__
    conn.execute(update(ApiKey).where(k.c.key_id.is_(None)).values(key_id=kid))
    conn.execute(
        update(ConnectionParameter)
        .where(c.c.key_id.is_(None), c.c.is_sensitive.is_(True))
        .values(key_id=kid)
    )


def rotate_secrets(conn: Connection, keys: EncryptionKeys) -> RotationResult:
    """Re-encrypt API keys, sensitive parameters and revision snapshots under ``keys``' newest.

    Run it inside the apply lock (:func:`gwconfig.db.lock.locked`): everything it re-encrypts is
    read in that transaction. Keys that cannot open every stored secret raise
    :class:`~gwconfig.errors.EncryptionKeyError` (naming the key ids needed) before anything is
    written. Every secret then records the newest key's id.
    """
    before = read_state(conn)
    keys.bind(before.stored_keys(), single=False)  # every stored key must be listed
    new = keys.newest()
    k = ApiKey.__table__
    key_rows = []
    for row in conn.execute(select(k.c.id, k.c.key_value)):
        plain = keys.decrypt(row.key_value)
        key_rows.append(
            {
                "b_id": row.id,
                "key_value": new.encrypt(plain),
                "fingerprint": new.fingerprint(plain),
                "key_id": new.primary_id,
            }
        )
    c = ConnectionParameter.__table__
    param_rows = []
    for row in conn.execute(select(c.c.id, c.c.param_value).where(c.c.is_sensitive.is_(True))):
        plain = keys.decrypt(row.param_value)
        param_rows.append(
            {
                "b_id": row.id,
                "param_value": new.encrypt(plain),
                "fingerprint": new.fingerprint(plain),
                "key_id": new.primary_id,
            }
        )
    r = ConfigRevision.__table__
    revisions = []
    last = conn.execute(select(r.c.number, r.c.state_hash).order_by(r.c.number.desc())).first()
    for row in conn.execute(select(r.c.number, r.c.snapshot)):
        snapshot = _rewrite_snapshot(row.snapshot, keys, new)
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
    if last is not None and last.state_hash == before.state_hash:
        after_hash = read_state(conn).state_hash
        conn.execute(
            update(ConfigRevision)
            .where(ConfigRevision.number == last.number)
            .values(state_hash=after_hash)
        )
    announce(conn)  # the stored ciphertexts changed: runtimes reload them
    return RotationResult(
        api_keys=len(key_rows), parameters=len(param_rows), revisions=len(revisions)
    )


def rotate_url(url: str | None = None, *, lock_timeout: float = 60.0) -> RotationResult:
    """``gwconfig keys rotate``: re-encrypt every secret of the database at ``url``.

    Under the apply lock (waiting up to ``lock_timeout`` seconds), in one transaction.
    """
    db = open_database(url)
    try:
        keys = load_encryption_keys(db.url)
        with translate_errors(db.url, "rotating the secrets of"), locked(db, lock_timeout) as conn:
            return rotate_secrets(conn, keys)
    finally:
        db.dispose()
