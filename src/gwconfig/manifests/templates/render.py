"""Jinja2 rendering of ``*.yaml.j2`` manifests, sandboxed, with a map back to template lines.

Templates see exactly ``env`` (the ``--env`` name, or none), ``vars`` (that environment's values
file), ``range`` and ``namespace``; never the process environment, never the file system. A
render is bounded in time, loop iterations, written text and the size of every value it makes
(:mod:`gwconfig.manifests.templates.limits`); going past a limit is a diagnostic at the template
line, like any other template error.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2

from gwconfig.errors import Diagnostic
from gwconfig.manifests.templates.limits import (
    DEFAULT_LIMITS,
    Budget,
    TemplateLimitError,
    TemplateLimits,
)
from gwconfig.manifests.templates.sandbox import BoundedEnvironment

_TEMPLATE_FILENAME = "<template>"
_BLOCK_OPENERS = frozenset({"for", "if", "macro", "call", "filter", "with", "block", "autoescape"})
_CONTEXT_HINT = (
    "templates see only 'env' (the --env name), 'vars' (the values file of that environment), "
    "'range' and 'namespace'; use '| default(...)' for optional values"
)


@dataclass(frozen=True)
class Rendered:
    """A rendered template: the YAML text and, per output line, the template line it came from."""

    text: str
    line_map: tuple[int, ...]


@dataclass
class _Scan:
    data_lines: dict[str, list[int]]
    longest_tag_line: int


def _scan(environment: jinja2.Environment, source: str, limits: TemplateLimits) -> _Scan:
    """Lines of the literal text, and nesting checked before the parser recurses into it."""
    data_lines: dict[str, list[int]] = defaultdict(list)
    blocks = brackets = 0
    first: str | None = None
    assigns = False
    tag_line, tag_tokens, longest = 1, 0, (-1, 1)
    for lineno, kind, value in environment.lex(source):
        if kind == "data":
            data_lines[value].append(lineno)
            continue
        tag_tokens += 1
        if kind in ("block_begin", "variable_begin"):
            first, assigns, tag_line, tag_tokens = None, False, lineno, 0
        elif kind == "operator" and value in ("(", "[", "{"):
            brackets += 1
            if brackets > limits.bracket_nesting:
                raise TemplateLimitError(
                    f"brackets nested more than {limits.bracket_nesting} deep (the template limit)",
                    lineno,
                )
        elif kind == "operator" and value in (")", "]", "}"):
            brackets -= 1
        elif kind == "operator" and value == "=":
            assigns = True
        elif kind == "name" and first is None:
            first = value
        elif kind == "block_end":
            if first in _BLOCK_OPENERS or (first == "set" and not assigns):
                blocks += 1
                if blocks > limits.block_nesting:
                    raise TemplateLimitError(
                        f"blocks nested more than {limits.block_nesting} deep (the template limit)",
                        lineno,
                    )
            elif first is not None and first.startswith("end"):
                blocks -= 1
        if kind in ("block_end", "variable_end"):
            longest = max(longest, (tag_tokens, -tag_line))
    return _Scan(data_lines, -longest[1])


def render(
    source: str,
    path: str,
    *,
    env: str | None,
    values: dict[str, Any],
    limits: TemplateLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Rendered | None, list[Diagnostic]]:
    """Render ``source`` (the text of ``path``) within ``limits``; errors name the template line."""
    budget = Budget(limits, clock)
    environment = BoundedEnvironment(budget)

    def error(line: int, message: str, hint: str | None = None) -> list[Diagnostic]:
        return [Diagnostic(path, line, 1, f"template error: {message}", hint=hint)]

    scan: _Scan | None = None
    try:
        scan = _scan(environment, source, limits)
        template = environment.from_string(source)
        budget.learn(values)
    except jinja2.TemplateSyntaxError as exc:
        return None, error(exc.lineno or 1, exc.message or "syntax error")
    except TemplateLimitError as exc:
        return None, error(exc.lineno or 1, exc.message)
    except (RecursionError, SyntaxError, MemoryError, ValueError, OverflowError):
        # Python's own limits on the code Jinja2 generates (nesting, expression length)
        line = scan.longest_tag_line if scan is not None else 1
        return None, error(line, "an expression is nested too deeply or is too long to compile")
    data_lines = scan.data_lines

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
        return None, error(line, _describe(exc), _CONTEXT_HINT if _undefined(exc) else None)
    if not line_map:
        line_map.append(1)
    return Rendered("".join(parts), tuple(line_map)), []


def _undefined(exc: Exception) -> bool:
    return isinstance(exc, jinja2.UndefinedError)


def _describe(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "recursion too deep (a macro or recursive loop that does not stop?)"
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, OverflowError):
        return "a number is too large"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message)


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
