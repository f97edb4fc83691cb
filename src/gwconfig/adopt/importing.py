"""``gwconfig import``: the back-office read, rendered as manifests, written where they changed.

The back-office has providers but no routes: the import owns the ``kind: Provider`` files of the
output directory (a provider gone from the back-office has its file removed) and never touches a
file with a ``kind: Gateway`` document, which the team writes by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gwconfig.adopt.backoffice import Backoffice, read_backoffice
from gwconfig.adopt.mapping import Mapping
from gwconfig.adopt.tree import WriteReport, is_written_manifest, write_tree
from gwconfig.adopt.writer import Rendered, SecretOutput, render_manifests

_KIND = re.compile(r"^kind:[ \t]*['\"]?([A-Za-z]+)['\"]?[ \t]*(?:#.*)?$", re.MULTILINE)


@dataclass(frozen=True)
class ImportResult:
    """What was read, rendered and written."""

    backoffice: Backoffice
    rendered: Rendered
    report: WriteReport


def import_backoffice(
    url: str,
    mapping: Mapping,
    output: SecretOutput,
    out_dir: Path,
    *,
    legacy_decrypt: str | None = None,
) -> ImportResult:
    """Read the back-office at ``url`` and write its manifests into ``out_dir``.

    Nothing is written when reading or rendering fails (the error names the row).
    """
    bo = read_backoffice(url, mapping, legacy_decrypt=legacy_decrypt)
    rendered = render_manifests(bo.data, bo.secrets, output)
    report = write_tree(rendered.files, out_dir, prune=False)
    removed = _prune_providers(out_dir, set(rendered.files))
    return ImportResult(bo, rendered, WriteReport(report.written, report.unchanged, removed))


def _prune_providers(out_dir: Path, produced: set[str]) -> list[str]:
    """Remove the top-level files of Provider documents only that this import did not write."""
    removed = []
    for path in sorted(out_dir.iterdir()):
        if path.suffix not in (".yaml", ".yml") or path.name in produced:
            continue
        if not is_written_manifest(path):  # also: not a regular file, or not ours
            continue
        if set(_KIND.findall(path.read_text(encoding="utf-8"))) == {"Provider"}:
            path.unlink()
            removed.append(path.name)
    return removed
