"""Finding manifest files and the values file of an environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_SUFFIXES = (".yaml", ".yml")
TEMPLATE_SUFFIXES = (".yaml.j2", ".yml.j2")
_ALL_SUFFIXES = MANIFEST_SUFFIXES + TEMPLATE_SUFFIXES


def is_template(path: Path) -> bool:
    """True for ``*.yaml.j2`` / ``*.yml.j2`` files."""
    return path.name.endswith(TEMPLATE_SUFFIXES)


def is_manifest(path: Path) -> bool:
    """True for files the loader reads: YAML manifests and their Jinja2 templates."""
    return path.name.endswith(MANIFEST_SUFFIXES) or is_template(path)


@dataclass
class Found:
    """The manifest files under a root, and the entries that must not be read."""

    #: (path, relative POSIX path), sorted by relative path
    files: list[tuple[Path, str]] = field(default_factory=list)
    #: (relative POSIX path, target) of symbolic links that point outside the root
    outside: list[tuple[str, str]] = field(default_factory=list)


def discover(root: Path) -> Found:
    """Every manifest file under ``root`` (or ``root`` itself) with its relative POSIX path.

    Sorted by relative path; hidden files and directories (names starting with '.') are skipped.
    A symbolic link (to a file or a directory) that points outside ``root`` is not followed but
    listed in ``outside``; a link to a file inside is read like the file, and a link to a
    directory inside is not descended (its target is read where it is).
    """
    found = Found()
    if root.is_file():
        found.files.append((root, root.name))
        return found
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(folder, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in dirs:  # os.walk does not descend into links; those pointing out are errors
            full = os.path.join(folder, name)
            if os.path.islink(full) and not _inside(full, real_root):
                found.outside.append((prefix + name, os.path.realpath(full)))
        for name in files:
            if not name.startswith(".") and name.endswith(_ALL_SUFFIXES):
                full = os.path.join(folder, name)
                if os.path.islink(full) and not _inside(full, real_root):
                    found.outside.append((prefix + name, os.path.realpath(full)))
                else:
                    found.files.append((Path(full), prefix + name))
    found.files.sort(key=lambda item: item[1])
    found.outside.sort()
    return found


def _inside(link: str, real_root: str) -> bool:
    target = os.path.realpath(link)
    return target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep)


def manifest_dir(root: Path) -> Path:
    """The directory holding the manifests (``root`` itself or the file's directory)."""
    return root if root.is_dir() else root.parent


def values_file_candidates(root: Path, env: str) -> list[Path]:
    """Where the values file of ``env`` is looked up, first match wins.

    ``environments/ENV.yaml`` (or ``.yml``) next to the manifest directory (so
    ``providers.d/`` pairs with ``environments/``), then ``environments/`` in the working directory.
    """
    base = manifest_dir(root)
    out: list[Path] = []
    for folder in (base.absolute().parent / "environments", Path.cwd() / "environments"):
        for suffix in (".yaml", ".yml"):
            out.append(folder / f"{env}{suffix}")
    return out
