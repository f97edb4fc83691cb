"""Wording shared by every report: counted nouns and lists of problems."""

from __future__ import annotations

from collections.abc import Iterable


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 provider``, ``2 providers``, ``0 providers``; ``plural_form`` for ``entity/entities``."""
    return f"{count} {noun if count == 1 else (plural_form or noun + 's')}"


def bulleted(items: Iterable[str]) -> str:
    """One problem per line, indented under the message that introduces them."""
    return "".join(f"\n  - {item}" for item in items)
