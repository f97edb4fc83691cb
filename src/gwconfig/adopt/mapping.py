"""The back-office schema ``gwconfig import`` and ``verify`` read, and ``--mapping`` renames.

The logical schema is ``backoffice_schema.sql``'s: four tables and their columns, named as the
migration guide names them. A real back-office may name them otherwise; a mapping file says how::

    tables:
      providers: llm_providers
    columns:
      api_keys.key_value: secret        # logical table.column: the real column
      providers.description: null      # not in this back-office: the default applies

Every problem in the file is a diagnostic at ``file:line``; a mapped name that the database does
not have is reported with the mapping line that named it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gwconfig.errors import Diagnostic, ManifestError, ManifestInputError
from gwconfig.manifests.diagnostics import did_you_mean, quoted

#: logical table -> its columns, as ``backoffice_schema.sql`` names them
TABLES: dict[str, tuple[str, ...]] = {
    "providers": (
        "id", "provider_id", "provider_type", "display_name", "description", "enabled",
        "connection_params", "request_settings", "created_at", "updated_at",
    ),
    "provider_models": (
        "id", "provider_id", "model_id", "display_name", "model_type", "context_window",
        "max_tokens", "enabled", "capabilities", "parameters",
    ),
    "api_keys": (
        "id", "provider_id", "key_value", "is_encrypted", "environment", "expires_at",
        "created_at", "name",
    ),
    "connection_parameters": (
        "id", "provider_id", "param_name", "param_value", "is_sensitive", "environment",
    ),
}  # fmt: skip
#: columns every back-office must have (the others may be mapped to null)
REQUIRED: dict[str, tuple[str, ...]] = {
    "providers": ("id", "provider_id", "provider_type"),
    "provider_models": ("id", "provider_id", "model_id"),
    "api_keys": ("id", "provider_id", "key_value"),
    "connection_parameters": ("id", "provider_id", "param_name", "param_value"),
}
#: columns of the logical schema that ``backoffice_schema.sql`` does not have: absent unless mapped
OPTIONAL_EXTRA: frozenset[tuple[str, str]] = frozenset({("api_keys", "name")})
MAX_MAPPING_BYTES = 64 * 1024
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,63}$")


@dataclass(frozen=True)
class Mapping:
    """Logical table/column names -> the back-office's, with where each renaming was written."""

    tables: dict[str, str] = field(default_factory=dict)
    columns: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: ``"tables.providers"`` / ``"columns.api_keys.key_value"`` -> ``file:line``
    lines: dict[str, str] = field(default_factory=dict)

    def table(self, logical: str) -> str:
        """The back-office's name of a logical table."""
        return self.tables.get(logical, logical)

    def column(self, table: str, logical: str) -> str | None:
        """The back-office's name of a logical column (None: the back-office has none)."""
        if (table, logical) in self.columns:
            return self.columns[(table, logical)]
        return None if (table, logical) in OPTIONAL_EXTRA else logical

    def where(self, table: str, column: str | None = None) -> str:
        """`` (mapping FILE:LINE)`` for a renamed table or column, else an empty string."""
        key = f"columns.{table}.{column}" if column else f"tables.{table}"
        at = self.lines.get(key)
        return f" (mapped at {at})" if at else ""


def load_mapping(path: str | Path | None) -> Mapping:
    """The mapping in ``path`` (None: the schema's own names); errors at ``file:line``."""
    if path is None:
        return Mapping()
    from gwconfig.manifests.yamlparse.loader import load_yaml

    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestInputError(f"cannot read the mapping file {where}: {exc.strerror}") from None
    if len(raw) > MAX_MAPPING_BYTES:
        raise ManifestInputError(f"{where}: a mapping file is at most {MAX_MAPPING_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(Diagnostic(where, 1, 1, "the mapping file is not UTF-8")) from None
    docs, diags = load_yaml(text, where)
    if diags:
        raise ManifestError(diags)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        line = docs[1].line if len(docs) > 1 else 1
        raise ManifestError(
            Diagnostic(where, line, 1, "a mapping file is one YAML mapping (tables:, columns:)")
        )
    doc = docs[0]
    data: dict[str, Any] = doc.data
    problems: list[Diagnostic] = []

    def problem(container: Any, key: Any, message: str, hint: str | None = None) -> None:
        line, col = doc.key_line(container, key)
        problems.append(Diagnostic(where, line, col, message, hint=hint))

    tables: dict[str, str] = {}
    columns: dict[tuple[str, str], str | None] = {}
    lines: dict[str, str] = {}
    for section in data:
        if section not in ("tables", "columns"):
            problem(data, section, f"unknown section {quoted(section)}", "use tables: or columns:")
            continue
        entries = data[section]
        if entries is None:
            continue
        if not isinstance(entries, dict):
            problem(data, section, f"{section}: expected a mapping of names")
            continue
        for key, value in entries.items():
            name = str(key)
            if section == "tables":
                if name not in TABLES:
                    problem(entries, key, f"unknown table {quoted(name)}", _hint(name, TABLES))
                    continue
            else:
                table, _, column = name.partition(".")
                if table not in TABLES or column not in TABLES[table]:
                    allowed = [f"{t}.{c}" for t, cols in TABLES.items() for c in cols]
                    problem(
                        entries, key, f"unknown column {quoted(name)} (write TABLE.COLUMN)",
                        _hint(name, allowed),
                    )  # fmt: skip
                    continue
                if value is None and column in REQUIRED[table]:
                    problem(entries, key, f"{name} is required and cannot be mapped to null")
                    continue
            if value is not None and (not isinstance(value, str) or not _IDENTIFIER.match(value)):
                line, col = doc.value_line(entries, key)
                problems.append(
                    Diagnostic(where, line, col, f"{name}: {quoted(value)} is not a column name")
                )
                continue
            line, _ = doc.key_line(entries, key)
            lines[f"{section}.{name}"] = f"{where}:{line}"
            if section == "tables":
                tables[name] = str(value) if value is not None else name
            else:
                table, _, column = name.partition(".")
                columns[(table, column)] = value
    if problems:
        raise ManifestError(problems)
    return Mapping(tables, columns, lines)


def _hint(word: str, choices: Any) -> str:
    return did_you_mean(word, choices) or "known: " + ", ".join(sorted(choices))[:300]
