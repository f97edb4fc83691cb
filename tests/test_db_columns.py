"""Values that validate are values every engine stores: column limits checked before the database.

The limits are read back here from the SQLAlchemy models' column types, so a model and the
checks of :mod:`gwconfig.db.columns` can never disagree silently.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Integer, String, Text
from sqlalchemy.dialects import mysql

from gwconfig.cli import cli
from gwconfig.db import columns as col
from gwconfig.db import open_database
from gwconfig.db.models import Base
from gwconfig.manifests import validate_path
from gwconfig.reconcile.state import read_state
from reconcile_helpers import TABLES as REACHABLE_TABLES


def column_limit(table: str, column: str) -> int:
    """The limit of a column on the strictest engine, derived from its SQLAlchemy type."""
    ctype = Base.metadata.tables[table].c[column].type
    on_mysql = ctype.dialect_impl(mysql.dialect())
    if isinstance(on_mysql, String) and on_mysql.length is not None:
        return on_mysql.length  # VARCHAR(n): n characters on PostgreSQL and MySQL/MariaDB
    if isinstance(on_mysql, Text) or isinstance(getattr(ctype, "impl", None), Text):
        compiled = ctype.compile(dialect=mysql.dialect())
        assert compiled == "TEXT", compiled  # 65,535 bytes; MEDIUMTEXT/LONGTEXT would be more
        return 65_535
    if isinstance(ctype, Integer):
        return 2**31 - 1  # INTEGER is 32-bit signed on PostgreSQL and MySQL/MariaDB
    raise AssertionError(f"no limit known for {table}.{column}: {ctype!r}")


# Every String/Text/Integer column of the gateway tables: reachable from a manifest or an option
# (the field below that fills it), or written only by gwconfig itself (and why it fits).
REACHABLE = {
    ("providers", "provider_id"): "provider_id",
    ("providers", "provider_type"): "provider_type",
    ("providers", "display_name"): "provider display_name",
    ("providers", "description"): "provider description",
    ("provider_models", "provider_id"): "provider_id",
    ("provider_models", "model_id"): "model_id",
    ("provider_models", "display_name"): "model display_name",
    ("provider_models", "model_type"): "model_type (a closed list of short names)",
    ("provider_models", "context_window"): "context_window",
    ("provider_models", "max_tokens"): "max_tokens",
    ("api_keys", "provider_id"): "provider_id",
    ("api_keys", "name"): "api key name",
    ("api_keys", "environment"): "api key environment",
    ("api_keys", "key_value"): "api key value (Fernet token of a secret <= SECRET_BYTES)",
    ("connection_parameters", "provider_id"): "provider_id",
    ("connection_parameters", "param_name"): "parameter name",
    ("connection_parameters", "environment"): "parameter environment",
    ("connection_parameters", "param_value"): "parameter value",
    ("routes", "name"): "route name",
    ("routes", "description"): "route description",
    ("routes", "strategy"): "strategy (a closed list of short names)",
    ("config_revisions", "actor"): "--actor",
    ("config_revisions", "git_sha"): "GITHUB_SHA",
    ("audit_events", "actor"): "--actor",
    ("audit_events", "entity_key"): "built from ids: at most 64+7+128+1+64 or 64+1+255",
}
INTERNAL = {
    ("provider_models", "id"),
    ("api_keys", "id"),
    ("api_keys", "fingerprint"),
    ("api_keys", "key_id"),
    ("connection_parameters", "id"),
    ("connection_parameters", "fingerprint"),
    ("connection_parameters", "key_id"),
    # scheme://host:port, the host at most egress.MAX_HOST characters (api_base_refusal)
    ("api_keys", "origin"),
    ("connection_parameters", "origin"),
    ("providers", "key_origin"),
    ("config_revisions", "number"),
    ("config_revisions", "content_hash"),
    ("config_revisions", "state_hash"),
    ("audit_events", "id"),
    ("audit_events", "revision_number"),
    ("audit_events", "entity_type"),
    ("audit_events", "action"),
}


def test_every_bounded_column_is_accounted_for() -> None:
    found = set()
    for table in (*REACHABLE_TABLES,):
        for c in Base.metadata.tables[table].c:
            if isinstance(c.type, String | Integer) or isinstance(
                getattr(c.type, "impl", None), Text
            ):
                found.add((table, c.name))
    assert found == set(REACHABLE) | INTERNAL


def test_the_limits_module_matches_the_models() -> None:
    assert column_limit("providers", "provider_id") == col.IDENT
    assert column_limit("api_keys", "name") == col.IDENT
    assert column_limit("api_keys", "environment") == col.IDENT
    assert column_limit("providers", "provider_type") == col.PROVIDER_TYPE
    assert column_limit("providers", "display_name") == col.DISPLAY_NAME
    assert column_limit("provider_models", "display_name") == col.DISPLAY_NAME
    assert column_limit("provider_models", "model_id") == col.MODEL_ID
    assert column_limit("connection_parameters", "param_name") == col.PARAM_NAME
    assert column_limit("routes", "name") == col.ROUTE_NAME
    assert column_limit("config_revisions", "actor") == col.ACTOR
    assert column_limit("audit_events", "actor") == col.ACTOR
    assert column_limit("config_revisions", "git_sha") == col.GIT_SHA
    assert column_limit("providers", "description") == col.TEXT_BYTES
    assert column_limit("connection_parameters", "param_value") == col.TEXT_BYTES
    assert column_limit("provider_models", "context_window") == col.INTEGER_MAX
    assert column_limit("audit_events", "entity_key") >= max(
        col.IDENT + len("/param:") + col.PARAM_NAME + len("@") + col.IDENT,
        col.IDENT + len("/") + col.MODEL_ID,
    )
    # the longest secret's Fernet token (base64 of 57 bytes + padded ciphertext) fits its column
    token = 4 * -(-(57 + 16 * (col.SECRET_BYTES // 16 + 1)) // 3)
    assert token <= column_limit("api_keys", "key_value")


# --- one manifest with every reachable field, each on a line of its own -------------------------

TEMPLATE = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: {provider_id}
provider_type: mock
display_name: {provider_display}
description: {provider_description}
tags: [{tag}]
connection:
  headers: {{X-Test: {header}}}
  parameters:
    - name: {param_name}
      environment: {param_env}
      value: {param_value}
api_keys:
  - name: {key_name}
    environment: {key_env}
    value: {{env: GW_TEST_COLUMN_KEY}}
models:
  - model_id: {model_id}
    display_name: {model_display}
    context_window: {context_window}
    max_tokens: {max_tokens}
    parameters: {{p: {model_param}}}
---
apiVersion: gwconfig/v1
kind: Gateway
default_route: {route_name}
routes:
  - name: {route_name}
    description: {route_description}
    targets: [{{model: {target}}}]
"""

