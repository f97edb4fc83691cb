"""Scalars and one-line flow collections of the fast YAML path (PyYAML's YAML 1.1 rules).

Used by :mod:`gwconfig.manifests.yamlparse.fast`, with the same contract: anything outside the
subset raises :class:`_Unsupported` and the caller falls back to the reference loader.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gwconfig.manifests.documents import Positions

_FLOW_TOKEN = r"[A-Za-z0-9_./][A-Za-z0-9_./-]*"
_FLOW_SEQ = re.compile(rf"\[(?:{_FLOW_TOKEN}(?:, {_FLOW_TOKEN})*)?\]\Z")
_FLOW_MAP = re.compile(
    rf"\{{(?:{_FLOW_TOKEN}: {_FLOW_TOKEN}(?:, {_FLOW_TOKEN}: {_FLOW_TOKEN})*)?\}}\Z"
)
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+(?:[eE][-+][0-9]+)?\Z")
_TAG = "tag:yaml.org,2002:"

# PyYAML's implicit resolvers (yaml/resolver.py, YAML 1.1), in its order, copied so that the
# fast path never imports yaml; a test checks that they equal yaml.resolver.Resolver's.
_RESOLVER_SPECS: list[tuple[str, str, int, tuple[str, ...]]] = [
    (
        _TAG + "bool",
        r"""^(?:yes|Yes|YES|no|No|NO
                    |true|True|TRUE|false|False|FALSE
                    |on|On|ON|off|Off|OFF)$""",
        re.X,
        tuple("yYnNtTfFoO"),
    ),
    (
        _TAG + "float",
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""",
        re.X,
        tuple("-+0123456789."),
    ),
    (
        _TAG + "int",
        r"""^(?:[-+]?0b[0-1_]+
                    |[-+]?0[0-7_]+
                    |[-+]?(?:0|[1-9][0-9_]*)
                    |[-+]?0x[0-9a-fA-F_]+
                    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
        re.X,
        tuple("-+0123456789"),
    ),
    (_TAG + "merge", r"^(?:<<)$", 0, ("<",)),
    (
        _TAG + "null",
        r"""^(?: ~
                    |null|Null|NULL
                    | )$""",
        re.X,
        ("~", "n", "N", ""),
    ),
    (
        _TAG + "timestamp",
        r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
                    |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
                     (?:[Tt]|[ \t]+)[0-9][0-9]?
                     :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
                     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
        re.X,
        tuple("0123456789"),
    ),
    (_TAG + "value", r"^(?:=)$", 0, ("=",)),
    (_TAG + "yaml", r"^(?:!|&|\*)$", 0, tuple("!&*")),
]


def _resolver_table() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    table: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, pattern, flags, first in _RESOLVER_SPECS:
        regexp = re.compile(pattern, flags)
        for ch in first:
            table.setdefault(ch, []).append((tag, regexp))
    return table


_RESOLVERS = _resolver_table()
_INDICATORS = frozenset("[]{},#&*!|>%@`")
_SPACE_INDICATORS = frozenset("-?:")


class _Unsupported(Exception):
    """The text is outside the fast subset: use the reference loader."""


def _scalar(v: str) -> Any:
    c = v[0]
    if c == "'":
        inner = v[1:-1]
        if len(v) < 2 or v[-1] != "'" or "'" in inner.replace("''", ""):
            raise _Unsupported
        return inner.replace("''", "'")
    if c == '"':
        inner = v[1:-1]
        if len(v) < 2 or v[-1] != '"' or '"' in inner or "\\" in inner:
            raise _Unsupported
        return inner
    if c in _INDICATORS or (c in _SPACE_INDICATORS and (len(v) == 1 or v[1] == " ")):
        raise _Unsupported
    if " #" in v or ": " in v or v[-1] == ":":
        raise _Unsupported
    resolvers = _RESOLVERS.get(c)
    if resolvers:
        for tag, regexp in resolvers:
            if regexp.match(v):
                return _resolved(tag, v)
    return v


def _resolved(tag: str, v: str) -> Any:
    if tag == _TAG + "int" and _INT.match(v) and len(v) < 19:
        return int(v)
    if tag == _TAG + "float" and _FLOAT.match(v):
        real = float(v)
        if math.isfinite(real):
            return real
    if tag == _TAG + "bool" and v in ("true", "false"):
        return v == "true"
    if tag == _TAG + "null" and v in ("null", "~"):
        return None
    raise _Unsupported


def _flow(v: str, line: int, col: int, positions: Positions | None, only: str | None = None) -> Any:
    """A one-line flow collection of plain tokens: ``[a, b]`` or ``{k: v, k2: v2}``.

    ``only`` records the position of that key alone (entity positions, see :func:`parse_fast`).
    """
    inner = v[1:-1]
    if v[0] == "[":
        if not _FLOW_SEQ.match(v):
            raise _Unsupported
        items: list[Any] = []
        c = col + 1
        for i, item in enumerate(inner.split(", ") if inner else ()):
            if positions is not None and only is None:
                positions[(id(items), i)] = (line, c, line, c)
            items.append(_scalar(item))
            c += len(item) + 2
        return items
    if not _FLOW_MAP.match(v):
        raise _Unsupported
    mapping: dict[str, Any] = {}
    c = col + 1
    for pair in inner.split(", ") if inner else ():
        k, value = pair.split(": ")
        key = _key(k)
        if key in mapping:
            raise _Unsupported
        if positions is not None and (only is None or key == only):
            positions[(id(mapping), key)] = (line, c, line, c + len(k) + 2)
        mapping[key] = _scalar(value)
        c += len(pair) + 2
    return mapping


def _key(text: str) -> str:
    if text[0] in _RESOLVERS and not isinstance(_scalar(text), str):
        raise _Unsupported
    return text
