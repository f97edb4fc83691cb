"""Manifest files -> YAML documents with positions (templates rendered first)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gwconfig.manifests.discovery as discovery
from gwconfig.errors import Diagnostic, ManifestInputError
from gwconfig.manifests.diagnostics import clip, closest
from gwconfig.manifests.documents import RawDocument
from gwconfig.manifests.limits import (
    DEFAULT_MAX_FILE_SIZE,
    MIB,
    TOTAL_SIZE_VAR,
    Limits,
    ReadProblem,
    format_size,
    read_limited,
)
from gwconfig.manifests.yamlparse.fast import ParseCache, parse_fast


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
    docs, diags, _ = parse_yaml(text, path)
    return docs, diags


def parse_yaml(text: str, path: str) -> tuple[list[RawDocument], list[Diagnostic], bool]:
    """Like :func:`load_yaml`, plus whether every document of the file was read."""
    from gwconfig.manifests.yamlparse.loader import parse_yaml as reference  # PyYAML

    return reference(text, path)


def display_path(path: Path) -> str:
    """The path as shown in diagnostics: relative to the working directory when possible."""
    try:
        return path.absolute().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def load_values(
    root: Path, env: str, max_size: int = DEFAULT_MAX_FILE_SIZE
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """The values file of ``env`` as a mapping (see :func:`discovery.values_file_candidates`)."""
    candidates = discovery.values_file_candidates(root, env)
    for candidate in candidates:
        if candidate.is_file():
            shown = display_path(candidate)
            raw, problem = _read(candidate, shown, max_size)
            if raw is None:
                return {}, [problem] if problem else []
            text, diags = decode(raw, shown)
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


def _read(path: Path, shown: str, max_size: int) -> tuple[bytes | None, Diagnostic | None]:
    """The bytes of a manifest file, or the diagnostic saying why it cannot be read."""
    try:
        return read_limited(path, max_size), None
    except ReadProblem as exc:
        return None, Diagnostic(shown, 1, 1, exc.message, hint=exc.hint)
    except OSError as exc:
        return None, Diagnostic(shown, 1, 1, f"cannot read file: {exc.strerror or exc}")


@dataclass
class Loaded:
    """The documents of one manifest file, its problems, and whether it was read whole.

    ``complete`` is False when the file could not be read, rendered or parsed to its end (or a
    document of it was dropped): documents declared in it may be missing.
    """

    docs: list[RawDocument]
    diagnostics: list[Diagnostic]
    complete: bool = True


def read_file(
    path: Path,
    shown: str,
    *,
    env: str | None,
    values: dict[str, Any] | None,
    positions: bool = True,
    cache: ParseCache | None = None,
    entities: bool = False,
    max_size: int = DEFAULT_MAX_FILE_SIZE,
) -> Loaded:
    """Read one manifest file (rendering it first if it is a template).

    ``positions=False`` lets the fast path skip recording positions; documents then compute
    them on demand (only those with a problem ever do). ``entities=True`` still records, at
    parse time, the positions compiled sources need (see
    :func:`~gwconfig.manifests.yamlparse.fast.parse_fast`). A file over ``max_size`` bytes is
    not read (see :mod:`gwconfig.manifests.limits`).
    """
    raw, problem = _read(path, shown, max_size)
    if raw is None:
        return Loaded([], [problem] if problem else [], complete=False)
    text, diags = decode(raw, shown)
    if text is None:
        return Loaded([], diags, complete=False)
    line_map = None
    complete = True
    if discovery.is_template(path):
        from gwconfig.manifests.templates.render import render  # Jinja2 only for templates

        rendered, diags = render(text, shown, env=env, values=values or {})
        if rendered is None:
            return Loaded([], diags, complete=False)
        text, line_map = rendered.text, rendered.line_map
        fast = parse_fast(text, shown, positions=True, cache=cache)
        docs, diags, complete = (*fast, True) if fast is not None else parse_yaml(text, shown)
        diags = [_remap(d, line_map) for d in diags]
    else:
        fast = parse_fast(text, shown, positions=positions, cache=cache, entities=entities)
        docs, diags, complete = (*fast, True) if fast is not None else parse_yaml(text, shown)
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
    return Loaded(docs, diags, complete)


def _remap(d: Diagnostic, line_map: tuple[int, ...]) -> Diagnostic:
    line = line_map[min(max(d.line, 1), len(line_map)) - 1] if line_map else d.line
    return Diagnostic(d.path, line, 1, d.message + " (in the rendered template)", hint=d.hint)


@dataclass
class FilePlan:
    """The manifest files of a run (path, shown path, size), the template values, the limits.

    ``diagnostics`` are problems found before reading (links pointing outside the manifest
    directory, the values file); ``unread`` the shown paths of manifests that are not read.
    """

    files: list[tuple[Path, str]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    values: dict[str, Any] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)


def plan_files(root: Path, *, env: str | None = None) -> FilePlan:
    """Find the manifest files under ``root`` and load the values file templates need.

    Raises :class:`ManifestInputError` when ``root`` does not exist or its manifests are over
    the total size limit, and :class:`~gwconfig.errors.ConfigurationError` for a bad limit.
    """
    plan = FilePlan(limits=Limits.from_env())
    shown_root = display_path(root)
    if not root.exists():
        raise ManifestInputError(
            f"no such file or directory: {clip(shown_root)}", hint=_nearby(root)
        )
    found = discovery.discover(root)
    base = shown_root if root.is_dir() else display_path(root.parent)
    for rel, target in found.outside:
        shown = _join(base, rel)
        plan.unread.append(shown)
        plan.diagnostics.append(
            Diagnostic(
                shown,
                1,
                1,
                f"symbolic link to {clip(target)}, outside the manifest directory {clip(base)}",
                hint="links are followed only inside the manifest directory; copy the file in",
            )
        )
    if not found.files and not found.outside:
        plan.diagnostics.append(
            Diagnostic(
                shown_root,
                0,
                0,
                "no manifest files found",
                hint="manifests are *.yaml, *.yml, *.yaml.j2 or *.yml.j2 files",
            )
        )
        return plan
    plan.sizes = [_size(path) for path, _ in found.files]
    total = sum(plan.sizes)
    if total > plan.limits.max_total_size:
        raise ManifestInputError(
            f"the manifests under {clip(shown_root)} are {format_size(total)} together, over "
            f"the limit of {format_size(plan.limits.max_total_size)}",
            hint=f"raise the limit with {TOTAL_SIZE_VAR} (e.g. {TOTAL_SIZE_VAR}="
            f"{-(-2 * total // MIB)}MiB)",
        )
    if any(discovery.is_template(f) for f, _ in found.files):
        plan.values = {}
        if env is not None:
            plan.values, diags = load_values(root, env, plan.limits.max_file_size)
            plan.diagnostics.extend(diags)
    for path, rel in found.files:
        shown = display_path(path) if root.is_file() else _join(base, rel)
        plan.files.append((path, shown))
    return plan


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _nearby(root: Path) -> str | None:
    """``did you mean 'providers.d'?`` for a path that does not exist, from its siblings."""
    parent = root.parent
    try:
        names = [e.name for e in os.scandir(parent) if not e.name.startswith(".")]
    except OSError:
        return None
    match = closest(root.name, names)
    if match is None:
        return None
    return f"did you mean '{clip(display_path(parent / match))}'?"


def _join(base: str, rel: str) -> str:
    return rel if base in ("", ".") else f"{base.rstrip('/')}/{rel}"