DEFAULTS: dict[str, Any] = {
    "provider_id": "p",
    "provider_display": "P",
    "provider_description": "d",
    "tag": "t",
    "header": "h",
    "param_name": "org",
    "param_env": "default",
    "param_value": "v",
    "key_name": "default",
    "key_env": "default",
    "model_id": "m",
    "model_display": "M",
    "context_window": 1000,
    "max_tokens": 10,
    "model_param": "x",
    "route_name": "r",
    "route_description": "rd",
}


@dataclass(frozen=True)
class Field:
    """A manifest field that ends in a column: its value at the limit and just over it."""

    name: str
    limit: int
    at: Any
    over: Any


def _chars(fill: str, n: int) -> str:
    return fill * n


# 'é' takes two bytes: a TEXT limit is in bytes, not characters
TEXT_AT = "é" * (col.TEXT_BYTES // 2) + "x"
TEXT_OVER = TEXT_AT + "x"

FIELDS = [
    Field("provider_id", col.IDENT, _chars("a", col.IDENT), _chars("a", col.IDENT + 1)),
    Field("provider_display", col.DISPLAY_NAME, "P" * 255, "P" * 256),
    Field("provider_description", col.TEXT_BYTES, TEXT_AT, TEXT_OVER),
    Field("tag", col.IDENT, _chars("t", col.IDENT), _chars("t", col.IDENT + 1)),
    Field("param_name", col.PARAM_NAME, "o" * 128, "o" * 129),
    Field("param_env", col.IDENT, "e" * 64, "e" * 65),
    # a plain parameter value is stored as JSON text: two quotes around it
    Field("param_value", col.TEXT_BYTES, "v" * (col.TEXT_BYTES - 2), "v" * (col.TEXT_BYTES - 1)),
    Field("key_name", col.IDENT, "k" * 64, "k" * 65),
    Field("key_env", col.IDENT, "n" * 64, "n" * 65),
    Field("model_id", col.MODEL_ID, "M" * 255, "M" * 256),
    Field("model_display", col.DISPLAY_NAME, "D" * 255, "D" * 256),
    Field("context_window", col.INTEGER_MAX, 2**31 - 1, 2**31),
    Field("max_tokens", col.INTEGER_MAX, 2**31 - 1, 2**31),
    Field("route_name", col.ROUTE_NAME, "R" * 128, "R" * 129),
    Field("route_description", col.TEXT_BYTES, TEXT_AT, TEXT_OVER),
]


def render(values: dict[str, Any]) -> str:
    """The manifest text, strings written as JSON (a YAML double-quoted scalar)."""
    merged = {**DEFAULTS, **values}
    merged["target"] = json.dumps(f"{merged['provider_id']}/{merged['model_id']}")
    if "max_tokens" in values and "context_window" not in values:
        merged["context_window"] = None
    if "context_window" in values and "max_tokens" not in values:
        merged["max_tokens"] = 10
    out = {
        k: json.dumps(v) if (isinstance(v, str) and k != "target") or v is None else v
        for k, v in merged.items()
    }
    return TEMPLATE.format(**out)


#: the YAML key in front of each field's value (several fields share a name)
KEYS = {
    "provider_display": "display_name: ",
    "provider_description": "description: ",
    "tag": "tags: [",
    "header": "X-Test: ",
    "param_name": "- name: ",
    "param_env": "environment: ",
    "param_value": "value: ",
    "key_name": "- name: ",
    "key_env": "environment: ",
    "model_display": "display_name: ",
    "model_param": "{p: ",
    "route_name": "- name: ",
    "route_description": "description: ",
}


def line_of(text: str, value: Any, field: str = "") -> int:
    """The line where ``value`` (of ``field``) is written in ``text``."""
    needle = json.dumps(value)[:60] if isinstance(value, str) else str(value)
    needle = KEYS.get(field, f"{field}: " if field else "") + needle
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def write(root: Path, text: str) -> Path:
    d = root / "providers.d"
    d.mkdir(exist_ok=True)
    (d / "p.yaml").write_text(text, encoding="utf-8")
    return d


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_a_value_over_its_column_limit_is_an_error_at_its_line(
    field: Field, tmp_path: Path
) -> None:
    text = render({field.name: field.over})
    diags = validate_path(write(tmp_path, text))
    line = line_of(text, field.over, field.name)
    assert [(Path(d.path).name, d.line) for d in diags] == [("p.yaml", line)], diags
    assert f"{field.limit:,}" in diags[0].message or str(field.limit) in diags[0].message


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_a_value_at_its_column_limit_validates(field: Field, tmp_path: Path) -> None:
    assert validate_path(write(tmp_path, render({field.name: field.at}))) == []


NUL_PLACES = ["provider_display", "provider_description", "header", "param_value",
              "model_param", "route_description", "model_display"]  # fmt: skip


@pytest.mark.parametrize("where", NUL_PLACES)
def test_a_nul_character_in_any_string_is_an_error_at_its_line(where: str, tmp_path: Path) -> None:
    value = f"before\x00after-{where}"
    text = render({where: value})
    diags = validate_path(write(tmp_path, text))
    line = line_of(text, value, where)
    assert [(Path(d.path).name, d.line) for d in diags] == [("p.yaml", line)]
    assert "NUL" in diags[0].message


def test_a_nul_character_in_a_key_is_an_error(tmp_path: Path) -> None:
    text = render({}).replace("parameters: {p:", 'parameters: {"a\\0b":')
    diags = validate_path(write(tmp_path, text))
    line = next(i for i, t in enumerate(text.splitlines(), 1) if '"a\\0b"' in t)
    assert [(d.line, "NUL" in d.message) for d in diags] == [(line, True)]


# --- at the limit, everything applies on every engine ----------------------------------------


def _apply(root: Path, db_url: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(
        cli,
        ["apply", str(root / "providers.d"), "--database-url", db_url, "--auto-approve", *extra],
        env=env,
    )


def test_every_value_at_its_limit_applies_and_reads_back(
    db_url: str, tmp_path: Path, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("GW_TEST_COLUMN_KEY", "s" * col.SECRET_BYTES)
    monkeypatch.setenv("GITHUB_SHA", "f" * col.GIT_SHA)
    values = {f.name: f.at for f in FIELDS}
    write(tmp_path, render(values))
    open_database(db_url, upgrade=True).dispose()
    result = _apply(tmp_path, db_url, "--actor", "a" * col.ACTOR)
    assert result.exit_code == 0, result.output
    result = _apply(tmp_path, db_url)  # read back exactly: nothing to change
    assert result.exit_code == 0 and "No changes" in result.output, result.output
    db = open_database(db_url)
    try:
        with db.connect() as conn:
            state = read_state(conn)
            actor, sha = conn.exec_driver_sql(
                "SELECT actor, git_sha FROM config_revisions WHERE number = 1"
            ).one()
    finally:
        db.dispose()
    provider = state.provider("a" * col.IDENT)
    assert provider is not None and provider["description"] == TEXT_AT
    assert (actor, sha) == ("a" * col.ACTOR, "f" * col.GIT_SHA)


# --- options and settings that end in a column ------------------------------------------------


def test_an_actor_option_over_its_limit_is_a_usage_error(tmp_path: Path, sqlite_url: str) -> None:
    write(tmp_path, render({}))
    result = _apply(tmp_path, sqlite_url, "--actor", "a" * (col.ACTOR + 1))
    assert result.exit_code == 2
    assert "--actor" in result.output and f"at most {col.ACTOR}" in result.output


@pytest.mark.parametrize(
    ("variable", "limit"),
    [("GWCONFIG_ACTOR", col.ACTOR), ("GITHUB_ACTOR", col.ACTOR), ("GITHUB_SHA", col.GIT_SHA)],
)
def test_settings_over_their_limit_are_refused_before_anything_is_written(
    variable: str,
    limit: int,
    tmp_path: Path,
    sqlite_url: str,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("GWCONFIG_ACTOR", "GITHUB_ACTOR", "GITHUB_SHA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("GW_TEST_COLUMN_KEY", "secret-value")
    monkeypatch.setenv(variable, "a" * (limit + 1))
    write(tmp_path, render({}))
    open_database(sqlite_url, upgrade=True).dispose()
    result = _apply(tmp_path, sqlite_url)
    assert result.exit_code == 1, result.output
    assert variable in result.output and f"at most {limit}" in result.output
    assert "internal error" not in result.output
    db = open_database(sqlite_url)
    try:
        with db.connect() as conn:
            assert read_state(conn).data["providers"] == []
    finally:
        db.dispose()


@pytest.mark.parametrize("command", [["show-revision"], ["rollback", "--auto-approve"]])
def test_revision_numbers_beyond_an_integer_column_are_usage_errors(
    command: list[str], pg_url: str
) -> None:
    result = CliRunner().invoke(cli, [*command, str(2**31), "--database-url", pg_url])
    assert result.exit_code == 2 and "2147483647" in result.output, result.output


def test_a_secret_too_long_for_its_column_is_an_error_at_its_line(
    tmp_path: Path, sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("GW_TEST_COLUMN_KEY", "s" * (col.SECRET_BYTES + 1))
    text = render({})
    write(tmp_path, text)
    open_database(sqlite_url, upgrade=True).dispose()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "GW_TEST_COLUMN_KEY" in t)
    for command in (["plan"], ["apply", "--auto-approve"]):
        args = [*command, str(tmp_path / "providers.d"), "--database-url", sqlite_url]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert f"p.yaml:{line}:" in result.output
        assert f"at most {col.SECRET_BYTES:,}" in result.output
        assert os.environ["GW_TEST_COLUMN_KEY"] not in result.output
