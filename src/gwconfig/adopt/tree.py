"""Putting rendered manifests in place: only changed files rewritten, never a partial directory.

A directory that does not exist yet is built beside it under a temporary name and renamed into
place, so an error leaves nothing behind. In an existing directory each changed file is written
to a temporary file next to it and moved over the old one with ``os.replace`` (readers see the
old or the new content, never a mix); files whose bytes are unchanged are not touched, so git
shows exactly the lines that changed. Pruning removes only top-level ``*.yaml``/``*.yml`` files
made of ``kind: Provider`` / ``Gateway`` / ``Consumer`` documents (what the writer produces)
that were not produced this time: ``sealing.pub``, READMEs, templates and subdirectories are never
touched.

Before anything is written, :func:`losses` lists what the write would lose: each file it would
remove, and each file it would overwrite without some of its documents or routes. With a
``confirm`` callback, a write that loses anything goes ahead only when it answers yes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gwconfig.errors import GwconfigError
from gwconfig.words import plural

#: a file larger than this is never taken for one of ours (and never read whole to find out)
MAX_PRUNE_BYTES = 256 * 1024 * 1024
_KIND = re.compile(r"^kind:[ \t]*['\"]?([A-Za-z]+)['\"]?[ \t]*(?:#.*)?$", re.MULTILINE)
_OURS = frozenset(["Provider", "Gateway", "Consumer"])


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


def _manifest_kinds(path: Path) -> set[str]:
    """The ``kind:`` values of a regular file of ours, or nothing when it is not one."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PRUNE_BYTES:
            return set()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    kinds = set(_KIND.findall(text))
    return kinds if kinds <= _OURS else set()


def is_written_manifest(path: Path, kinds: frozenset[str] = _OURS) -> bool:
    """True for a regular file of Provider/Gateway documents only (one the writer could write);
    with ``kinds``, of documents of those kinds only."""
    found = _manifest_kinds(path)
    return bool(found) and found <= kinds


def _prunable(out: Path, files: Mapping[str, bytes], kinds: frozenset[str]) -> list[Path]:
    return [
        path
        for path in sorted(out.iterdir())
        if path.suffix in (".yaml", ".yml")
        and path.name not in files
        and is_written_manifest(path, kinds)
    ]


def _contents(text: str, path: str) -> set[str]:
    """What a manifest file holds, as words for a message: its documents and its routes."""
    from gwconfig.manifests.yamlparse.loader import load_yaml

    found: set[str] = set()
    docs, _ = load_yaml(text, path)
    for doc in docs:
        data = doc.data if isinstance(doc.data, dict) else {}
        kind = data.get("kind")
        if kind == "Provider":
            found.add(f"provider {data.get('provider_id')}")
        elif kind == "Consumer":
            found.add(f"consumer {data.get('name')}")
        elif kind == "Gateway":
            found.add("the gateway document")
            for route in data.get("routes") or ():
                if isinstance(route, dict) and route.get("name") is not None:
                    found.add(f"route {route['name']}")
    return found


def losses(
    files: Mapping[str, bytes],
    out_dir: Path,
    *,
    prune: bool = True,
    prune_kinds: frozenset[str] = _OURS,
) -> list[str]:
    """What writing ``files`` into ``out_dir`` would lose: ``PATH (removed)`` for each file it
    would prune, ``PATH: loses provider X, route Y`` for each it would overwrite without them."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    lost = [f"{path} (removed)" for path in (_prunable(out, files, prune_kinds) if prune else [])]
    for rel in sorted(files):
        path = out / rel
        if not _manifest_kinds(path):
            continue
        try:
            old = path.read_text(encoding="utf-8")
            new = files[rel].decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if old == new:
            continue
        gone = _contents(old, str(path)) - _contents(new, str(path))
        if gone:
            lost.append(f"{path}: loses {', '.join(sorted(gone))}")
    return lost


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


def write_tree(
    files: Mapping[str, bytes],
    out_dir: Path,
    *,
    prune: bool = True,
    prune_kinds: frozenset[str] = _OURS,
    confirm: Callable[[list[str]], bool] | None = None,
) -> WriteReport:
    """Write ``files`` (relative path -> bytes) under ``out_dir``; see the module docstring.

    Pruning removes files of ``prune_kinds`` documents only. With ``confirm``, a write that
    would lose anything (see :func:`losses`) asks it first and, refused, writes nothing
    (:class:`WriteError`).
    """
    _check_paths(files)
    out = Path(out_dir)
    try:
        if not out.exists():
            return _fresh(files, out)
        if not out.is_dir():
            raise WriteError(f"{out} exists and is not a directory")
        if confirm is not None:
            lost = losses(files, out, prune=prune, prune_kinds=prune_kinds)
            if lost and not confirm(lost):
                raise WriteError(
                    f"writing into {out} would lose {plural(len(lost), 'file')}; "
                    "nothing was written",
                    hint="pass --force to write anyway, or --out a new directory",
                )
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
            for path in _prunable(out, files, prune_kinds):
                path.unlink()
                removed.append(path.name)
        return WriteReport(written=written, unchanged=unchanged, removed=removed)
    except OSError as exc:
        raise WriteError(f"cannot write {out}: {exc.strerror or exc}") from None
