"""Sealed secrets: values in git that only the holder of a private key (CI) can open.

Scheme ``gwseal:v1`` (``cryptography`` only): X25519 with an ephemeral key per value, HKDF-SHA256
(salt = ephemeral public key + recipient public key) and AES-256-GCM. The binary blob is::

    key_id(8) | ephemeral_public(32) | nonce(12) | scope (3 x [len u8 | utf-8]) | ciphertext+tag

and its text form is ``gwseal:v1:`` + unpadded base64url. The whole header (key id, ephemeral
key, nonce and the scope ``(provider_id, name, environment)``) is authenticated as associated
data, so the scope can be read without the private key (for ``validate``, ``reseal`` and error
messages) but not changed. ``name`` is the API key name, or ``param:<param_name>`` for a
sensitive connection parameter. A key id is the first 8 bytes of SHA-256 of the raw public key.

Key files: public ``gwseal-public:v1:<base64url>`` (commit it, e.g. ``providers.d/sealing.pub``),
private ``gwseal-private:v1:<base64url>`` (exactly what ``GWCONFIG_SEALING_KEY`` takes; several
private keys may be given separated by commas or whitespace, for rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gwconfig.entities import SealedScope
from gwconfig.errors import Diagnostic, SealingError

if TYPE_CHECKING:  # the crypto path (unseal) must not pay for pydantic
    from gwconfig.manifests.compile import CompiledConfig

SEALING_KEY_ENV = "GWCONFIG_SEALING_KEY"
BLOB_PREFIX = "gwseal:v1:"
PUBLIC_PREFIX = "gwseal-public:v1:"
PRIVATE_PREFIX = "gwseal-private:v1:"
BLOB_PATTERN = re.compile(r"gwseal:v1:[A-Za-z0-9_=-]+")

_AAD_PREFIX = b"gwseal:v1\x00"
_HKDF_INFO = b"gwseal:v1 x25519 hkdf-sha256 aes-256-gcm"
_STABLE_INFO = b"gwseal:v1 stable ephemeral key\x00"
_KID_LEN, _PUB_LEN, _NONCE_LEN, _TAG_LEN = 8, 32, 12, 16
_KEY_HINT = (
    f"set {SEALING_KEY_ENV} to the private key file's content from 'gwconfig seal-keygen' "
    "(several keys separated by commas during a rotation)"
)


def describe_scope(scope: SealedScope) -> str:
    """Human form of a scope: ``provider X key Y environment Z`` (or ``parameter Y``)."""
    provider, name, environment = scope
    what = f"parameter {name[6:]}" if name.startswith("param:") else f"key {name}"
    return f"provider {provider} {what} environment {environment}"


def key_id(public_raw: bytes) -> str:
    """The key id of a raw X25519 public key: first 8 bytes of its SHA-256, in hex."""
    return hashlib.sha256(public_raw).digest()[:_KID_LEN].hex()


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    """Strict unpadded base64url: anything that does not re-encode identically is refused."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64url") from None
    if _b64e(data) != text:
        raise ValueError("not canonical base64url")
    return data


@dataclass(frozen=True)
class PublicKey:
    """A sealing public key (safe to commit)."""

    raw: bytes
    source: str = "<memory>"

    @property
    def key_id(self) -> str:
        """First 8 bytes of SHA-256 of the key, hex."""
        return key_id(self.raw)

    def to_text(self) -> str:
        """``gwseal-public:v1:<base64url>``."""
        return PUBLIC_PREFIX + _b64e(self.raw)


