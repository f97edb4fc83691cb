"""The fast YAML path compared with the reference loader, for the differential tests: what a
parse yields (documents with their values typed and their positions, and the diagnostics), and a
count of how often the fast path answered instead of declining.
"""

from __future__ import annotations

from typing import Any

from gwconfig.manifests.documents import RawDocument
from gwconfig.manifests.yamlparse.fast import parse_fast
from gwconfig.manifests.yamlparse.loader import load_yaml


def typed(value: Any) -> Any:
    """``value`` with the type of every scalar beside it (so 1, 1.0 and True differ)."""
    if isinstance(value, dict):
        return ("map", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("seq", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def positions(doc: RawDocument) -> dict[tuple[Any, ...], Any]:
    """The recorded (line, column) of every key and item of ``doc``, by path."""
    out: dict[tuple[Any, ...], Any] = {}

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            out[(*path, repr(k))] = doc.positions.get((id(node), k))
            if isinstance(v, dict | list):
                walk(v, (*path, repr(k)))

    if isinstance(doc.data, dict | list):
        walk(doc.data, ())
    return out


def summary(result: tuple[list[RawDocument], list[Any]]) -> Any:
    """What a parse yields, comparable: each document typed, with positions; the diagnostics."""
    docs, diags = result
    return (
        [(d.index, d.line, d.col, typed(d.data), positions(d)) for d in docs],
        [d.format() for d in diags],
    )


def assert_same_as_reference(text: str) -> bool:
    """Check the fast path against the reference loader; True if the fast path answered."""
    fast = parse_fast(text, "f.yaml")
    if fast is None:
        return False
    assert summary(fast) == summary(load_yaml(text, "f.yaml"))
    return True


class Answers:
    """How many of the generated inputs the fast path answered (not declined)."""

    def __init__(self) -> None:
        self.answered = 0
        self.total = 0

    def add(self, answered: bool) -> None:
        """Count one input."""
        self.total += 1
        self.answered += answered

    def require(self, share: float) -> None:
        """Fail unless the fast path answered at least ``share`` of the inputs (and one)."""
        assert self.total > 0
        assert self.answered >= max(1, share * self.total), (
            f"the fast path answered {self.answered} of {self.total} generated inputs, "
            f"fewer than {share:.0%}: it has stopped answering"
        )
