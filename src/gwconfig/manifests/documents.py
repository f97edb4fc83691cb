"""Loaded YAML documents with source positions, shared by the reference and the fast loader."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: (id(container), key or index) -> (key line, key col, value line, value col), all 1-based.
Positions = dict[tuple[int, Any], tuple[int, int, int, int]]


@dataclass
class RawDocument:
    """One YAML document of a manifest file, before schema validation."""

    path: str
    index: int
    data: Any
    line: int
    col: int
    positions: Positions = field(default_factory=dict)
    #: For rendered templates: line of the rendered text (1-based) -> template line.
    line_map: Sequence[int] | None = None
    #: Parsed without positions (fast path): re-parses the file with positions on demand.
    reload: Callable[[], list[RawDocument]] | None = None

    def ensure_positions(self) -> None:
        """Compute positions now if the document was parsed without them."""
        if self.reload is None:
            return
        reload, self.reload = self.reload, None
        for other in reload():
            if other.index == self.index:
                _transfer(self.data, other.data, other.positions, self.positions)
                return

    def template_line(self, line: int) -> int:
        """Translate a line of the parsed text to a line of the file the user wrote."""
        if self.line_map is None:
            return line
        if 1 <= line <= len(self.line_map):
            return self.line_map[line - 1]
        return self.line_map[-1] if self.line_map else 1

    def locate(self, loc: Sequence[Any], *, at_key: bool = False) -> tuple[int, int]:
        """Line and column (in the user's file) of the value at ``loc`` inside ``data``.

        Elements of ``loc`` that are not keys of the data (pydantic union tags) are skipped; the
        deepest position found wins. ``at_key`` points at the key of the last element instead.
        """
        self.ensure_positions()
        line, col = self.line, self.col
        node = self.data
        for part in loc:
            is_key = isinstance(node, dict) and part in node
            is_index = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if not (is_key or is_index):
                continue
            pos = self.positions.get((id(node), part))
            node = node[part]
            if pos is not None:
                line, col = (pos[0], pos[1]) if at_key else (pos[2], pos[3])
        if self.line_map is not None:
            return self.template_line(line), 1
        return line, col

    def value_line(self, container: Any, key: Any) -> tuple[int, int]:
        """Line and column of ``container[key]`` (falls back to the document start)."""
        self.ensure_positions()
        pos = self.positions.get((id(container), key))
        if pos is None:
            return self.template_line(self.line), self.col
        if self.line_map is not None:
            return self.template_line(pos[2]), 1
        return pos[2], pos[3]

    def key_line(self, container: Any, key: Any) -> tuple[int, int]:
        """Line and column of the key ``key`` in ``container`` (falls back to the document)."""
        self.ensure_positions()
        pos = self.positions.get((id(container), key))
        if pos is None:
            return self.template_line(self.line), self.col
        if self.line_map is not None:
            return self.template_line(pos[0]), 1
        return pos[0], pos[1]


def _transfer(old: Any, new: Any, source: Positions, target: Positions) -> None:
    """Copy positions of ``new`` (same data, another parse) onto the containers of ``old``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in old.items():
            pos = source.get((id(new), key))
            if pos is not None:
                target[(id(old), key)] = pos
            if isinstance(value, dict | list) and key in new:
                _transfer(value, new[key], source, target)
    elif isinstance(old, list) and isinstance(new, list):
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            pos = source.get((id(new), i))
            if pos is not None:
                target[(id(old), i)] = pos
            if isinstance(a, dict | list):
                _transfer(a, b, source, target)