@dataclass(frozen=True)
class PrivateKey:
    """A sealing private key; ``repr`` never shows the key material."""

    raw: bytes

    def __repr__(self) -> str:
        return f"PrivateKey(key_id={self.public_key().key_id})"

    def public_key(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(_x25519(self.raw)[1])

    def to_text(self) -> str:
        """``gwseal-private:v1:<base64url>`` (the value of GWCONFIG_SEALING_KEY)."""
        return PRIVATE_PREFIX + _b64e(self.raw)


@lru_cache(maxsize=16)
def _x25519(raw: bytes) -> tuple[X25519PrivateKey, bytes]:
    """The key object and raw public key of a private key (cached: derivation is not free)."""
    priv = X25519PrivateKey.from_private_bytes(raw)
    pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return priv, pub


def generate_keypair() -> tuple[PrivateKey, PublicKey]:
    """A fresh X25519 key pair."""
    priv = X25519PrivateKey.generate()
    key = PrivateKey(priv.private_bytes_raw())
    return key, key.public_key()


def parse_public_key(text: str, source: str = "<memory>") -> PublicKey:
    """Parse ``gwseal-public:v1:...`` (lines starting with ``#`` and blank lines are ignored)."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    raw = b""
    if len(lines) == 1 and lines[0].startswith(PUBLIC_PREFIX):
        try:
            raw = _b64d(lines[0][len(PUBLIC_PREFIX) :])
        except ValueError:
            raw = b""
    if len(raw) != _PUB_LEN:
        raise SealingError(
            f"{source}: not a gwconfig sealing public key (one line {PUBLIC_PREFIX}<base64url>)"
        )
    return PublicKey(raw, source)


def load_public_key(path: Path) -> PublicKey:
    """Read a public key file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SealingError(f"cannot read public key {path}: {exc.__class__.__name__}") from None
    return parse_public_key(text, str(path))


def write_public_key_text(key: PublicKey) -> str:
    """The content of a ``.pub`` file: a comment with the key id, then the key."""
    return f"# gwconfig sealing public key, key id {key.key_id}\n{key.to_text()}\n"


@lru_cache(maxsize=8)
def _parse_private_keys(value: str) -> dict[str, PrivateKey]:
    keys: dict[str, PrivateKey] = {}
    for n, item in enumerate((x for x in re.split(r"[,\s]+", value) if x), start=1):
        raw = b""
        if item.startswith(PRIVATE_PREFIX):
            try:
                raw = _b64d(item[len(PRIVATE_PREFIX) :])
            except ValueError:
                raw = b""
        if len(raw) != 32:
            what = "a public key" if item.startswith(PUBLIC_PREFIX) else "not a private key"
            raise SealingError(
                f"{SEALING_KEY_ENV} entry {n} is {what} (expected {PRIVATE_PREFIX}...)",
                hint=_KEY_HINT,
            )
        key = PrivateKey(raw)
        keys[key.public_key().key_id] = key
    return keys


def private_keys_from_env(environ: Mapping[str, str] | None = None) -> dict[str, PrivateKey]:
    """Private keys from ``GWCONFIG_SEALING_KEY`` by key id; SealingError when unset/malformed."""
    value = (os.environ if environ is None else environ).get(SEALING_KEY_ENV, "")
    if not value.strip():
        raise SealingError(
            f"{SEALING_KEY_ENV} is not set: sealed values cannot be opened", hint=_KEY_HINT
        )
    return _parse_private_keys(value)


@dataclass(frozen=True)
class SealedBlob:
    """A parsed (not yet opened) sealed value."""

    key_id: str
    ephemeral: bytes
    nonce: bytes
    scope: SealedScope
    header: bytes
    ciphertext: bytes


def _encode_scope(scope: SealedScope) -> bytes:
    out = bytearray()
    for part in scope:
        data = part.encode("utf-8")
        if not data or len(data) > 255:
            raise SealingError(f"scope part {part!r} must be 1 to 255 bytes")
        out += bytes([len(data)]) + data
    return bytes(out)


def parse_blob(blob: str) -> SealedBlob:
    """Parse a ``gwseal:v1:...`` string without opening it; SealingError when malformed."""
    if not isinstance(blob, str) or not BLOB_PATTERN.fullmatch(blob):
        raise SealingError(
            "sealed value is malformed: expected gwseal:v1:<base64url> from 'gwconfig seal'"
        )
    try:
        data = _b64d(blob[len(BLOB_PREFIX) :])
    except ValueError as exc:
        raise SealingError(f"sealed value is malformed: {exc}") from None
    pos = _KID_LEN + _PUB_LEN + _NONCE_LEN
    parts: list[str] = []
    try:
        for _ in range(3):
            n = data[pos]
            if n == 0 or pos + 1 + n > len(data):
                raise ValueError
            parts.append(data[pos + 1 : pos + 1 + n].decode("utf-8"))
            pos += 1 + n
    except (IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        raise SealingError("sealed value is malformed: truncated or corrupt header") from None
    if len(data) - pos < _TAG_LEN:
        raise SealingError("sealed value is malformed: truncated ciphertext")
    return SealedBlob(
        key_id=data[:_KID_LEN].hex(),
        ephemeral=data[_KID_LEN : _KID_LEN + _PUB_LEN],
        nonce=data[_KID_LEN + _PUB_LEN : _KID_LEN + _PUB_LEN + _NONCE_LEN],
        scope=(parts[0], parts[1], parts[2]),
        header=data[:pos],
        ciphertext=data[pos:],
    )


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_HKDF_INFO)
    return hkdf.derive(shared)


def seal(plaintext: str, scope: SealedScope, public_key: PublicKey, *, stable: bool = False) -> str:
    """Seal ``plaintext`` for ``scope`` to ``public_key``; returns ``gwseal:v1:<base64url>``.

    ``stable`` (``dump``/``import``): the ephemeral key and nonce are derived from the
    plaintext, scope and recipient (HMAC-SHA256 keyed by the plaintext), so the same value
    sealed again gives the same blob and a re-run rewrites no file. The blob then reveals
    that two values are equal, and lets anyone holding it confirm a guess of the plaintext:
    right for high-entropy secrets (API keys), not for guessable ones.
    """
    if not plaintext:
        raise SealingError("refusing to seal an empty value")
    scope_bytes = _encode_scope(scope)
    if stable:
        secret = plaintext.encode("utf-8")
        context = _STABLE_INFO + public_key.raw + scope_bytes
        eph = X25519PrivateKey.from_private_bytes(
            hmac.new(secret, context + b"\x01", hashlib.sha256).digest()
        )
        nonce = hmac.new(secret, context + b"\x02", hashlib.sha256).digest()[:_NONCE_LEN]
    else:
        eph = X25519PrivateKey.generate()
        nonce = os.urandom(_NONCE_LEN)
    eph_pub = eph.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    shared = eph.exchange(X25519PublicKey.from_public_bytes(public_key.raw))
    header = bytes.fromhex(public_key.key_id) + eph_pub + nonce + scope_bytes
    aead = AESGCM(_derive(shared, eph_pub, public_key.raw))
    ciphertext = aead.encrypt(nonce, plaintext.encode("utf-8"), _AAD_PREFIX + header)
    return BLOB_PREFIX + _b64e(header + ciphertext)


def open_blob(blob: str, keys: Mapping[str, PrivateKey] | None = None) -> tuple[SealedScope, str]:
    """Authenticate and open a blob with ``keys`` (default: from the environment)."""
    parsed = parse_blob(blob)
    keys = private_keys_from_env() if keys is None else keys
    key = keys.get(parsed.key_id)
    if key is None:
        held = ", ".join(sorted(keys)) or "none"
        raise SealingError(
            f"sealed value for {describe_scope(parsed.scope)} was sealed to key id "
            f"{parsed.key_id}, but {SEALING_KEY_ENV} holds key id(s) {held} "
            "(wrong key, or the value was altered)",
            hint=_KEY_HINT,
        )
    priv, recipient = _x25519(key.raw)
    try:
        shared = priv.exchange(X25519PublicKey.from_public_bytes(parsed.ephemeral))
        aead = AESGCM(_derive(shared, parsed.ephemeral, recipient))
        data = aead.decrypt(parsed.nonce, parsed.ciphertext, _AAD_PREFIX + parsed.header)
        plaintext = data.decode("utf-8")
    except (InvalidTag, ValueError):
        raise SealingError(
            f"sealed value for {describe_scope(parsed.scope)} failed authentication: "
            "it was altered or corrupted",
            hint="seal the value again with 'gwconfig seal'",
        ) from None
    return parsed.scope, plaintext


def unseal(blob: str, scope: SealedScope) -> str:
    """Open a sealed value for ``scope`` with the private keys in ``GWCONFIG_SEALING_KEY``."""
    sealed_scope, plaintext = open_blob(blob)
    if tuple(sealed_scope) != tuple(scope):
        raise SealingError(
            f"sealed value was sealed for {describe_scope(sealed_scope)}, "
            f"used for {describe_scope(scope)}",
            hint="a sealed value only opens where it was sealed for; seal it again with "
            "'gwconfig seal' for this provider, name and environment",
        )
    return plaintext


# --- offline checks (validate) and checks with the private key (plan/apply) -------------------


def find_public_keys(search_dirs: Sequence[Path]) -> tuple[list[PublicKey], list[Diagnostic]]:
    """Every gwconfig public key (``*.pub``, hidden directories skipped) under ``search_dirs``."""
    keys: list[PublicKey] = []
    diags: list[Diagnostic] = []
    files: set[Path] = set()
    for d in search_dirs:
        d = Path(d)
        if d.is_file() and d.suffix == ".pub":
            files.add(d)
        elif d.is_dir():
            for top, dirs, names in os.walk(d):
                dirs[:] = [x for x in dirs if not x.startswith(".")]  # .git, .venv, ...
                files.update(Path(top, n) for n in names if n.endswith(".pub"))
    for path in sorted(files):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if PUBLIC_PREFIX not in text:
            continue  # e.g. an SSH key: not ours
        try:
            keys.append(parse_public_key(text, str(path)))
        except SealingError:
            msg = f"not a gwconfig sealing public key (one line {PUBLIC_PREFIX}<base64url>)"
            diags.append(Diagnostic(str(path), 1, 1, msg))
    return keys, diags


def sealed_references(config: CompiledConfig) -> Iterator[tuple[str, SealedScope, str]]:
    """``(source key, scope, blob)`` for every sealed value in a compiled configuration."""
    for p in config.data.get("providers", []):
        pid = p["provider_id"]
        for k in p.get("api_keys", []):
            value = k.get("value")
            if isinstance(value, Mapping) and "sealed" in value:
                source = f"{pid}/key:{k['name']}@{k['environment']}"
                yield source, (pid, k["name"], k["environment"]), value["sealed"]
        for c in p.get("connection_parameters", []):
            value = c.get("value")
            if isinstance(value, Mapping) and "sealed" in value:
                source = f"{pid}/param:{c['name']}@{c['environment']}"
                yield source, (pid, f"param:{c['name']}", c["environment"]), value["sealed"]


def _locate(config: CompiledConfig, source: str, message: str, hint: str | None) -> Diagnostic:
    ref = config.sources.get(source) or config.sources.get(source.split("/", 1)[0])
    if ref is None:
        return Diagnostic("<compiled>", 1, 1, f"{source}: {message}", hint=hint)
    return Diagnostic(ref.path, ref.line, ref.col, message, hint=hint)


def check_sealed_references(
    config: CompiledConfig, search_dirs: Sequence[Path]
) -> list[Diagnostic]:
    """Offline check (no private key): blobs well formed, scoped right, sealed to a known key."""
    refs = list(sealed_references(config))
    if not refs:
        return []
    keys, diags = find_public_keys(search_dirs)
    known = {k.key_id: k for k in keys}
    where = ", ".join(str(d) for d in search_dirs) or "."
    for source, scope, blob in refs:
        try:
            parsed = parse_blob(blob)
        except SealingError as exc:
            diags.append(_locate(config, source, exc.message, exc.hint))
            continue
        if tuple(parsed.scope) != scope:
            msg = f"sealed value was sealed for {describe_scope(parsed.scope)}, used for "
            msg += describe_scope(scope)
            diags.append(_locate(config, source, msg, "seal it again with 'gwconfig seal'"))
        if not known:
            msg = f"sealed value but no sealing public key (*.pub) found in {where}"
            hint = "commit the public key from 'gwconfig seal-keygen' as providers.d/sealing.pub"
            diags.append(_locate(config, source, msg, hint))
        elif parsed.key_id not in known:
            msg = f"sealed to key id {parsed.key_id}, which is not a public key of this "
            msg += f"repository (known: {', '.join(sorted(known))})"
            hint = "re-seal with 'gwconfig seal' or 'gwconfig reseal' to the current public key"
            diags.append(_locate(config, source, msg, hint))
    return sorted(diags)


def verify_sealed_references(
    config: CompiledConfig, keys: Mapping[str, PrivateKey] | None = None
) -> list[Diagnostic]:
    """Open every sealed value (plaintext discarded) and report failures at their file:line."""
    diags: list[Diagnostic] = []
    for source, scope, blob in sealed_references(config):
        try:
            sealed_scope, _ = open_blob(blob, keys if keys is not None else private_keys_from_env())
        except SealingError as exc:
            diags.append(_locate(config, source, exc.message, exc.hint))
            continue
        if tuple(sealed_scope) != scope:
            msg = f"sealed value was sealed for {describe_scope(sealed_scope)}, used for "
            diags.append(_locate(config, source, msg + describe_scope(scope), None))
    return sorted(diags)
