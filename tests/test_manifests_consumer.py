"""``kind: Consumer``: the schema, the checks against providers and routes (errors at
file:line:col), and its canonical form (configurations without consumers keep their hash)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwconfig.manifests.front import compile_path, validate_path

PROVIDERS = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: openai
provider_type: openai
models:
  - model_id: gpt-4o
    pricing: {input_per_1m: 2.5, output_per_1m: 10.0}
    aliases: [gpt4o]
  - model_id: gpt-4o-mini
    pricing: {input_per_1m: 0.15, output_per_1m: 0.6}
  - model_id: text-embedding-3-small
    pricing: {input_per_1m: 0.02}
---
apiVersion: gwconfig/v1
kind: Provider
provider_id: mock
provider_type: mock
models:
  - model_id: mock-chat
---
apiVersion: gwconfig/v1
kind: Gateway
routes:
  - name: chat
    targets:
      - model: openai/gpt-4o
    fallbacks: [local]
  - name: local
    targets:
      - model: mock/mock-chat
"""


def _tree(tmp_path: Path, consumers: str) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    (root / "providers.yaml").write_text(PROVIDERS)
    (root / "consumers.yaml").write_text(consumers)
    return root


def _errors(root: Path) -> list[str]:
    return [f"{d.path.rsplit('/', 1)[-1]}:{d.line}:{d.col}: {d.message}" for d in
            validate_path(root) if d.severity == "error"]  # fmt: skip


GOOD = """\
apiVersion: gwconfig/v1
kind: Consumer
name: team-search
description: Search ranking
models: ["openai/gpt-4o*", gpt4o]
limits: {rpm: 600, tpm: 200000}
budget: {usd: 50, period: day}
tags: [search, b]
"""


def test_a_consumer_compiles_to_its_canonical_form(tmp_path: Path) -> None:
    config = compile_path(_tree(tmp_path, GOOD))
    assert config.data["consumers"] == [
        {
            "name": "team-search",
            "description": "Search ranking",
            "models": ["openai/gpt-4o*", "gpt4o"],
            "limits": {"rpm": 600, "tpm": 200000},
            "budget": {"usd": 50.0, "period": "day"},
            "tags": ["b", "search"],
        }
    ]
    assert config.sources["consumer:team-search"].path.endswith("consumers.yaml")
    assert config.sources["consumer:team-search"].line == 1


def test_without_consumers_the_canonical_form_and_hash_are_unchanged(tmp_path: Path) -> None:
    with_one = compile_path(_tree(tmp_path, GOOD))
    (tmp_path / "m" / "consumers.yaml").unlink()
    without = compile_path(tmp_path / "m")
    assert "consumers" not in without.data
    assert {k: v for k, v in with_one.data.items() if k != "consumers"} == without.data
    assert with_one.content_hash != without.content_hash


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        pytest.param(
            '[chat, "nope-route"]',
            "consumers.yaml:4:16: consumer 'c' names unknown route or alias 'nope-route'",
            id="unknown-route",
        ),
        pytest.param(
            '["anthropic/*"]',
            "consumers.yaml:4:10: consumer 'c': model pattern 'anthropic/*' matches no model or "
            "route",
            id="pattern-matching-nothing",
        ),
        pytest.param(
            "[openai/gpt-5]",
            "consumers.yaml:4:10: consumer 'c' names unknown model 'openai/gpt-5'",
            id="unknown-model",
        ),
    ],
)
def test_names_that_match_nothing_are_errors_at_their_place(
    tmp_path: Path, models: str, expected: str
) -> None:
    doc = f"apiVersion: gwconfig/v1\nkind: Consumer\nname: c\nmodels: {models}\n"
    assert _errors(_tree(tmp_path, doc)) == [expected]


def test_a_budget_needs_pricing_on_every_model_it_may_reach(tmp_path: Path) -> None:
    doc = """\
apiVersion: gwconfig/v1
kind: Consumer
name: c
models: [chat, "openai/*"]
budget: {usd: 10, period: week}
"""
    # chat falls back to local (mock/mock-chat, no pricing); the embedding model has no
    # output price
    assert _errors(_tree(tmp_path, doc)) == [
        "consumers.yaml:5:9: consumer 'c' has a budget but may call models without pricing: "
        "mock/mock-chat, openai/text-embedding-3-small"
    ]


def test_a_priced_consumer_without_budget_may_call_anything(tmp_path: Path) -> None:
    doc = "apiVersion: gwconfig/v1\nkind: Consumer\nname: c\nmodels: [chat, local, 'mock/*']\n"
    assert _errors(_tree(tmp_path, doc)) == []


def test_schema_errors_say_where(tmp_path: Path) -> None:
    doc = """\
apiVersion: gwconfig/v1
kind: Consumer
name: Team Search
models: []
limits: {rpm: 0, tpm: 2000000000, rpd: 5}
budget: {usd: 10, period: year}
"""
    assert _errors(_tree(tmp_path, doc)) == [
        "consumers.yaml:3:7: name: 'Team Search' does not match the pattern "
        "^[a-z0-9](?:[a-z0-9_.-]{0,62}[a-z0-9])?$",
        "consumers.yaml:4:9: models: tuple should have at least 1 item after validation, not 0",
        "consumers.yaml:5:15: limits.rpm: input should be greater than or equal to 1",
        "consumers.yaml:5:23: limits.tpm: input should be less than or equal to 1000000000",
        "consumers.yaml:5:35: unknown field 'rpd' in 'limits'",
        "consumers.yaml:6:27: budget.period: input should be 'day', 'week' or 'month', got 'year'",
    ]


def test_a_consumer_name_is_unique_across_files(tmp_path: Path) -> None:
    doc = "apiVersion: gwconfig/v1\nkind: Consumer\nname: c\nmodels: [chat]\n"
    root = _tree(tmp_path, doc)
    (root / "more.yaml").write_text("# again\n" + doc)
    assert _errors(root) == [
        f"more.yaml:4:7: duplicate consumer 'c' (first at {root / 'consumers.yaml'}:3)"
    ]


def test_a_model_listed_twice_is_an_error(tmp_path: Path) -> None:
    doc = "apiVersion: gwconfig/v1\nkind: Consumer\nname: c\nmodels: [chat, chat]\n"
    errors = _errors(_tree(tmp_path, doc))
    assert len(errors) == 1 and "listed twice" in errors[0], errors
