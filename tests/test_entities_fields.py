"""The field specs and what derives from them: records, rows, SELECTs, verify, the writer."""

from __future__ import annotations

from typing import Any

import pytest

from gwconfig.adopt import SecretOutput, parity, render_manifests
from gwconfig.db.models import Base
from gwconfig.db.rows import plain_columns
from gwconfig.entities import (
    API_KEY,
    CONNECTION_PARAMETER,
    CONSUMER,
    KINDS,
    MODEL,
    PROVIDER,
    ROUTE,
    EntityKind,
)
from gwconfig.entities.fields import EMPTY, REQUIRED, Field
from gwconfig.entities.records import (
    ApiKeyBody,
    ConsumerBody,
    ModelBody,
    ParameterBody,
    ProviderBody,
    RouteBody,
    body_builder,
)
from gwconfig.reconcile import selects

RECORDS = [
    (ProviderBody, PROVIDER),
    (ModelBody, MODEL),
    (ApiKeyBody, API_KEY),
    (ParameterBody, CONNECTION_PARAMETER),
    (RouteBody, ROUTE),
    (ConsumerBody, CONSUMER),
]
TABLE_KINDS = [k for k in KINDS.values() if k.table is not None]


@pytest.mark.parametrize(("record", "kind"), RECORDS, ids=lambda x: getattr(x, "__name__", ""))
def test_each_record_has_its_kinds_fields_in_order(record: type, kind: EntityKind) -> None:
    assert record._fields == kind.fields  # type: ignore[attr-defined]


def test_every_kind_with_a_table_has_a_record_and_a_select() -> None:
    assert {kind.name for _, kind in RECORDS} == {k.name for k in TABLE_KINDS}
    read = {s.kind.name for s in vars(selects).values() if isinstance(s, selects.Select)}
    assert read == {k.name for k in TABLE_KINDS}


def test_field_columns_are_table_columns() -> None:
    for kind in TABLE_KINDS:
        columns = set(Base.metadata.tables[kind.table or ""].columns.keys())
        assert {f.column for f in kind.specs} <= columns, kind.name


@pytest.mark.parametrize("select", [selects.MODELS, selects.PROVIDERS, selects.ROUTES,
                                    selects.KEYS, selects.PARAMETERS,
                                    selects.CONSUMERS])  # fmt: skip
def test_selects_read_every_field(select: selects.Select) -> None:
    sql = select.sql("postgresql")
    for f in select.kind.specs:
        assert f.column in sql, (select.kind.name, f.column)
    # documents come last, in canonical order, each as its stored text
    assert [f.name for f in select.documents] == [f.name for f in select.kind.specs if f.json]
    for f in select.documents:
        assert f"CAST({f.column} AS TEXT)" in sql


def test_row_builders_write_every_plain_field_column() -> None:
    body: dict[str, Any] = {}
    for kind in TABLE_KINDS:
        body = {f.name: [] if f.json else f"v-{f.name}" for f in kind.specs}
        if kind is API_KEY:
            body["expires_at"] = None
        row = plain_columns(kind, body, "p" if kind.parent else None)
        plain = {f.column for f in kind.specs if not f.secret}
        assert plain <= set(row), kind.name
        if kind.parent is not None:
            assert row["provider_id"] == "p"
        assert not {f.column for f in kind.specs if f.secret} & set(row)


def test_flag_fields_become_booleans_and_timestamps_canonical_text() -> None:
    build = body_builder((Field("a", "flag"), Field("b", "timestamp"), Field("c")))
    assert build((1, "2030-01-02 03:04:05", "x")) == {
        "a": True,
        "b": "2030-01-02T03:04:05Z",
        "c": "x",
    }


def test_verify_compares_the_back_office_fields() -> None:
    compared = {kind.name: [f.name for f in parity._PLAIN[kind]] for kind in parity._PLAIN}
    assert compared["provider"] == [
        "provider_type", "display_name", "description", "enabled", "connection",
        "request_settings",
    ]  # fmt: skip
    assert compared["model"] == [
        "display_name", "model_type", "context_window", "max_tokens", "enabled", "capabilities",
        "parameters",
    ]  # fmt: skip
    assert compared["api_key"] == ["expires_at"]
    assert compared["connection_parameter"] == ["sensitive"]
    assert [f.name for f in parity._SECRET[API_KEY]] == ["value"]


def _model(**fields: Any) -> dict[str, Any]:
    base = ModelBody(
        model_id="m", display_name="m", model_type="chat", context_window=None, max_tokens=None,
        enabled=True, capabilities=[], parameters={}, pricing=None, aliases=[],
    )  # fmt: skip
    return base._replace(**fields).body()


def _models_yaml(*models: dict[str, Any]) -> str:
    provider = ProviderBody(
        provider_id="p", provider_type="openai", display_name="p", description=None,
        enabled=True, tags=[], deletion_protection=False, connection={}, request_settings={},
    ).body()  # fmt: skip
    provider.update(connection_parameters=[], api_keys=[], models=list(models))
    data = {"providers": [provider], "gateway": {"default_route": None, "routes": []}}
    text = render_manifests(data, {}, SecretOutput("env")).files["p.yaml"].decode()
    return text.partition("models:\n")[2]


def test_the_writer_leaves_out_each_fields_default() -> None:
    assert _models_yaml(_model()) == "  - model_id: m\n"
    for f in MODEL.specs[1:]:
        assert f.default is not REQUIRED or f.same_as is not None, f.name
    assert EMPTY is not None


def test_the_writer_writes_fields_in_spec_order() -> None:
    text = _models_yaml(
        _model(
            display_name="M", model_type="embedding", context_window=8, max_tokens=4,
            enabled=False, capabilities=["tools"], parameters={"t": 1},
            pricing={"currency": "USD", "input_per_1m": 1.0, "output_per_1m": None,
                     "cached_input_per_1m": None},
            aliases=["a"],
        )
    )  # fmt: skip
    keys = [line.strip().removeprefix("- ").split(":")[0] for line in text.splitlines()]
    keys = [k for k in keys if k in MODEL.fields]
    assert keys == list(MODEL.fields)
