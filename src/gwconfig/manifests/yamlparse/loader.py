"""The reference YAML loader: PyYAML's composer plus our own strict constructor.

It records the position of every key and value and turns YAML's traps into diagnostics:
duplicate keys, YAML 1.1 booleans (``no``, ``on``), aliases that expand without bound, tabs used
for indentation, unsupported tags and documents that are empty or not mappings.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml  # type: ignore[import-untyped]
from yaml.constructor import SafeConstructor  # type: ignore[import-untyped]
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode  # type: ignore[import-untyped]

from gwconfig.errors import Diagnostic
from gwconfig.manifests.diagnostics import clip, quoted
from gwconfig.manifests.documents import Positions, RawDocument
from gwconfig.manifests.limits import DEPTH_MESSAGE, MAX_DEPTH

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_YAML11_BOOLS = {"yes", "no", "on", "off"}
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)
#: What YAML 1.1 does not allow in a stream (PyYAML's reader check, the same ranges).
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_CONTROL_NAMES = {0: "NUL", 7: "BEL", 8: "BS", 0x0B: "VT", 0x0C: "FF", 0x1B: "ESC", 0x7F: "DEL"}
#: Aliases may repeat data, but not blow it up: constructed nodes per composed node, at most.
_ALIAS_EXPANSION = 10
_ALIAS_SLACK = 1000
_OCTAL = re.compile(r"[-+]?0[0-7_]+$")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what JSON consumers (and orjson) accept


class _Stop(Exception):
    """Abandon this document (the diagnostic is already recorded)."""


class _Builder:
    """Turns one composed YAML node graph into Python values plus positions."""

    def __init__(self, path: str, diags: list[Diagnostic]) -> None:
        self.path = path
        self.diags = diags
        self.positions: Positions = {}
        self.budget = 0
        self.scalars = SafeConstructor()

    def error(self, node: Node, message: str, hint: str | None = None) -> None:
        mark = node.start_mark
        self.diags.append(Diagnostic(self.path, mark.line + 1, mark.column + 1, message, hint=hint))

    def build(self, root: Node) -> Any:
        self.budget = _ALIAS_SLACK + _ALIAS_EXPANSION * _count(root)
        return self.value(root, 0, frozenset())

    def value(self, node: Node, depth: int, active: frozenset[int]) -> Any:
        self.budget -= 1
        if self.budget < 0:
            self.error(
                node,
                "aliases expand to far more data than the document contains (alias bomb)",
                hint="write the data out instead of repeating anchors (&name / *name)",
            )
            raise _Stop
        if depth > MAX_DEPTH:
            self.error(node, DEPTH_MESSAGE)
            raise _Stop
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if id(node) in active:
            self.error(node, "an alias refers to the collection that contains it (recursive data)")
            raise _Stop
        inner = active | {id(node)}
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                self.error(node, f"unsupported YAML tag {quoted(node.tag)}")
                return []
            items: list[Any] = []
            for i, child in enumerate(node.value):
                line, col = child.start_mark.line + 1, child.start_mark.column + 1
                self.positions[(id(items), i)] = (line, col, line, col)
                items.append(self.value(child, depth + 1, inner))
            return items
        assert isinstance(node, MappingNode)
        if node.tag != _TAG + "map":
            self.error(node, f"unsupported YAML tag {quoted(node.tag)}")
            return {}
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.error(key_node, "merge keys ('<<') are not supported; write the keys out")
                continue
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, "a mapping key must be a plain value, not a collection")
                continue
            key = self.scalar(key_node)
            if key in mapping:
                kl, _, _, _ = self.positions[(id(mapping), key)]
                self.error(
                    key_node,
                    f"duplicate key {quoted(str(key))} (first defined on line {kl})",
                    hint="YAML keeps only the last value; remove one of them",
                )
                continue
            vm = value_node.start_mark
            self.positions[(id(mapping), key)] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
                vm.line + 1,
                vm.column + 1,
            )
            mapping[key] = self.value(value_node, depth + 1, inner)
        return mapping

    def scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        if tag == _TAG + "str":
            return node.value
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            text = node.value
            if text.lower() in _YAML11_BOOLS:
                as_bool = "true" if text.lower() in ("yes", "on") else "false"
                self.error(
                    node,
                    f"'{text}' is read as the boolean {as_bool} (YAML 1.1)",
                    hint=f"write '{text}' in quotes for a string, or {as_bool} for a boolean",
                )
            return self.scalars.construct_yaml_bool(node)
        if tag == _TAG + "int":
            text = quoted(node.value)
            try:
                number = self.scalars.construct_yaml_int(node)
            except ValueError:  # more digits than Python converts (4300): far out of range
                self.error(node, f"the number {clip(node.value)} is out of range (64-bit integers)")
                return node.value
            if ":" in node.value or _OCTAL.match(node.value):
                kind = "base 60" if ":" in node.value else "octal"
                shown = clip(str(number)) if number.bit_length() < 1000 else "beyond 2^1000"
                self.error(
                    node,
                    f"{text} is read as the number {shown} ({kind}, YAML 1.1)",
                    hint=f"write {text} in quotes for a string",
                )
            elif not _INT_MIN <= number <= _INT_MAX:
                self.error(node, f"the number {clip(node.value)} is out of range (64-bit integers)")
            return number
        if tag == _TAG + "float":
            real = self.scalars.construct_yaml_float(node)
            text = quoted(node.value)
            if ":" in node.value:
                self.error(
                    node,
                    f"{text} is read as the number {real} (base 60, YAML 1.1)",
                    hint=f"write {text} in quotes for a string",
                )
            elif not math.isfinite(real):
                self.error(node, f"{text} is not a finite number")
            return real
        if tag == _TAG + "timestamp":
            # Kept as written: the schema parses it where a date is meant (expires_at), and
            # elsewhere (parameters, ids) it stays the string the author typed, JSON-ready.
            return node.value
        self.error(node, f"unsupported YAML tag {quoted(tag)}", hint="quote the value for a string")
        return node.value


def _count(root: Node) -> int:
    """Number of distinct nodes in the composed graph (aliases share nodes)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                stack.append(k)
                stack.append(v)
    return len(seen)


