"""Secrets: references (env/file/sealed), Fernet encryption at rest, fingerprints, masking.

``GWCONFIG_ENCRYPTION_KEY`` holds one or more Fernet keys, comma-separated, newest first: values
are encrypted with the first and decrypted with any (MultiFernet), so keys rotate without
downtime. Each stored secret carries a *fingerprint* -- HMAC-SHA256 keyed by a key derived
(HKDF) from the newest Fernet key -- so the reconciler can tell whether a value changed without
decrypting it, and without the fingerprint being a guessable bare hash.

No function here ever puts a secret value in an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gwconfig import settings
from gwconfig.errors import EncryptionKeyError, SecretError
from gwconfig.secretrefs import env_reference_problem, read_secret_file

ENV_VAR = "GWCONFIG_ENCRYPTION_KEY"
KEY_FILE_NAME = "encryption.key"
FINGERPRINT_PREFIX = "hmac-sha256:"
MASK = "(sensitive)"
_FINGERPRINT_INFO = b"gwconfig fingerprint"
_SET_KEY_HINT = f"set {ENV_VAR}; generate one with 'gwconfig keys generate'"


class MissingSecretError(SecretError):
    """A referenced environment variable or file does not exist."""

    def __init__(self, message: str, *, reference: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reference = reference


def generate_key() -> str:
    """A new random Fernet key (URL-safe base64, 44 characters)."""
    return Fernet.generate_key().decode()


class EncryptionKeys:
    """One or more Fernet keys, newest first: encrypt with the first, decrypt with any."""

    def __init__(self, keys: list[str] | tuple[str, ...] | str, *, source: str = ENV_VAR) -> None:
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",") if k.strip()]
        if not keys:
            raise EncryptionKeyError(f"{source} is empty", hint=_SET_KEY_HINT)
        fernets: list[Fernet] = []
        for i, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode() if isinstance(key, str) else key))
            except (ValueError, TypeError) as exc:
                raise EncryptionKeyError(
                    f"{source}: key #{i} is not a valid Fernet key (32 url-safe base64 bytes)",
                    hint=_SET_KEY_HINT,
                ) from exc
        self.source = source
        self._count = len(fernets)
        self._fernet = MultiFernet(fernets)
        newest = base64.urlsafe_b64decode(keys[0].encode() if isinstance(keys[0], str) else keys[0])
        self._hmac_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_FINGERPRINT_INFO
        ).derive(newest)

    def __repr__(self) -> str:  # never show key material
        return f"EncryptionKeys(<{self._count} key(s) from {self.source}>)"

    def __len__(self) -> int:
        return self._count

    def encrypt(self, value: str) -> str:
        """Fernet ciphertext (str) of ``value`` under the newest key."""
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The plaintext of ``token``; :class:`EncryptionKeyError` if no key opens it."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError, TypeError, AttributeError) as exc:
            raise EncryptionKeyError(
                f"cannot decrypt a stored secret with the key(s) in {self.source}: the key is "
                "wrong, or the key the value was encrypted with is no longer listed",
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

    def fingerprint(self, value: str) -> str:
        """``hmac-sha256:<hex>`` of ``value``, keyed by HKDF(newest key)."""
        digest = hmac.new(self._hmac_key, value.encode(), hashlib.sha256).hexdigest()
        return FINGERPRINT_PREFIX + digest


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


def describe_reference(ref: Mapping[str, str]) -> str:
    """A printable, non-secret description of a reference, e.g. ``env:OPENAI_API_KEY``."""
    if len(ref) != 1:
        return "invalid secret reference"
    kind, value = next(iter(ref.items()))
    if kind == "sealed":
        return f"sealed:{value[:18]}..."
    return f"{kind}:{value}"


def resolve_secret(ref: Mapping[str, str], scope: tuple[str, str, str]) -> str:
    """The plaintext behind a secret reference (``env``, ``file`` or ``sealed``) for ``scope``."""
    if len(ref) != 1:
        raise SecretError(
            "a secret reference needs exactly one of 'env', 'file' or 'sealed'",
        )
    kind, target = next(iter(ref.items()))
    where = f"{scope[0]}/{scope[1]}@{scope[2]}"
    if kind == "env":
        problem = env_reference_problem(target)
        if problem is not None:
            raise SecretError(f"{problem} (secret for {where})")
        value = os.environ.get(target)
        if value is None:
            raise MissingSecretError(
                f"environment variable {target} is not set (secret for {where})",
                reference=f"env:{target}",
                hint=f"export {target}=... before running this command",
            )
        if value == "":
            raise SecretError(f"environment variable {target} is empty (secret for {where})")
        return value
    if kind == "file":
        try:
            return read_secret_file(target, where)
        except FileNotFoundError as exc:
            raise MissingSecretError(
                f"secret file {target} does not exist (secret for {where})",
                reference=f"file:{target}",
            ) from exc
    if kind == "sealed":
        from gwconfig.sealing import unseal

        return unseal(target, scope)
    raise SecretError(f"unknown secret reference kind {kind!r} (use env, file or sealed)")


def is_fingerprint(value: Any) -> bool:
    """True for a stored-value marker ``{"fingerprint": "hmac-sha256:..."}``."""
    return isinstance(value, Mapping) and set(value) == {"fingerprint"}


def mask_entity(entity: str, body: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A copy of a canonical entity body with its secret value (if any) replaced by MASK.

    ``entity`` is ``api_key`` (value always secret), ``connection_parameter`` (secret when
    ``sensitive``) or anything else (returned unchanged). Used for audit before/after.
    """
    if body is None:
        return None
    out = dict(body)
    if entity == "api_key" or (entity == "connection_parameter" and body.get("sensitive")):
        out["value"] = MASK
    return out
