"""The ``kind: Consumer`` documents ``gwconfig dump`` writes: ``consumers.yaml``, one document
per consumer, by name, in the order of the kind's field specs with the defaults left out
(what the fast YAML path reads: ``models`` as a block list, its patterns quoted)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gwconfig.adopt.yamlout as yamlout
from gwconfig.entities import CONSUMER

CONSUMERS_FILE = "consumers.yaml"
CONSUMER_SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/consumer.schema.json"


def _number(value: Any) -> Any:
    """A whole float as an integer (``usd: 50``), anything else as it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def consumer_document(c: Mapping[str, Any]) -> list[str]:
    """The lines of one consumer's document (no schema line, no ``---``)."""
    out = ["apiVersion: gwconfig/v1", "kind: Consumer"]
    for f in CONSUMER.specs:
        value = c.get(f.name)
        if f.omitted(c) or value is None:
            continue
        if f.store == "object":
            shown = {k: _number(v) for k, v in value.items()}
            out.append(f"{f.name}: {yamlout.flow_map(shown)}")
        elif f.name == "models":  # a block list: patterns quoted there stay in the fast subset
            out.append(f"{f.name}:")
            yamlout.emit_sequence(out, "  ", value)
        else:
            yamlout.emit_value(out, "", f.name, value)
    return out


def consumers_file(consumers: Sequence[Mapping[str, Any]]) -> bytes:
    """``consumers.yaml``: every consumer, by name, one document each."""
    lines = [CONSUMER_SCHEMA_LINE]
    for i, c in enumerate(sorted(consumers, key=lambda c: c["name"])):
        if i:
            lines.append("---")
        lines.extend(consumer_document(c))
    return ("\n".join(lines) + "\n").encode("utf-8")
