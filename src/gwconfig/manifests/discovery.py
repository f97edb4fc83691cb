"""Finding manifest files and the values file of an environment."""

from __future__ import annotations

from pathlib import Path

MANIFEST_SUFFIXES = (".yaml", ".yml")
TEMPLATE_SUFFIXES = (".yaml.j2", ".yml.j2")


def is_template(path: Path) -> bool:
    """True for ``*.yaml.j2`` / ``*.yml.j2`` files."""
    return path.name.endswith(TEMPLATE_SUFFIXES)


def is_manifest(path: Path) -> bool:
    """True for files the loader reads: YAML manifests and their Jinja2 templates."""
    return path.name.endswith(MANIFEST_SUFFIXES) or is_template(path)


def discover(root: Path) -> list[Path]:
    """Every manifest file under ``root`` (or ``root`` itself), in sorted order.

    Hidden files and directories (names starting with '.') are skipped.
    """
    if root.is_file():
        return [root]
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if is_manifest(path) and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


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
