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
from gwconfig.manifests.documents import Positions, RawDocument

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_YAML11_BOOLS = {"yes", "no", "on", "off"}
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)
#: Aliases may repeat data, but not blow it up: constructed nodes per composed node, at most.
_ALIAS_EXPANSION = 10
_ALIAS_SLACK = 1000
_MAX_DEPTH = 64
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
        if depth > _MAX_DEPTH:
            self.error(node, f"data nested deeper than {_MAX_DEPTH} levels")
            raise _Stop
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if id(node) in active:
            self.error(node, "an alias refers to the collection that contains it (recursive data)")
            raise _Stop
        inner = active | {id(node)}
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                self.error(node, f"unsupported YAML tag '{node.tag}'")
                return []
            items: list[Any] = []
            for i, child in enumerate(node.value):
                line, col = child.start_mark.line + 1, child.start_mark.column + 1
                self.positions[(id(items), i)] = (line, col, line, col)
                items.append(self.value(child, depth + 1, inner))
            return items
        assert isinstance(node, MappingNode)
        if node.tag != _TAG + "map":
            self.error(node, f"unsupported YAML tag '{node.tag}'")
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
                    f"duplicate key '{key}' (first defined on line {kl})",
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
            number = self.scalars.construct_yaml_int(node)
            text = node.value
            if ":" in text or _OCTAL.match(text):
                kind = "base 60" if ":" in text else "octal"
                self.error(
                    node,
                    f"'{text}' is read as the number {number} ({kind}, YAML 1.1)",
                    hint=f"write '{text}' in quotes for a string",
                )
            elif not _INT_MIN <= number <= _INT_MAX:
                self.error(node, f"the number {node.value} is out of range (64-bit integers)")
            return number
        if tag == _TAG + "float":
            real = self.scalars.construct_yaml_float(node)
            if ":" in node.value:
                self.error(
                    node,
                    f"'{node.value}' is read as the number {real} (base 60, YAML 1.1)",
                    hint=f"write '{node.value}' in quotes for a string",
                )
            elif not math.isfinite(real):
                self.error(node, f"'{node.value}' is not a finite number")
            return real
        if tag == _TAG + "timestamp":
            # Kept as written: the schema parses it where a date is meant (expires_at), and
            # elsewhere (parameters, ids) it stays the string the author typed, JSON-ready.
            return node.value
        self.error(node, f"unsupported YAML tag '{tag}'", hint="quote the value for a string")
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
    diags: list[Diagnostic] = []
    tabs = [m.start() for m in _TAB_INDENT.finditer(text)]
    if tabs:
        for start in tabs:
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
        return [], diags
    docs: list[RawDocument] = []
    index = 0
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            index += 1
            if node is None:
                continue
            builder = _Builder(path, diags)
            try:
                data = builder.build(node)
            except _Stop:
                continue
            except RecursionError:
                builder.error(node, "data nested too deeply")
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
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        diags.append(Diagnostic(path, line, col, f"invalid YAML: {problem}"))
    except yaml.YAMLError as exc:
        diags.append(Diagnostic(path, 1, 1, f"invalid YAML: {_one_line(exc)}"))
    except RecursionError:
        diags.append(Diagnostic(path, 1, 1, "invalid YAML: data nested too deeply"))
    return docs, diags


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
