"""``gwconfig import``: the back-office read, rendered as manifests, written where they changed.

The back-office has providers but no routes: the import owns the ``kind: Provider`` files of the
output directory (a provider gone from the back-office has its file removed) and never touches a
file with a ``kind: Gateway`` document, which the team writes by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gwconfig.adopt.backoffice import Backoffice, read_backoffice
from gwconfig.adopt.mapping import Mapping
from gwconfig.adopt.tree import WriteReport, write_tree
from gwconfig.adopt.writer import Rendered, SecretOutput, render_manifests


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
    confirm: Callable[[list[str]], bool] | None = None,
) -> ImportResult:
    """Read the back-office at ``url`` and write its manifests into ``out_dir``.

    Nothing is written when reading or rendering fails (the error names the row), nor when
    the write would lose files and ``confirm`` refuses (see :func:`~gwconfig.adopt.tree.losses`).
    """
    bo = read_backoffice(url, mapping, legacy_decrypt=legacy_decrypt)
    rendered = render_manifests(bo.data, bo.secrets, output)
    report = write_tree(
        rendered.files, out_dir, prune_kinds=frozenset(["Provider"]), confirm=confirm
    )
    return ImportResult(bo, rendered, report)
