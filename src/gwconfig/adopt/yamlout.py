"""Block YAML as people write it: plain scalars where YAML reads them back unchanged, else quoted.

A string is written plain only when the manifests' fast scalar reader (the subset the
reference loader agrees with, see :mod:`gwconfig.manifests.yamlparse.scalars`) gives exactly that
string back; anything else (``"2023-06-01"``, ``"yes"``, ``"null"``, ``"0755"``, a leading
``@``, ``: `` inside, surrounding spaces, control characters) is double-quoted with escapes.
Text of several lines is written as a literal block (``description: |``) when that reads back
exactly, else double-quoted with ``\n``.
Lists of scalars that fit on a line and small maps are written in flow style (``[a, b]``,
``{env: NAME}``), like the example manifests; everything else in block style. The output is a
pure function of the value: the same input always gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from gwconfig.manifests.yamlparse.scalars import _scalar, _Unsupported

#: what may appear inside ``[a, b]`` / ``{k: v}`` unquoted (the fast reader's flow token)
_FLOW_TOKEN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./-]*\Z")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")
#: printable in a YAML stream and not a line break: written as is inside double quotes
_RAW = re.compile(
    "[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
#: flow lists longer than this (characters) are written as block lists
FLOW_WIDTH = 100


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if _RAW.match(ch):
        return ch
    code = ord(ch)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else (f"\\U{code:08x}")
    )


def quoted(text: str) -> str:
    """``text`` as a double-quoted YAML scalar (every character that needs it escaped)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def _plain_ok(text: str) -> bool:
    if not text or text != text.strip(" ") or not _RAW.fullmatch(text[0]):
        return False
    if not (text.isascii() and text.isprintable()) and any(not _RAW.match(ch) for ch in text):
        return False
    try:
        back = _scalar(text)
    except _Unsupported:
        return False
    return type(back) is str and back == text


@lru_cache(maxsize=1 << 16)
def string(text: str) -> str:
    """A string scalar in block context: plain when that reads back as ``text`` (memoised:
    manifests repeat the same strings thousands of times)."""
    return text if _plain_ok(text) else quoted(text)


def number(value: float) -> str:
    """A float as YAML 1.1 reads it back exactly (always with a ``.``)."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text:
        mantissa, _, exponent = text.partition("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def scalar(value: Any) -> str:
    """Any JSON scalar in block context."""
    kind = type(value)
    if kind is str:
        return string(value)
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return number(value)
    return string(str(value))


@lru_cache(maxsize=1 << 14)
def key(name: str) -> str:
    """A mapping key: plain when it is a simple name that reads back as itself."""
    return name if _KEY.match(name) and _plain_ok(name) else quoted(name)


def _flow_item(value: Any) -> str:
    text = scalar(value)
    if isinstance(value, str) and not _FLOW_TOKEN.match(text):
        return quoted(value)  # quoted text is safe inside [ ] and { }
    return text


def flow_list(values: Sequence[Any]) -> str | None:
    """``[a, "on", 3]`` when it fits in :data:`FLOW_WIDTH` characters, else None (block list)."""
    if all(type(v) is str for v in values):
        return _flow_strings(tuple(values))
    text = "[" + ", ".join(_flow_item(v) for v in values) + "]"
    return text if len(text) <= FLOW_WIDTH else None


@lru_cache(maxsize=1 << 14)
def _flow_strings(values: tuple[str, ...]) -> str | None:
    text = "[" + ", ".join(_flow_item(v) for v in values) + "]"
    return text if len(text) <= FLOW_WIDTH else None


def string_list(out: list[str], indent: str, name: str, values: Sequence[str]) -> None:
    """``name: [a, b]`` of strings, or a block list when it does not fit on the line."""
    flow = _flow_strings(tuple(values))
    if flow is not None:
        out.append(f"{indent}{name}: {flow}")
    else:
        out.append(f"{indent}{name}:")
        emit_sequence(out, indent + "  ", values)


def flow_map(mapping: Mapping[str, Any]) -> str:
    """``{k: v, ...}`` of scalars (strings that are not plain tokens are double-quoted)."""
    return "{" + ", ".join(f"{key(k)}: {_flow_item(v)}" for k, v in mapping.items()) + "}"


def emit_value(out: list[str], indent: str, name: str, value: Any) -> None:
    """Append ``name: value`` at ``indent``: scalars inline, collections as nested blocks."""
    if isinstance(value, Mapping):
        if not value:
            out.append(f"{indent}{name}: {{}}")
            return
        out.append(f"{indent}{name}:")
        emit_mapping(out, indent + "  ", value)
    elif isinstance(value, list | tuple):
        flow = flow_list(value) if all(_is_scalar(v) for v in value) else None
        if flow is not None:
            out.append(f"{indent}{name}: {flow}")
            return
        out.append(f"{indent}{name}:")
        emit_sequence(out, indent + "  ", value)
    elif type(value) is str and "\n" in value and _literal_ok(value):
        lines = value.split("\n")
        chomp = "-"  # no final line break
        if value.endswith("\n"):
            lines.pop()
            chomp = "+" if value.endswith("\n\n") else ""  # keep all / keep one
        out.append(f"{indent}{name}: |{chomp}")
        out.extend(f"{indent}  {line}" if line else "" for line in lines)
    else:
        out.append(f"{indent}{name}: {scalar(value)}")


def _literal_ok(text: str) -> bool:
    """True when ``text`` reads back exactly from a ``|`` block: printable lines, no tabs or
    carriage returns, no line of blanks only, a first line that does not start with a blank."""
    if text[0] in " \n" or "\t" in text or "\r" in text:
        return False
    if not all(ch == "\n" or _RAW.match(ch) for ch in text):
        return False
    return all(line.strip(" ") or not line for line in text.split("\n"))


def emit_mapping(out: list[str], indent: str, mapping: Mapping[str, Any]) -> None:
    """Every entry of ``mapping`` (keys quoted as needed) at ``indent``, in its order."""
    for k, v in mapping.items():
        emit_value(out, indent, key(k), v)


def emit_sequence(out: list[str], indent: str, values: Sequence[Any]) -> None:
    """A block sequence at ``indent`` (items that are mappings start on the dash line)."""
    for v in values:
        if isinstance(v, Mapping) and v:
            lines: list[str] = []
            emit_mapping(lines, indent + "  ", v)
            out.append(indent + "- " + lines[0][len(indent) + 2 :])
            out.extend(lines[1:])
        elif isinstance(v, list | tuple) and v:
            lines = []
            emit_sequence(lines, indent + "  ", v)
            out.append(indent + "- " + lines[0][len(indent) + 2 :])
            out.extend(lines[1:])
        elif isinstance(v, Mapping):
            out.append(f"{indent}- {{}}")
        elif isinstance(v, list | tuple):
            out.append(f"{indent}- []")
        else:
            out.append(f"{indent}- {scalar(v)}")


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list | tuple)
