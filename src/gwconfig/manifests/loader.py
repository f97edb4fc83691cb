"""Manifest files -> YAML documents with positions (templates rendered first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gwconfig.errors import Diagnostic
from gwconfig.manifests import discovery
from gwconfig.manifests.documents import RawDocument
from gwconfig.manifests.fastyaml import ParseCache, parse_fast


def decode(raw: bytes, path: str) -> tuple[str | None, list[Diagnostic]]:
    """Decode a manifest file as UTF-8 (a BOM is allowed); a bad byte is a diagnostic."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            Diagnostic(
                path,
                line,
                col,
                f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                hint="save the file as UTF-8",
            )
        ]
    return text, []


def load_yaml(text: str, path: str) -> tuple[list[RawDocument], list[Diagnostic]]:
    """The reference loader (imported on first use: the fast path never needs PyYAML)."""
    from gwconfig.manifests.yaml_loader import load_yaml as reference

    return reference(text, path)


def display_path(path: Path) -> str:
    """The path as shown in diagnostics: relative to the working directory when possible."""
    try:
        return path.absolute().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def load_values(root: Path, env: str) -> tuple[dict[str, Any], list[Diagnostic]]:
    """The values file of ``env`` as a mapping (see :func:`discovery.values_file_candidates`)."""
    candidates = discovery.values_file_candidates(root, env)
    for candidate in candidates:
        if candidate.is_file():
            shown = display_path(candidate)
            text, diags = decode(candidate.read_bytes(), shown)
            if text is None:
                return {}, diags
            docs, diags = load_yaml(text, shown)
            if diags:
                return {}, diags
            if len(docs) != 1 or not isinstance(docs[0].data, dict):
                return {}, [Diagnostic(shown, 1, 1, "a values file must hold one mapping")]
            return docs[0].data, []
    shown = display_path(candidates[0])
    return {}, [
        Diagnostic(
            shown,
            1,
            1,
            f"values file for environment '{env}' not found",
            hint="looked in " + ", ".join(dict.fromkeys(display_path(c) for c in candidates[::2])),
        )
    ]


def load_file(
    path: Path,
    shown: str,
    *,
    env: str | None,
    values: dict[str, Any] | None,
    positions: bool = True,
    cache: ParseCache | None = None,
    entities: bool = False,
) -> tuple[list[RawDocument], list[Diagnostic]]:
    """Read one manifest file (rendering it first if it is a template).

    ``positions=False`` lets the fast path skip recording positions; documents then compute
    them on demand (only those with a problem ever do). ``entities=True`` still records, at
    parse time, the positions compiled sources need (see :func:`fastyaml.parse_fast`).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [Diagnostic(shown, 1, 1, f"cannot read file: {exc.strerror or exc}")]
    text, diags = decode(raw, shown)
    if text is None:
        return [], diags
    line_map = None
    if discovery.is_template(path):
        from gwconfig.manifests.templates import render

        rendered, diags = render(text, shown, env=env, values=values or {})
        if rendered is None:
            return [], diags
        text, line_map = rendered.text, rendered.line_map
        fast = parse_fast(text, shown, positions=True, cache=cache)
        docs, diags = fast if fast is not None else load_yaml(text, shown)
        diags = [_remap(d, line_map) for d in diags]
    else:
        fast = parse_fast(text, shown, positions=positions, cache=cache, entities=entities)
        docs, diags = fast if fast is not None else load_yaml(text, shown)
        if fast is not None and not positions:
            source = text

            def reload() -> list[RawDocument]:
                again = parse_fast(source, shown, positions=True)
                return again[0] if again is not None else load_yaml(source, shown)[0]

            for doc in docs:
                doc.reload = reload
    for doc in docs:
        doc.line_map = line_map
    if not docs and not diags:
        line = 1 if line_map is None else line_map[0]
        diags.append(
            Diagnostic(
                shown, line, 1, "file contains no documents", hint="delete the file or add one"
            )
        )
    return docs, diags


def _remap(d: Diagnostic, line_map: tuple[int, ...]) -> Diagnostic:
    line = line_map[min(max(d.line, 1), len(line_map)) - 1] if line_map else d.line
    return Diagnostic(d.path, line, 1, d.message + " (in the rendered template)", hint=d.hint)


@dataclass
class FilePlan:
    """The manifest files of a run (path, shown path), the template values, early problems."""

    files: list[tuple[Path, str]] = field(default_factory=list)
    values: dict[str, Any] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def plan_files(root: Path, *, env: str | None = None) -> FilePlan:
    """Find the manifest files under ``root`` and load the values file templates need."""
    plan = FilePlan()
    shown_root = display_path(root)
    if not root.exists():
        plan.diagnostics.append(Diagnostic(shown_root, 1, 1, "no such file or directory"))
        return plan
    files = discovery.discover(root)
    if not files:
        plan.diagnostics.append(
            Diagnostic(
                shown_root,
                1,
                1,
                "no manifest files found",
                hint="manifests are *.yaml, *.yml, *.yaml.j2 or *.yml.j2 files",
            )
        )
        return plan
    if any(discovery.is_template(f) for f, _ in files):
        plan.values = {}
        if env is not None:
            plan.values, diags = load_values(root, env)
            plan.diagnostics.extend(diags)
    base = shown_root if root.is_dir() else display_path(root.parent)
    for path, rel in files:
        shown = display_path(path) if root.is_file() else _join(base, rel)
        plan.files.append((path, shown))
    return plan


def _join(base: str, rel: str) -> str:
    return rel if base in ("", ".") else f"{base.rstrip('/')}/{rel}"
