"""Sealed values in files: ``reseal`` of manifests, key pair files, the default public key.

The cryptography and the checks live in :mod:`gwconfig.secrets.sealing`; this module does the file
I/O.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwconfig.errors import Diagnostic, ManifestError, SealingError
from gwconfig.secrets.sealing import (
    BLOB_PATTERN,
    SEALING_KEY_ENV,
    PrivateKey,
    PublicKey,
    find_public_keys,
    generate_keypair,
    load_public_key,
    open_blob,
    parse_blob,
    private_keys_from_env,
    seal,
    write_public_key_text,
)

MANIFEST_SUFFIXES = (".yaml", ".yml", ".yaml.j2", ".yml.j2")


# --- reseal -----------------------------------------------------------------------------------


def manifest_files(paths: Iterable[Path]) -> list[Path]:
    """YAML files and ``.j2`` templates under ``paths`` (hidden ones skipped), sorted."""
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.is_file():
            found.add(p)
        elif p.is_dir():
            found.update(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.name.endswith(MANIFEST_SUFFIXES)
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        else:
            raise SealingError(f"{p}: no such file or directory")
    return sorted(found)


@dataclass(frozen=True)
class ResealResult:
    """What ``reseal`` did: values re-sealed, values already on the new key, files written."""

    resealed: int
    unchanged: int
    files: tuple[str, ...]


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    col = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return data.count(b"\n", 0, offset) + 1, col


def default_reseal_paths(manifest_dir: Path) -> list[Path]:
    """The manifest directory plus the ``environments/`` values files next to it, if present."""
    values = manifest_dir.parent / "environments"
    return [manifest_dir, *([values] if values.is_dir() else [])]


_BLOB_BYTES = re.compile(BLOB_PATTERN.pattern.encode("ascii"))


def reseal_files(
    paths: Iterable[Path],
    new_key: PublicKey,
    keys: Mapping[str, PrivateKey] | None = None,
    *,
    dry_run: bool = False,
) -> ResealResult:
    """Re-seal every sealed string in the manifest files to ``new_key``, changing nothing else.

    Files are handled as bytes (any encoding, line endings kept). Every value is opened first; if
    any fails, a ManifestError lists them all and no file is written. Files are replaced
    atomically, keeping their mode. ``keys`` defaults to ``GWCONFIG_SEALING_KEY``.
    """
    plans: list[tuple[Path, bytes]] = []
    diags: list[Diagnostic] = []
    resealed = unchanged = 0
    for path in manifest_files(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SealingError(f"cannot read {path}: {exc.__class__.__name__}") from None
        pieces: list[bytes] = []
        last = 0
        for m in _BLOB_BYTES.finditer(data):
            blob = m.group(0).decode("ascii")
            try:
                if parse_blob(blob).key_id == new_key.key_id:
                    unchanged += 1
                    continue
                if keys is None:  # only needed once there is something to open
                    keys = private_keys_from_env()
                scope, plaintext = open_blob(blob, keys)
                replacement = seal(plaintext, scope, new_key).encode("ascii")
            except SealingError as exc:
                if exc.message.startswith(SEALING_KEY_ENV):
                    raise  # the key itself is missing or malformed: one error, not one per value
                line, col = _position(data, m.start())
                diags.append(Diagnostic(str(path), line, col, exc.message, hint=exc.hint))
                continue
            pieces += [data[last : m.start()], replacement]
            last = m.end()
            resealed += 1
        if pieces:
            pieces.append(data[last:])
            plans.append((path, b"".join(pieces)))
    if diags:
        raise ManifestError(diags)
    if not dry_run:
        for path, new_data in plans:
            _atomic_write(path, new_data)
    return ResealResult(resealed, unchanged, tuple(str(p) for p, _ in plans))


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path``'s content atomically (a symlink's target, mode kept)."""
    target = path.resolve()
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".gwseal-tmp", dir=target.parent
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- key generation ---------------------------------------------------------------------------


def git_work_tree(directory: Path) -> Path | None:
    """The root of the git work tree containing ``directory``, if any."""
    d = directory.resolve()
    for candidate in (d, *d.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


@dataclass(frozen=True)
class KeyPairFiles:
    """Where ``seal-keygen`` wrote a key pair."""

    public_path: Path
    private_path: Path
    key_id: str
    git_root: Path | None


def write_keypair(out_dir: Path, name: str = "sealing", *, force: bool = False) -> KeyPairFiles:
    """Generate a key pair into ``out_dir``: ``NAME.pub`` (0644) and ``NAME.key`` (0600)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise SealingError(f"invalid key name {name!r}: use letters, digits, '.', '_', '-'")
    out_dir.mkdir(parents=True, exist_ok=True)
    pub_path, key_path = out_dir / f"{name}.pub", out_dir / f"{name}.key"
    for p in (pub_path, key_path):
        if p.exists() and not force:
            raise SealingError(f"{p} already exists", hint="use --force to replace it")
    private, public = generate_keypair()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    key_path.unlink(missing_ok=True)  # so the new file is created 0600, not an old mode kept
    fd = os.open(key_path, flags | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(private.to_text() + "\n")
    os.chmod(key_path, 0o600)
    pub_path.write_text(write_public_key_text(public), encoding="ascii")
    return KeyPairFiles(pub_path, key_path, public.key_id, git_work_tree(out_dir))


def read_secret_text(data: Any) -> str:
    """Secret text from stdin bytes/str with exactly one trailing newline (LF or CRLF) removed."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else str(data)
    except UnicodeDecodeError:
        raise SealingError("the secret on standard input is not valid UTF-8") from None
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def default_public_key(manifest_dir: Path = Path("providers.d")) -> PublicKey:
    """``providers.d/sealing.pub``, else the only gwconfig ``*.pub`` under ``providers.d``."""
    preferred = manifest_dir / "sealing.pub"
    if preferred.is_file():
        return load_public_key(preferred)
    keys, _ = find_public_keys([manifest_dir]) if manifest_dir.is_dir() else ([], [])
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise SealingError(
            f"no sealing public key found ({preferred} or *.pub under {manifest_dir})",
            hint="pass --public-key FILE, or create a key pair with 'gwconfig seal-keygen'",
        )
    names = ", ".join(k.source for k in keys)
    raise SealingError(f"several public keys found ({names})", hint="choose one with --public-key")
