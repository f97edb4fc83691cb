"""Diagnostics: pydantic errors mapped to YAML lines, did-you-mean hints, output formats."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import Any, get_args

from gwconfig.errors import Diagnostic
from gwconfig.manifests.documents import RawDocument

#: A diagnostic shows at most this many characters of a value the user wrote.
MAX_SHOWN = 100


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` for a message: control characters escaped, cut to ``limit`` with an ellipsis.

    Every value a diagnostic repeats goes through here (or :func:`quoted`), so a huge or
    multi-line value (a link to ``/etc/passwd`` read as YAML, say) shows as its first
    characters and its length.
    """
    shown, total = _cut(text, limit)
    return shown if total is None else f"{shown}... ({total} characters)"


def quoted(value: Any, limit: int = MAX_SHOWN) -> str:
    """A value for a message: strings in quotes, other scalars as Python writes them; clipped."""
    if not isinstance(value, str):
        return clip(repr(value), limit)
    shown, total = _cut(value, limit)
    return f"'{shown}'" if total is None else f"'{shown}...' ({total} characters)"


def _cut(text: str, limit: int) -> tuple[str, int | None]:
    shown = text[:limit]
    if not shown.isprintable():
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)
    return shown, len(text) if len(text) > limit else None


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word``, or None when nothing is close."""
    # a word far longer than every choice matches none of them; do not make difflib chew on it
    match = difflib.get_close_matches(str(word)[: 2 * MAX_SHOWN], list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the closest choice, or None when nothing is close."""
    match = closest(word, choices)
    return f"did you mean '{clip(match)}'?" if match is not None else None


def _field_name(loc: Sequence[Any]) -> str:
    names = [clip(p) for p in loc if isinstance(p, str) and not p[:1].isupper() and "[" not in p]
    return ".".join(names)


def _model_fields(model: type[Any], loc: Sequence[Any]) -> list[str]:
    """Field names allowed at ``loc`` (the container of an unknown field), walking the model."""
    from pydantic import BaseModel  # only here: formatting diagnostics needs no pydantic

    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            current = _inner_model(info.annotation) if info is not None else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    """The pydantic model inside ``X | None`` / ``tuple[X, ...]`` annotations, if any."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _describe_input(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return quoted(value)


def pydantic_diagnostics(doc: RawDocument, model: type[Any], exc: Any) -> list[Diagnostic]:
    """Translate a pydantic ``ValidationError`` for ``doc`` into located diagnostics."""
    out: dict[tuple[int, int, str], Diagnostic] = {}
    errors = exc.errors(include_url=False, include_context=True)
    by_field: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for err in errors:
        key = _group_key(err["loc"])
        by_field.setdefault(key, []).append(err)
    for plain_loc, errs in by_field.items():
        field = _field_name(plain_loc)
        # A union reports one error per member; keep only the most telling one.
        if len(errs) > 1 and any(_is_union_tagged(e["loc"]) for e in errs):
            errs = [_best_union_error(errs)]
        for err in errs:
            diag = _one(doc, model, field, err)
            out.setdefault((diag.line, diag.col, diag.message), diag)
    return list(out.values())


def _group_key(loc: Sequence[Any]) -> tuple[Any, ...]:
    """The loc up to the first union tag: every member's error of one value groups together."""
    out = []
    for p in loc:
        if _is_union_tagged([p]):
            break
        out.append(p)
    return tuple(out)


def _is_union_tagged(loc: Sequence[Any]) -> bool:
    return any(isinstance(p, str) and (p[:1].isupper() or "[" in p) for p in loc) or any(
        p in ("str", "int", "float", "bool") for p in loc
    )


def _best_union_error(errs: list[dict[str, Any]]) -> dict[str, Any]:
    value = errs[0].get("input")
    if isinstance(value, dict):
        for e in errs:
            if any(isinstance(p, str) and "SecretRef" in p for p in e["loc"]):
                return e
    return {
        "type": "union",
        "loc": errs[0]["loc"],
        "msg": f"expected a string, number, boolean or secret reference, got "
        f"{_describe_input(value)}",
        "input": value,
    }


def _one(doc: RawDocument, model: type[Any], field: str, err: dict[str, Any]) -> Diagnostic:
    loc = err["loc"]
    kind = err["type"]
    msg = err["msg"]
    hint = None
    if kind == "extra_forbidden":
        line, col = doc.locate(loc, at_key=True)
        name = str(loc[-1])
        container = [p for p in loc[:-1] if not _is_union_tagged([p])]
        hint = did_you_mean(name, _model_fields(model, container))
        where = f" in '{_field_name(container)}'" if _field_name(container) else ""
        return Diagnostic(doc.path, line, col, f"unknown field {quoted(name)}{where}", hint=hint)
    line, col = doc.locate(loc)
    if kind == "missing":
        return Diagnostic(doc.path, line, col, f"missing required field '{field}'")
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        secret_hint = msg.split("; ", 1)
        if len(secret_hint) == 2 and secret_hint[1].startswith("secrets are never"):
            msg, hint = secret_hint[0], secret_hint[1]
        # our validators' messages may repeat what the user wrote: keep them bounded too
        msg = clip(msg, 3 * MAX_SHOWN)
    elif kind == "string_pattern_mismatch":
        msg = f"{_describe_input(err.get('input'))} does not match the pattern " + str(
            err.get("ctx", {}).get("pattern", "")
        )
    elif kind != "union":
        msg = msg[:1].lower() + msg[1:]
        if kind.endswith("_type") or kind in ("literal_error", "enum"):
            msg = f"{msg}, got {_describe_input(err.get('input'))}"
    prefix = f"{field}: " if field else ""
    return Diagnostic(doc.path, line, col, prefix + msg, hint=hint)


def to_json(diags: Sequence[Diagnostic]) -> str:
    """Diagnostics as a JSON document (a list of objects, plus counts)."""
    items = [
        {
            "path": d.path,
            "line": d.line,
            "col": d.col,
            "severity": d.severity,
            "message": d.message,
            "hint": d.hint,
        }
        for d in diags
    ]
    errors = sum(1 for d in diags if d.severity == "error")
    warnings = sum(1 for d in diags if d.severity == "warning")
    return json.dumps({"diagnostics": items, "errors": errors, "warnings": warnings}, indent=2)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(diags: Sequence[Diagnostic]) -> str:
    """Diagnostics as GitHub Actions workflow annotations (``::error file=...``)."""
    lines = []
    for d in diags:
        level = {"error": "error", "note": "notice"}.get(d.severity, "warning")
        message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
        where = f",line={d.line},col={d.col}" if d.line > 0 else ""
        lines.append(
            f"::{level} file={_escape_property(d.path)}{where},"
            f"title={_escape_property('gwconfig ' + level)}::{_escape_data(message)}"
        )
    return "\n".join(lines)


def to_text(diags: Sequence[Diagnostic]) -> str:
    """Diagnostics as ``path:line:col: severity: message`` lines with hints."""
    return "\n".join(d.format() for d in diags)
