"""Putting rendered manifests in place: only changed files rewritten, never a partial directory.

A directory that does not exist yet is built beside it under a temporary name and renamed into
place, so an error leaves nothing behind. In an existing directory each changed file is written
to a temporary file next to it and moved over the old one with ``os.replace`` (readers see the
old or the new content, never a mix); files whose bytes are unchanged are not touched, so git
shows exactly the lines that changed. Pruning removes only top-level ``*.yaml``/``*.yml`` files
made of ``kind: Provider`` / ``kind: Gateway`` documents (what the writer produces) that were
not produced this time: ``sealing.pub``, READMEs, templates and subdirectories are never
touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gwconfig.errors import GwconfigError

#: a file larger than this is never taken for one of ours (and never read whole to find out)
MAX_PRUNE_BYTES = 256 * 1024 * 1024
_KIND = re.compile(r"^kind:[ \t]*['\"]?([A-Za-z]+)['\"]?[ \t]*(?:#.*)?$", re.MULTILINE)
_OURS = frozenset(["Provider", "Gateway"])


class WriteError(GwconfigError):
    """The output directory cannot be written (nothing partial is left in a new directory)."""


@dataclass(frozen=True)
class WriteReport:
    """Relative paths written (new or changed), left unchanged, and removed (pruned)."""

    written: list[str]
    unchanged: list[str]
    removed: list[str]


def _check_paths(files: Mapping[str, bytes]) -> None:
    for rel in files:
        parts = PurePosixPath(rel).parts
        if not parts or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise WriteError(f"refusing to write {rel!r}: not a plain relative path")


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a fresh temporary file beside ``path``, then replace ``path`` with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    mode = 0o666
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode & 0o777  # keep the mode of the file being replaced
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def is_written_manifest(path: Path) -> bool:
    """True for a regular file of Provider/Gateway documents only (one the writer could write)."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PRUNE_BYTES:
            return False
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    kinds = set(_KIND.findall(text))
    return bool(kinds) and kinds <= _OURS


_PROVIDER_ID = re.compile(r"^provider_id:[ \t]*['\"]?([^'\"\s#]+)", re.MULTILINE)


def other_definitions(out_dir: Path, files: Mapping[str, bytes], ids: set[str]) -> list[str]:
    """``path: provider X`` for files under ``out_dir`` not written by us that declare one of
    ``ids`` (a template ``*.yaml.j2``, a file in a subdirectory): ``validate`` would then see
    the provider twice. Hidden directories and files larger than :data:`MAX_PRUNE_BYTES` are
    skipped."""
    found: list[str] = []
    out = Path(out_dir)
    if not out.is_dir():
        return found
    for top, dirs, names in os.walk(out):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(top, name)
            rel = path.relative_to(out).as_posix()
            if rel in files or not name.endswith((".yaml", ".yml", ".yaml.j2", ".yml.j2")):
                continue
            try:
                if path.stat().st_size > MAX_PRUNE_BYTES:
                    continue
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for pid in sorted(set(_PROVIDER_ID.findall(text)) & ids):
                found.append(f"{path}: also defines provider {pid}")
    return found


def _fresh(files: Mapping[str, bytes], out: Path) -> WriteReport:
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        for rel, data in files.items():
            _write_new(tmp / rel, data)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return WriteReport(written=sorted(files), unchanged=[], removed=[])


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_tree(files: Mapping[str, bytes], out_dir: Path, *, prune: bool = True) -> WriteReport:
    """Write ``files`` (relative path -> bytes) under ``out_dir``; see the module docstring."""
    _check_paths(files)
    out = Path(out_dir)
    try:
        if not out.exists():
            return _fresh(files, out)
        if not out.is_dir():
            raise WriteError(f"{out} exists and is not a directory")
        written: list[str] = []
        unchanged: list[str] = []
        for rel in sorted(files):
            path = out / rel
            try:
                same = path.is_file() and path.read_bytes() == files[rel]
            except OSError:
                same = False
            if same:
                unchanged.append(rel)
            else:
                _write_new(path, files[rel])
                written.append(rel)
        removed: list[str] = []
        if prune:
            for path in sorted(out.iterdir()):
                ours = path.suffix in (".yaml", ".yml") and path.name not in files
                if ours and is_written_manifest(path):
                    path.unlink()
                    removed.append(path.name)
        return WriteReport(written=written, unchanged=unchanged, removed=removed)
    except OSError as exc:
        raise WriteError(f"cannot write {out}: {exc.strerror or exc}") from None
