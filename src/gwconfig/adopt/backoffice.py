"""The back-office reader: back-office database -> canonical configuration + plaintext secrets.

``gwconfig import`` writes manifests from it and ``gwconfig verify`` compares it with the gateway
database. Back-office values are mapped to what the manifest schema accepts (the seed service's
mapping): ``connection_params`` keys other than ``api_base``/``api_version``/``headers`` become
connection parameters; ``request_settings`` keys are the schema's (``timeout`` is
``timeout_seconds``); a model type outside the schema becomes ``other`` and is kept as the model
parameter ``backoffice_model_type``. What has no place in schema v1 is a warning naming the
provider, row and field: nothing is lost silently. Keys have no name in the back-office: per
provider and environment, in creation order, the first is ``default`` and the next ``key-2``,
``key-3``... Every provider is validated by the manifest schema, so the result is exactly what
``gwconfig compile`` gives for the written manifests (secret values are placeholders here; their
plaintexts are in :attr:`Backoffice.secrets`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, get_args

from gwconfig.adopt.cells import (
    Opener,
    Origins,
    bool_cell,
    capabilities,
    int_cell,
    json_object,
    legacy_opener,
    located,
    open_key,
    param_value,
    text_cell,
    time_cell,
)
from gwconfig.adopt.mapping import Mapping
from gwconfig.adopt.source import Tables, read_only, read_tables
from gwconfig.canonical import FORMAT_VERSION, format_timestamp
from gwconfig.entities import SecretScope
from gwconfig.errors import ValidationFailed
from gwconfig.manifests.limits import too_deep
from gwconfig.manifests.model import KNOWN_PROVIDER_TYPES, ModelType, RequestSettings
from gwconfig.secrets.names import header_param, sensitive_header

#: stands in for a secret value in the canonical data (never resolved: not a GWCONFIG_ name)
PLACEHOLDER = {"env": "BACKOFFICE_VALUE_PLACEHOLDER"}
CONNECTION_FIELDS = ("api_base", "api_version", "headers")
#: back-office request setting names -> the schema's
SETTING_ALIASES = {
    "timeout": "timeout_seconds",
    "connect_timeout": "connect_timeout_seconds",
    "retries": "max_retries",
}
SETTINGS = frozenset(RequestSettings.model_fields)
MODEL_TYPES = frozenset(get_args(ModelType))
TYPE_PARAMETER = "backoffice_model_type"
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Counts:
    """What was read: providers, models, keys (expired among them), connection parameters."""

    providers: int = 0
    models: int = 0
    keys: int = 0
    parameters: int = 0
    expired_keys: int = 0


@dataclass
class Backoffice:
    """The back-office as a canonical configuration, its plaintext secrets and its warnings."""

    data: dict[str, Any]
    secrets: dict[SecretScope, str] = field(repr=False)
    warnings: list[str]
    counts: Counts
    #: entity key (``pid/model_id``, ``pid/key:name@env``...) -> the back-office row it came from
    rows: dict[str, str] = field(default_factory=dict)


def read_backoffice(
    url: str, mapping: Mapping | None = None, *, legacy_decrypt: str | None = None
) -> Backoffice:
    """Read the back-office at ``url`` (read only) and convert it (see the module docstring)."""
    mapping = mapping or Mapping()
    opener = legacy_opener(legacy_decrypt)
    with read_only(url) as conn:
        tables = read_tables(conn, mapping)
    return convert(tables, mapping, opener)


class _Builder:
    def __init__(self, mapping: Mapping, opener: Opener | None) -> None:
        self.mapping = mapping
        self.opener = opener
        self.warnings: list[str] = []
        self.problems: list[str] = []
        self.secrets: dict[SecretScope, str] = {}
        self.rows: dict[str, str] = {}
        self.expired = 0
        self.now = datetime.now(UTC)

    def where(self, table: str, row: dict[str, Any]) -> str:
        return f"{self.mapping.table(table)} row id={row.get('id')}"

    def warn(self, pid: str, where: str, message: str) -> None:
        self.warnings.append(f"provider {pid!r} ({where}): {message}")


def convert(tables: Tables, mapping: Mapping, opener: Opener | None) -> Backoffice:
    """The rows of :func:`~gwconfig.adopt.source.read_tables` as a :class:`Backoffice`."""
    from gwconfig.manifests.compile import canonical_provider

    b = _Builder(mapping, opener)
    by_id: dict[str, dict[str, Any]] = {}
    surrogate: dict[str, str] = {}
    for row in tables["providers"]:
        pid = text_cell(row["provider_id"]) or ""
        if pid in by_id:
            b.problems.append(f"{b.where('providers', row)}: provider_id {pid!r} is repeated")
            continue
        by_id[pid] = row
        if row.get("id") is not None:
            surrogate[str(row["id"])] = pid

    def owner(table: str, row: dict[str, Any]) -> str | None:
        ref = text_cell(row["provider_id"]) or ""
        pid = ref if ref in by_id else surrogate.get(ref)
        if pid is None:
            b.warnings.append(
                f"{b.where(table, row)}: provider_id {ref!r} names no provider; not imported"
            )
        return pid

    children: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for table in ("provider_models", "api_keys", "connection_parameters"):
        for row in tables[table]:
            parent = owner(table, row)
            if parent is not None:
                children[parent][table].append(row)

    providers = []
    documents: dict[str, tuple[dict[str, Any], Origins]] = {}
    counts = {"models": 0, "keys": 0, "parameters": 0}
    for pid, row in by_id.items():
        kids = children.get(pid) or {}
        doc, origins = _provider(b, pid, row, kids)
        if doc is None:
            continue
        if too_deep(doc) is not None:  # reported by _checked, never walked by the schema
            documents[pid] = (doc, origins)
            continue
        manifest = _validated(b, pid, doc, origins)
        if manifest is None:
            continue
        documents[pid] = (doc, origins)
        canonical = canonical_provider(manifest)
        providers.append(canonical)
        counts["models"] += len(canonical["models"])
        counts["keys"] += len(canonical["api_keys"])
        counts["parameters"] += len(canonical["connection_parameters"])
        if len(b.problems) >= MAX_PROBLEMS:
            break
    if not b.problems:
        _checked(b, documents)
    if b.problems:
        shown = b.problems[:MAX_PROBLEMS]
        more = len(b.problems) - len(shown)
        raise ValidationFailed(
            "the back-office cannot be imported: "
            + "; ".join(shown)
            + (f"; and {more} more" if more > 0 else "")
            + "; nothing was written"
        )
    providers.sort(key=lambda p: p["provider_id"])
    data = {
        "format_version": FORMAT_VERSION,
        "providers": providers,
        "gateway": {"default_route": None, "routes": []},
    }
    n = Counts(len(providers), counts["models"], counts["keys"], counts["parameters"], b.expired)
    return Backoffice(data, b.secrets, b.warnings, n, b.rows)


def _validated(b: _Builder, pid: str, doc: dict[str, Any], origins: Origins) -> Any:
    from pydantic import ValidationError

    from gwconfig.manifests.model import ProviderManifest

    try:
        return ProviderManifest.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            message = err["msg"].removeprefix("Value error, ")
            b.problems.append(located(pid, origins, err["loc"], message))
        return None


def _checked(b: _Builder, docs: dict[str, tuple[dict[str, Any], Origins]]) -> None:
    """The checks of ``validate`` on the providers read (nesting, each provider's own, and
    across them: aliases), each problem named by its row and field."""
    from gwconfig.manifests.in_memory import check_providers

    for problem in check_providers([doc for doc, _ in docs.values()]):
        pid = problem.document
        b.problems.append(located(pid, docs[pid][1], problem.loc, problem.message))


def _provider(
    b: _Builder, pid: str, row: dict[str, Any], kids: dict[str, list[dict[str, Any]]]
) -> tuple[dict[str, Any] | None, Origins]:
    where = b.where("providers", row)
    origins: Origins = {("provider", 0): where}
    try:
        doc: dict[str, Any] = {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": pid,
            "provider_type": text_cell(row["provider_type"]),
            "enabled": bool_cell(row["enabled"], True, where, "enabled"),
        }
        for name in ("display_name", "description"):
            if row[name] is not None:
                doc[name] = text_cell(row[name])
        if doc["provider_type"] not in KNOWN_PROVIDER_TYPES:
            b.warn(pid, where, f"provider_type {doc['provider_type']!r} has no built-in "
                   "implementation: validate and the runtime need a plugin for it")  # fmt: skip
        connection, params = _connection(b, pid, where, row)
        doc["request_settings"] = _settings(b, pid, where, row)
        params = _parameters(b, pid, params, kids.get("connection_parameters", ()))
        if params:
            connection["parameters"] = [p for p, _ in params]
            origins.update({("param", i): w for i, (_, w) in enumerate(params)})
        doc["connection"] = connection
        keys = _keys(b, pid, kids.get("api_keys", ()))
        doc["api_keys"] = [k for k, _ in keys]
        origins.update({("api_keys", i): w for i, (_, w) in enumerate(keys)})
        models = _models(b, pid, kids.get("provider_models", ()))
        doc["models"] = [m for m, _ in models]
        origins.update({("models", i): w for i, (_, w) in enumerate(models)})
    except ValidationFailed as exc:
        b.problems.append(exc.message)
        return None, origins
    return doc, origins


def _connection(
    b: _Builder, pid: str, where: str, row: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], str]]]:
    raw = json_object(row["connection_params"], where, "connection_params")
    connection: dict[str, Any] = {}
    params: list[tuple[dict[str, Any], str]] = []
    for name, value in raw.items():
        if name == "headers" and isinstance(value, dict):
            connection[name] = _headers(b, pid, where, value)
            continue
        if name in CONNECTION_FIELDS:
            if value is not None:
                connection[name] = value
            continue
        field_name = f"connection_params.{name}"
        if value is None:
            b.warn(pid, where, f"{field_name} is null; not imported")
            continue
        if isinstance(value, dict | list):
            b.warn(pid, where, f"{field_name} is structured; imported as its JSON text")
            value = param_value(value)
        params.append(({"name": name, "value": value}, f"{where}, {field_name}"))
    return connection, params


def _headers(b: _Builder, pid: str, where: str, raw: dict[str, Any]) -> dict[str, Any]:
    """``connection_params.headers``; a credential header becomes the secret ``header:NAME``."""
    headers = dict(raw)
    for name, value in raw.items():
        if isinstance(value, str) and sensitive_header(str(name)):
            scope = SecretScope(pid, "param", header_param(name), "default")
            headers[name], b.secrets[scope] = PLACEHOLDER, value
            b.rows[f"{pid}/param:{scope.name}@default"] = f"{where}, headers.{name}"
    return headers


def _settings(b: _Builder, pid: str, where: str, row: dict[str, Any]) -> dict[str, Any]:
    raw = json_object(row["request_settings"], where, "request_settings")
    settings: dict[str, Any] = {}
    for name, value in raw.items():
        target = SETTING_ALIASES.get(name, name)
        if target not in SETTINGS:
            b.warn(pid, where, f"request_settings.{name} has no place in schema v1; not imported")
        elif value is not None:
            settings[target] = value
    return settings


def _parameters(
    b: _Builder, pid: str, from_json: list[tuple[dict[str, Any], str]], rows: Any
) -> list[tuple[dict[str, Any], str]]:
    out: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
        (doc["name"], "default"): (doc, w) for doc, w in from_json
    }
    for row in rows:
        where = b.where("connection_parameters", row)
        name = text_cell(row["param_name"]) or ""
        env = _environment(b, pid, where, row["environment"])
        sensitive = bool_cell(row["is_sensitive"], False, where, "is_sensitive")
        if row["param_value"] is None:
            b.warn(pid, where, f"parameter {name!r} has no value (NULL); not imported")
            continue
        doc: dict[str, Any] = {"name": name, "environment": env, "sensitive": sensitive}
        if sensitive:
            plain = text_cell(row["param_value"]) or ""
            if not plain:
                b.problems.append(f"provider {pid!r} ({where}): sensitive parameter is empty")
                continue
            doc["value"] = PLACEHOLDER
            b.secrets[SecretScope(pid, "param", name, env)] = plain
        else:
            doc["value"] = param_value(row["param_value"])
        if (name, env) in out:
            b.warn(pid, where, f"parameter {name!r} also in connection_params; this row is kept")
        out[(name, env)] = (doc, where)
        b.rows[f"{pid}/param:{name}@{env}"] = where
    for (name, env), (doc, where) in out.items():
        b.rows.setdefault(f"{pid}/param:{name}@{env}", where)
        if not doc.get("sensitive") and sensitive_header(name):
            b.warn(pid, where, f"parameter {name!r} is named like a secret but not sensitive: "
                   "imported as plain text; mark it sensitive in the back-office and import "
                   "again")  # fmt: skip
    return list(out.values())


def _environment(b: _Builder, pid: str, where: str, value: Any) -> str:
    text = text_cell(value)
    if text is None:
        return "default"
    env = text.strip().lower()
    if env != text:
        b.warn(pid, where, f"environment {text!r} is written as {env!r}")
    return env


def _keys(b: _Builder, pid: str, rows: Any) -> list[tuple[dict[str, Any], str]]:
    by_env: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_env[_environment(b, pid, b.where("api_keys", row), row["environment"])].append(row)
    out: list[tuple[dict[str, Any], str]] = []
    for env, env_rows in by_env.items():
        env_rows.sort(key=lambda r: _creation_order(b, r))
        unnamed = 0
        for row in env_rows:
            where = b.where("api_keys", row)
            name = text_cell(row.get("name"))
            if name is None:
                unnamed += 1
                name = "default" if unnamed == 1 else f"key-{unnamed}"
            token = text_cell(row["key_value"]) or ""
            if bool_cell(row["is_encrypted"], False, where, "is_encrypted"):
                plain = open_key(b.opener, token, f"provider {pid!r} ({where})")
            else:
                plain = token
            if not plain:
                b.problems.append(f"provider {pid!r} ({where}): key_value is empty")
                continue
            doc: dict[str, Any] = {"name": name, "environment": env, "value": PLACEHOLDER}
            expires = time_cell(row["expires_at"], where, "expires_at")
            if expires is not None:
                doc["expires_at"] = expires
                if expires <= b.now:
                    b.expired += 1
                    b.warn(pid, where, f"key {name!r} expired at {format_timestamp(expires)}; kept")
            scope = SecretScope(pid, "key", name, env)
            if scope in b.secrets:
                b.problems.append(f"provider {pid!r} ({where}): key name {name!r} is repeated")
                continue
            b.secrets[scope] = plain
            b.rows[scope.id] = where
            out.append((doc, where))
    return out


def _creation_order(b: _Builder, row: dict[str, Any]) -> tuple[Any, ...]:
    created = time_cell(row["created_at"], b.where("api_keys", row), "created_at")
    ident = row.get("id")
    return (
        created is None,
        created or b.now,
        not isinstance(ident, int),
        ident if isinstance(ident, int) else str(ident),
    )


def _models(b: _Builder, pid: str, rows: Any) -> list[tuple[dict[str, Any], str]]:
    out: list[tuple[dict[str, Any], str]] = []
    seen: dict[str, str] = {}
    for row in rows:
        where = b.where("provider_models", row)
        model_id = text_cell(row["model_id"]) or ""
        if model_id in seen:
            b.problems.append(
                f"provider {pid!r}: model id {model_id!r} is repeated ({seen[model_id]} and "
                f"{where})"
            )
            continue
        seen[model_id] = where
        doc: dict[str, Any] = {"model_id": model_id}
        if row["display_name"] is not None:
            doc["display_name"] = text_cell(row["display_name"])
        parameters = json_object(row["parameters"], where, "parameters")
        kind = text_cell(row["model_type"])
        if kind is not None:
            normal = kind.strip().lower()
            if normal in MODEL_TYPES:
                doc["model_type"] = normal
            else:
                doc["model_type"] = "other"
                parameters[TYPE_PARAMETER] = kind
                b.warn(
                    pid, where, f"model {model_id!r}: model_type {kind!r} is not in schema v1; "
                    f"written as 'other' with the model parameter {TYPE_PARAMETER}",
                )  # fmt: skip
        for column in ("context_window", "max_tokens"):
            count = int_cell(row[column], where, column)
            if count is not None and count <= 0:
                b.warn(pid, where, f"model {model_id!r}: {column} {count} is not a count; omitted")
                count = None
            if count is not None:
                doc[column] = count
        if doc.get("max_tokens", 0) > doc.get("context_window", 2**63):
            b.warn(pid, where, f"model {model_id!r}: max_tokens {doc['max_tokens']} is larger "
                   f"than context_window {doc['context_window']}; max_tokens omitted")  # fmt: skip
            del doc["max_tokens"]
        doc["enabled"] = bool_cell(row["enabled"], True, where, "enabled")
        caps = capabilities(
            row["capabilities"], where, partial(_model_warning, b, pid, where, model_id)
        )
        if caps:
            doc["capabilities"] = caps
        if parameters:
            doc["parameters"] = parameters
        b.rows[f"{pid}/{model_id}"] = where
        out.append((doc, where))
    return out


def _model_warning(b: _Builder, pid: str, where: str, model_id: str, message: str) -> None:
    b.warn(pid, where, f"model {model_id!r}: {message}")
