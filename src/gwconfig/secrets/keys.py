"""Secrets: references (env/file/sealed), Fernet encryption at rest, fingerprints.

``GWCONFIG_ENCRYPTION_KEY`` holds one or more Fernet keys, comma-separated, newest first: values
are decrypted with any (MultiFernet), so keys rotate without downtime. Each key has a public
*key id* (:func:`key_id`), stored beside every secret; :meth:`EncryptionKeys.bind` checks the
given keys against the ids a database records (:class:`StoredKeys`) and makes the database's key
the *primary*: the one that encrypts new values and keys the *fingerprints* (HMAC-SHA256 keyed
by HKDF(primary key)), so the reconciler can tell whether a value changed without decrypting it,
without the fingerprint being a guessable bare hash, and whatever the order of the listed keys.
Only ``keys rotate`` moves secrets (and fingerprints) to the newest key.

No function here ever puts a secret value in an exception message.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gwconfig import settings

# re-exported: the one mask and masking function live in the entity registry
from gwconfig.entities import MASK as MASK
from gwconfig.entities import mask_entity as mask_entity
from gwconfig.errors import EncryptionKeyError

ENV_VAR = "GWCONFIG_ENCRYPTION_KEY"
KEY_FILE_NAME = "encryption.key"
FINGERPRINT_PREFIX = "hmac-sha256:"
_FINGERPRINT_INFO = b"gwconfig fingerprint"
_KEY_ID_INFO = b"gwconfig key id"
KEY_ID_LENGTH = 12
_SET_KEY_HINT = f"set {ENV_VAR}; generate one with 'gwconfig keys generate'"


def generate_key() -> str:
    """A new random Fernet key (URL-safe base64, 44 characters)."""
    return Fernet.generate_key().decode()


def key_id(key: str | bytes) -> str:
    """The public id of a Fernet key: 12 hex digits of HMAC-SHA256(key, "gwconfig key id").

    Stored beside every secret so the database knows which key opens it; a truncated keyed hash
    of a random 256-bit key tells nothing about the key. Raises ``ValueError`` for a non-key.
    """
    raw = base64.urlsafe_b64decode(key.encode() if isinstance(key, str) else key)
    if len(raw) != 32:
        raise ValueError("a Fernet key is 32 bytes")
    return hmac.new(raw, _KEY_ID_INFO, hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]


def _ids(ids: Iterable[str]) -> str:
    """Key ids for a message: a set sorted, a sequence (newest first) as it is."""
    listed = sorted(ids) if isinstance(ids, set | frozenset) else list(ids)
    return ", ".join(listed) or "none"


@dataclass(frozen=True)
class StoredKeys:
    """Which keys a database's secrets are under, as recorded on their rows.

    ``ids``: the key ids recorded on secret rows; ``unknown``: the ciphertexts of rows with no
    recorded id (stored before schema revision 0004), whose key is found by trying the given keys.
    """

    ids: frozenset[str] = frozenset()
    unknown: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str | None, str]]) -> StoredKeys:
        """From ``(key_id, ciphertext)`` pairs of every stored secret."""
        ids: set[str] = set()
        unknown: list[str] = []
        for kid, token in rows:
            if kid is None:
                unknown.append(token)
            else:
                ids.add(kid)
        return cls(frozenset(ids), tuple(unknown))


class EncryptionKeys:
    """One or more Fernet keys, newest first: decrypt with any, encrypt with the *primary*.

    The primary key (the newest unless :meth:`bind` chose the database's key) encrypts new values
    and keys the fingerprints. Each key has a public :func:`key_id`.
    """

    def __init__(self, keys: list[str] | tuple[str, ...] | str, *, source: str = ENV_VAR) -> None:
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",") if k.strip()]
        if not keys:
            raise EncryptionKeyError(f"{source} is empty", hint=_SET_KEY_HINT)
        fernets: list[Fernet] = []
        raws: list[bytes] = []
        for i, key in enumerate(keys, start=1):
            material = key.encode() if isinstance(key, str) else key
            try:
                fernets.append(Fernet(material))
            except (ValueError, TypeError) as exc:
                raise EncryptionKeyError(
                    f"{source}: key #{i} is not a valid Fernet key (32 url-safe base64 bytes)",
                    hint=_SET_KEY_HINT,
                ) from exc
            raws.append(material)
        self.source = source
        self._fernets = tuple(fernets)
        #: the key ids, newest first
        self.ids = tuple(key_id(raw) for raw in raws)
        self._raws = tuple(raws)
        self._fernet = MultiFernet(fernets)
        self._primary = 0
        self._hmac_key = self._derive(0)

    def _derive(self, index: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_FINGERPRINT_INFO).derive(
            base64.urlsafe_b64decode(self._raws[index])
        )

    def __repr__(self) -> str:  # never show key material
        return f"EncryptionKeys(<{len(self.ids)} key(s) from {self.source}>)"

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def primary_id(self) -> str:
        """The id of the key that encrypts new values and keys the fingerprints."""
        return self.ids[self._primary]

    def using(self, kid: str) -> EncryptionKeys:
        """The same keys with ``kid`` (one of :attr:`ids`) as the primary."""
        other = copy.copy(self)
        other._primary = self.ids.index(kid)
        other._hmac_key = self._derive(other._primary)
        return other

    def newest(self) -> EncryptionKeys:
        """The same keys with the newest as the primary (what ``keys rotate`` writes with)."""
        return self.using(self.ids[0])

    def encrypt(self, value: str) -> str:
        """Fernet ciphertext (str) of ``value`` under the primary key."""
        return self._fernets[self._primary].encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The plaintext of ``token``; :class:`EncryptionKeyError` if no key opens it."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError, TypeError, AttributeError) as exc:
            raise EncryptionKeyError(
                f"cannot decrypt a stored secret with the key(s) in {self.source} (key id(s) "
                f"{_ids(self.ids)}): the key is wrong, or the key the value was encrypted with is "
                "no longer listed",
                hint=f"put the old key after the new one in {ENV_VAR} (comma-separated) "
                "and run 'gwconfig keys rotate'",
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the newest key (decrypting with any listed key)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except (InvalidToken, ValueError, TypeError, AttributeError) as exc:
            raise EncryptionKeyError(
                f"cannot re-encrypt a stored secret: no key in {self.source} opens it",
                hint=f"add the key it was encrypted with to {ENV_VAR} (after the new one)",
            ) from exc

    def opener(self, token: str, prefer: str | None = None) -> str | None:
        """The id of the listed key that opens ``token`` (None when none does).

        ``prefer``: a key id to try first (the one that opened the previous token, usually).
        """
        order = sorted(range(len(self.ids)), key=lambda i: self.ids[i] != prefer)
        for i in order:
            kid, fernet = self.ids[i], self._fernets[i]
            try:
                fernet.decrypt(token.encode())
            except (InvalidToken, ValueError, TypeError, AttributeError):
                continue
            return kid
        return None

    def fingerprint(self, value: str) -> str:
        """``hmac-sha256:<hex>`` of ``value``, keyed by HKDF(primary key)."""
        digest = hmac.new(self._hmac_key, value.encode(), hashlib.sha256).hexdigest()
        return FINGERPRINT_PREFIX + digest

    def bind(self, stored: StoredKeys, *, single: bool = True) -> EncryptionKeys:
        """These keys with the database's key as primary; refuse keys that cannot open it.

        Every key id recorded in ``stored`` must be listed, and every secret without a recorded
        id must open with a listed key; otherwise :class:`EncryptionKeyError` names the ids the
        database needs and the ids given. While ``NEW,OLD`` is set and ``keys rotate`` has not
        run, the primary stays OLD: apply writes and fingerprints with the key the database is
        under, so a plan shows no changes and only ``keys rotate`` moves secrets to NEW.
        ``single`` (writers) also refuses a database whose secrets are under several keys.
        An empty database takes the newest key.
        """
        needed = set(stored.ids)
        missing = needed - set(self.ids)
        if missing:
            raise EncryptionKeyError(
                f"the stored secrets need encryption key id(s) {_ids(needed)}, but {self.source} "
                f"has key id(s) {_ids(self.ids)} (missing: {_ids(missing)}); nothing was done",
                hint=f"set {ENV_VAR} to the key(s) with those ids ('gwconfig keys id' prints the "
                f"ids of your keys); to move to a new key, set {ENV_VAR}=NEW,OLD and run "
                "'gwconfig keys rotate'",
            )
        last: str | None = None
        for token in stored.unknown:
            last = self.opener(token, prefer=last)
            if last is None:
                raise EncryptionKeyError(
                    f"a stored secret (recorded before key ids were kept) opens with no key in "
                    f"{self.source} (key id(s) {_ids(self.ids)}); nothing was done",
                    hint=f"set {ENV_VAR} to the key the database was written with",
                )
            needed.add(last)
        if single and len(needed) > 1:
            raise EncryptionKeyError(
                f"the stored secrets are under several encryption keys (ids {_ids(needed)}); "
                "nothing was done",
                hint=f"list the newest key first and the others after it in {ENV_VAR}, then run "
                "'gwconfig keys rotate' to move every secret to the newest",
            )
        for kid in self.ids:  # newest first: the only one when ``single``
            if kid in needed:
                return self.using(kid)
        return self.newest()


def key_file_path() -> Path:
    """Where the embedded default keeps its generated key: ``.gwconfig/encryption.key``."""
    return Path(settings.STATE_DIR) / KEY_FILE_NAME


def _read_or_create_key_file() -> str:
    path = key_file_path()
    if path.exists():
        text = path.read_text().strip()
        if not text:
            raise EncryptionKeyError(f"{path} is empty", hint=_SET_KEY_HINT)
        return text
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    # write a private temp file, then link it into place: readers never see a partial key
    tmp = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)
    except FileExistsError:  # another gwconfig process created it a moment ago
        return path.read_text().strip()
    finally:
        tmp.unlink()
    print(
        f"gwconfig: generated a new encryption key in {path} (mode 0600) for the embedded "
        f"database; back it up, or set {ENV_VAR} to use your own",
        file=sys.stderr,
    )
    return key


def load_encryption_keys(database_url: str | None = None) -> EncryptionKeys:
    """Keys from ``GWCONFIG_ENCRYPTION_KEY``; the embedded default may generate its own key file."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw:
        return EncryptionKeys(raw, source=ENV_VAR)
    url = settings.database_url(database_url)
    if settings.is_embedded_default(url):
        return EncryptionKeys(_read_or_create_key_file(), source=str(key_file_path()))
    raise EncryptionKeyError(
        f"no encryption key for {settings.mask_url(url)}: {ENV_VAR} is not set",
        hint=_SET_KEY_HINT,
    )


def is_fingerprint(value: Any) -> bool:
    """True for a stored-value marker ``{"fingerprint": "hmac-sha256:..."}``."""
    return isinstance(value, Mapping) and set(value) == {"fingerprint"}
