"""Finding manifest files and the values file of an environment."""

from __future__ import annotations

import os
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


def discover(root: Path) -> list[tuple[Path, str]]:
    """Every manifest file under ``root`` (or ``root`` itself) with its relative POSIX path.

    Sorted by relative path; hidden files and directories (names starting with '.') are skipped.
    """
    if root.is_file():
        return [(root, root.name)]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_dir = os.path.relpath(folder, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in files:
            if not name.startswith(".") and name.endswith(_ALL_SUFFIXES):
                found.append((Path(folder, name), prefix + name))
    found.sort(key=lambda item: item[1])
    return found


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
