"""Jinja2 rendering of ``*.yaml.j2`` manifests, sandboxed, with a map back to template lines.

Templates see exactly two names: ``env`` (the ``--env`` name, or none) and ``vars`` (that
environment's values file). Never the process environment, never the file system.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gwconfig.errors import Diagnostic

_TEMPLATE_FILENAME = "<template>"


@dataclass(frozen=True)
class Rendered:
    """A rendered template: the YAML text and, per output line, the template line it came from."""

    text: str
    line_map: tuple[int, ...]


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        loader=None,
    )


def render(
    source: str, path: str, *, env: str | None, values: dict[str, Any]
) -> tuple[Rendered | None, list[Diagnostic]]:
    """Render ``source`` (the text of ``path``); errors name the template line."""
    environment = _environment()
    try:
        template = environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        return None, [Diagnostic(path, exc.lineno or 1, 1, f"template error: {exc.message}")]
    data_lines: dict[str, list[int]] = defaultdict(list)
    try:
        for lineno, kind, value in environment.lex(source):
            if kind == "data":
                data_lines[value].append(lineno)
    except jinja2.TemplateSyntaxError as exc:  # pragma: no cover - from_string lexes first
        return None, [Diagnostic(path, exc.lineno or 1, 1, f"template error: {exc.message}")]

    context = template.new_context({"env": env, "vars": values})
    gen = template.root_render_func(context)
    parts: list[str] = []
    line_map: list[int] = []
    try:
        while True:
            hint = _frame_line(template, gen)
            try:
                chunk = next(gen)
            except StopIteration:
                break
            hint = _frame_line(template, gen) or hint or 1
            candidates = data_lines.get(chunk)
            if candidates:
                line = min(candidates, key=lambda c: (c < hint - 1, abs(c - hint)))
                step = 1
            else:
                line, step = hint, 0
            if not line_map:
                line_map.append(line)
            for _ in range(chunk.count("\n")):
                line += step
                line_map.append(line)
            parts.append(chunk)
    except Exception as exc:
        # Any failure inside a template is the template's problem: report it at its line.
        line = _error_line(template, exc)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        advice: str | None = None
        if isinstance(exc, jinja2.UndefinedError):
            advice = (
                "templates see only 'env' (the --env name) and 'vars' (the values file of "
                "that environment); use '| default(...)' for optional values"
            )
        return None, [Diagnostic(path, line, 1, f"template error: {message}", hint=advice)]
    if not line_map:
        line_map.append(1)
    return Rendered("".join(parts), tuple(line_map)), []


def _frame_line(template: jinja2.Template, gen: Any) -> int:
    frame = getattr(gen, "gi_frame", None)
    if frame is None:
        return 0
    return int(template.get_corresponding_lineno(frame.f_lineno))


def _error_line(template: jinja2.Template, exc: BaseException) -> int:
    line = 1
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_FILENAME:
            line = int(template.get_corresponding_lineno(tb.tb_lineno))
        tb = tb.tb_next
    return line
