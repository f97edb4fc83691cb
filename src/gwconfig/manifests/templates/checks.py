"""Checks made *before* a template operation that can multiply its input runs.

Each function gets the :class:`Budget` and the operation's arguments, raises
:class:`TemplateLimitError` when the result would be too large, and returns the arguments to
use (an iterable that had to be counted comes back as a list, so it is not consumed twice).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gwconfig.manifests.templates.limits import Budget, TemplateLimitError, children

Args = tuple[Any, ...]
Kwargs = dict[str, Any]
Check = Callable[[Budget, Args, Kwargs], tuple[Args, Kwargs]]

# one %-conversion: mapping key, flags, width, precision, length modifier, type
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+)?)?[hlL]?(.)", re.S)
_DIGITS = re.compile(r"\d+")


def _number(text: str) -> int:
    # more than nine digits is past any limit; int() of a very long one is refused by Python
    return int(text) if len(text) <= 9 else 10**10


def _arg(args: Args, kwargs: Kwargs, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _width(budget: Budget, what: str, width: Any) -> None:
    if isinstance(width, int) and width > budget.limits.value_size:
        raise budget.too_big(what, width)


def _expect(budget: Budget, what: str, size: int) -> None:
    if size > budget.limits.value_size:
        raise budget.too_big(what, size)


def repetition(budget: Budget, seq: Any, times: int) -> None:
    """``seq * times`` for a string, list or tuple."""
    if times > 0:
        _expect(budget, "a repetition", budget.size(seq) * times)


def power(budget: Budget, base: Any, exponent: Any) -> None:
    """``base ** exponent``: an integer power may not pass the integer limit."""
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return
    if abs(base) > 1 and (abs(base).bit_length() - 1) * exponent >= budget.limits.int_bits:
        raise TemplateLimitError(
            f"a power of {exponent:,} would have more than {budget.limits.int_bits:,} bits "
            "(the template limit for integers)"
        )


def product(budget: Budget, left: int, right: int) -> None:
    """``left * right`` for two integers."""
    if left.bit_length() + right.bit_length() > budget.limits.int_bits + 1:
        raise TemplateLimitError(
            f"a product would have more than {budget.limits.int_bits:,} bits (the template "
            "limit for integers)"
        )


def percent(budget: Budget, fmt: str, args: Any) -> None:
    """``fmt % args``: widths and precisions are bounded, and so is the whole result."""
    stars = [a for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, int)]
    widest, count = 0, 0
    for match in _PERCENT.finditer(fmt):
        if match.group(3) == "%":
            continue
        count += 1
        for group in match.group(1, 2):
            if group == "*":
                widest = max([widest, *(abs(s) for s in stars)])
            elif group:
                widest = max(widest, _number(group))
    _width(budget, "a %-format field", widest)
    _expect(budget, "a %-formatted string", len(fmt) + count * (widest + budget.size(args)))


def format_spec(budget: Budget, spec: str) -> None:
    """One ``str.format`` field: no width or precision past the value limit."""
    for digits in _DIGITS.findall(spec):
        _width(budget, "a format field", _number(digits))


def joined(budget: Budget, sep: Any, items: list[Any]) -> None:
    """``sep.join(items)``."""
    sep_len = len(sep) if isinstance(sep, str | bytes) else len(str(sep))
    total = sep_len * max(len(items) - 1, 0)
    _expect(budget, "a join", total + sum(budget.size(i) for i in items))


def replaced(budget: Budget, text: Any, old: Any, new: Any, count: Any) -> None:
    """``text.replace(old, new, count)``."""
    if not (isinstance(text, str | bytes) and isinstance(old, type(text))):
        return
    if not isinstance(new, str | bytes):
        return
    found = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    _expect(budget, "a replace", len(text) + found * max(len(new) - len(old), 0))


def _json_cost(budget: Budget, value: Any, indent: int, depth: int = 0) -> int:
    """About how long ``tojson`` makes ``value`` (escapes and indentation included)."""
    if isinstance(value, str):
        wide = len(value) - len(value.encode("ascii", "ignore"))
        special = sum(value.count(c) for c in "<>&'")
        return len(value) + 2 + 11 * wide + 5 * special
    parts = None if isinstance(value, bytes) else children(value)
    if parts is None:
        if value is None or isinstance(value, bool):
            return 5
        return 24 if isinstance(value, float) else budget.size(value)
    line = 1 + indent * (depth + 1) if indent else 0  # newline and indentation of each item
    total = 2 + line
    for part in parts:
        total += _json_cost(budget, part, indent, depth + 1) + 2 + line
        if total > budget.limits.value_size:
            raise budget.too_big("a tojson result")
    return total


# --- filters (arguments after the value; pass_context/environment arguments already removed) --


def _center(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    _width(budget, "center()", _arg(args, kwargs, 1, "width", 80))
    return args, kwargs


def _indent(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    text = str(args[0])
    width = _arg(args, kwargs, 1, "width", 4)
    step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _expect(budget, "indent()", len(text) + (text.count("\n") + 1) * max(step, 0))
    return args, kwargs


def _format(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    percent(budget, str(args[0]), kwargs or tuple(args[1:]))
    return args, kwargs


def _materialise(budget: Budget, value: Any) -> Any:
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        return value
    return list(budget.meter(value))


def _join(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    items = _materialise(budget, args[0])
    if isinstance(items, list):
        joined(budget, _arg(args, kwargs, 1, "d", ""), items)
    return (items, *args[1:]), kwargs


def _replace(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    text, old, new = args[0], _arg(args, kwargs, 1, "old"), _arg(args, kwargs, 2, "new")
    replaced(budget, str(text), old, new, _arg(args, kwargs, 3, "count"))
    return args, kwargs


def _sum(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    start = _arg(args, kwargs, 2, "start", 0)
    items = _materialise(budget, args[0])
    if isinstance(start, str | bytes | list | tuple) and isinstance(items, list):
        # sum() copies the running total at every step: bound the copying, not only the result
        running = copied = budget.size(start)
        for item in items:
            running += budget.size(item)
            copied += running
            _expect(budget, "sum()", running)
            if copied > 10 * budget.limits.value_size:
                raise TemplateLimitError(
                    "sum() of sequences would copy more than "
                    f"{10 * budget.limits.value_size:,} items (the template limit); use join or "
                    "a loop"
                )
    return (items, *args[1:]), kwargs


def _batch(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    _width(budget, "batch()", _arg(args, kwargs, 1, "linecount"))
    return args, kwargs


def _slice(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    _width(budget, "slice()", _arg(args, kwargs, 1, "slices"))
    return args, kwargs


def _wordwrap(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    text = str(args[0])
    wrap = _arg(args, kwargs, 3, "wrapstring") or "\n"
    _expect(budget, "wordwrap()", len(text) + (len(text) + 1) * len(str(wrap)))
    return args, kwargs


def _tojson(budget: Budget, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    indent = _arg(args, kwargs, 1, "indent")
    step = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    _json_cost(budget, args[0], max(step, 0))
    return args, kwargs


FILTER_CHECKS: dict[str, Check] = {
    "center": _center,
    "indent": _indent,
    "format": _format,
    "join": _join,
    "replace": _replace,
    "sum": _sum,
    "batch": _batch,
    "slice": _slice,
    "wordwrap": _wordwrap,
    "tojson": _tojson,
}

#: Filters templates do not get: nondeterministic (``random``) or HTML-only.
DROPPED_FILTERS = frozenset({"random", "urlize", "xmlattr", "pprint"})


def method_call(budget: Budget, func: Any, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    """Checks for the methods of strings, bytes and integers that can multiply their input."""
    owner = getattr(func, "__self__", None)
    name = getattr(func, "__name__", "")
    if isinstance(owner, str | bytes):
        if name in ("center", "ljust", "rjust", "zfill"):
            _width(budget, f"{name}()", _arg(args, kwargs, 0, "width"))
        elif name == "expandtabs":
            tab = _arg(args, kwargs, 0, "tabsize", 8)
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            if isinstance(tab, int):
                _expect(budget, "expandtabs()", len(owner) + tabs * max(tab, 0))
        elif name == "replace":
            replaced(budget, owner, _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new"),
                     _arg(args, kwargs, 2, "count", -1))  # fmt: skip
        elif name == "join" and args:
            items = _materialise(budget, args[0])
            if isinstance(items, list):
                joined(budget, owner, items)
            args = (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], Mapping):
            values = [len(v) for v in args[0].values() if isinstance(v, str | bytes)]
            _expect(budget, "translate()", len(owner) * max([1, *values]))
    elif isinstance(owner, int) and name == "to_bytes":
        _width(budget, "to_bytes()", _arg(args, kwargs, 0, "length", 1))
    return args, kwargs