def load_yaml(text: str, path: str) -> tuple[list[RawDocument], list[Diagnostic]]:
    """Parse every document of ``text``; return the documents and all problems found."""
    docs, diags, _ = parse_yaml(text, path)
    return docs, diags


def parse_yaml(text: str, path: str) -> tuple[list[RawDocument], list[Diagnostic], bool]:
    """Like :func:`load_yaml`, plus whether the whole text was read (no document dropped)."""
    diags: list[Diagnostic] = []
    early = _unreadable(text, path)
    if early:
        return [], early, False
    docs: list[RawDocument] = []
    index = 0
    complete = True
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            index += 1
            if node is None:
                continue
            builder = _Builder(path, diags)
            try:
                data = builder.build(node)
            except _Stop:
                complete = False
                continue
            except RecursionError:
                builder.error(node, "data nested too deeply")
                complete = False
                continue
            docs.append(
                RawDocument(
                    path,
                    index,
                    data,
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    builder.positions,
                )
            )
    except yaml.MarkedYAMLError as exc:
        diags.append(syntax_error(exc, path))
        complete = False
    except yaml.YAMLError as exc:
        diags.append(Diagnostic(path, 1, 1, f"invalid YAML: {clip(_one_line(exc), 200)}"))
        complete = False
    except RecursionError:
        diags.append(Diagnostic(path, 1, 1, "invalid YAML: data nested too deeply"))
        complete = False
    return docs, diags, complete


def _unreadable(text: str, path: str) -> list[Diagnostic]:
    """Tabs in indentation (each) and the first character YAML does not allow, located."""
    diags: list[Diagnostic] = []
    for match in _TAB_INDENT.finditer(text):
        start = match.start()
        line = text.count("\n", 0, start) + 1
        col = text.index("\t", start) - start + 1
        diags.append(
            Diagnostic(
                path,
                line,
                col,
                "tab character in indentation",
                hint="YAML indents with spaces only",
            )
        )
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        # Found here rather than from PyYAML's reader error, whose offset is in bytes or in
        # characters depending on the loader and carries no line.
        pos = bad.start()
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        code = ord(text[pos])
        name = f"U+{code:04X}" + (f" ({_CONTROL_NAMES[code]})" if code in _CONTROL_NAMES else "")
        more = len(_NON_PRINTABLE.findall(text, pos + 1))
        diags.append(
            Diagnostic(
                path,
                line,
                col,
                f"control character {name} is not allowed in YAML",
                hint="remove it: a YAML file holds printable text only"
                + (
                    f" ({more} more such character{'s' if more != 1 else ''} in this file)"
                    if more
                    else ""
                ),
            )
        )
    return diags


#: (problem wording of libyaml or PyYAML) -> (message, hint, report at the context mark)
_SYNTAX_HINTS: tuple[tuple[str, str, str, bool], ...] = (
    (
        "mapping values are not allowed",
        "bad indentation or a stray ':'",
        "indent this line like the other keys of its mapping, and quote a value that contains ': '",
        False,
    ),
    (
        "could not find expected ':'",
        "a missing ':' after a key (or bad indentation)",
        "write 'key: value'; a value continued on the next line is indented more than its key",
        True,
    ),
    (
        "did not find expected key",
        "bad indentation or a missing ':'",
        "this line is not aligned with the keys of the mapping it belongs to",
        False,
    ),
    (
        "expected <block end>",
        "bad indentation or a missing ':'",
        "this line is not aligned with the keys of the mapping it belongs to",
        False,
    ),
    (
        "did not find expected '-' indicator",
        "bad indentation in a list",
        "indent every '- ' item of a list by the same number of spaces",
        False,
    ),
)


def syntax_error(exc: Any, path: str) -> Diagnostic:
    """A YAML syntax error as a diagnostic; indentation mistakes get words a person uses."""
    problem = exc.problem or exc.context or "invalid YAML"
    mark = exc.problem_mark or exc.context_mark
    for wording, message, hint, at_context in _SYNTAX_HINTS:
        if problem.startswith(wording):
            if at_context and exc.context_mark is not None:
                mark = exc.context_mark
            elif exc.context_mark is not None and exc.context == "while parsing a block mapping":
                start = exc.context_mark
                hint += f" (it starts at line {start.line + 1}, column {start.column + 1})"
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            return Diagnostic(path, line, col, f"invalid YAML: {message}", hint=hint)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return Diagnostic(path, line, col, f"invalid YAML: {clip(problem, 200)}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
