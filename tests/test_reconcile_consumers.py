"""Consumers through the reconciler on every engine: apply, plan, audit, prune, rollback,
dump and the state an apply leaves (equal to a re-read); a provider selection leaves them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text

from builders import gateway_doc, provider_doc, write_manifests
from gwconfig.adopt.dump import DumpOptions, dump
from gwconfig.adopt.writer import SecretOutput
from gwconfig.manifests.front import compile_path
from gwconfig.manifests.yamlparse.fast import parse_fast
from gwconfig.reconcile import commands
from reconcile_helpers import apply, plan, read_state_at, yes

CONSUMER = """\
apiVersion: gwconfig/v1
kind: Consumer
name: team-a
description: The A team
models: [chat, "openai/m*"]
limits: {rpm: 5}
tags: [a]
"""


PRICED = [
    {"model_id": "m1", "pricing": {"input_per_1m": 1.0, "output_per_1m": 2.0}},
    {"model_id": "m2"},
]


def _tree(tmp_path: Path, consumer: str | None = CONSUMER, **provider: object) -> Path:
    root = write_manifests(tmp_path / "m", provider_doc(**provider), gateway_doc())
    if consumer is not None:
        (root / "consumers.yaml").write_text(consumer)
    return root


def _audit(url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT entity_key, action, after FROM audit_events "
                "WHERE entity_type = 'consumer' ORDER BY id"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    return [(r[0], r[1], r[2] if isinstance(r[2], str) or r[2] is None else json.dumps(r[2]))
            for r in rows]  # fmt: skip


def test_consumers_are_applied_planned_audited_and_rolled_back(gw: str, tmp_path: Path) -> None:
    root = _tree(tmp_path)
    first, result = apply(root, gw)
    created = [c for c in first.changes if c.entity == "consumer"]
    assert [(c.action, c.key) for c in created] == [("create", "consumer:team-a")]
    state = read_state_at(gw)
    assert state.data["consumers"] == compile_path(root).data["consumers"]
    assert result.state_hash == state.state_hash  # what apply computed is what was written
    assert not plan(root, gw).changes

    (root / "consumers.yaml").write_text(CONSUMER.replace("rpm: 5", "rpm: 7, tpm: 900"))
    changed = plan(root, gw)
    assert [(c.action, c.key) for c in changed.changes] == [("update", "consumer:team-a")]
    assert {f.path for f in changed.changes[0].fields} == {"limits.rpm", "limits.tpm"}
    _, second = apply(root, gw)
    assert read_state_at(gw).data["consumers"][0]["limits"] == {"rpm": 7, "tpm": 900}
    assert second.state_hash == read_state_at(gw).state_hash

    (root / "consumers.yaml").unlink()
    blocked = plan(root, gw)
    assert [(c.action, c.blocked) for c in blocked.changes] == [("delete", "needs --prune")]
    apply(root, gw, prune=True)
    after_prune = read_state_at(gw)
    assert "consumers" not in after_prune.data

    commands.rollback(gw, 1, review=yes)
    assert read_state_at(gw).data["consumers"] == compile_path(_tree(tmp_path)).data["consumers"]
    actions = [(key, action) for key, action, _ in _audit(gw)]
    assert actions == [
        ("consumer:team-a", "create"),
        ("consumer:team-a", "update"),
        ("consumer:team-a", "delete"),
        ("consumer:team-a", "create"),
    ]


def test_a_provider_selection_leaves_the_consumers_alone(gw: str, tmp_path: Path) -> None:
    root = _tree(tmp_path)
    selected, _ = apply(root, gw, targets=("openai",))
    assert not [c for c in selected.changes if c.entity == "consumer"]
    assert "consumers" not in read_state_at(gw).data
    everything = plan(root, gw)
    assert [c.key for c in everything.changes if c.entity == "consumer"] == ["consumer:team-a"]


def test_dump_writes_the_consumers_back(gw: str, tmp_path: Path) -> None:
    team_b = (
        CONSUMER.replace("team-a", "team-b")
        .replace("limits: {rpm: 5}\n", "budget: {usd: 12.5, period: month}\n")
        .replace('"openai/m*"', "openai/m1")
    )
    root = _tree(tmp_path, CONSUMER + "---\n" + team_b, models=PRICED)
    apply(root, gw)
    out = tmp_path / "dumped"
    result = dump(DumpOptions(out, SecretOutput("env"), gw))
    assert result.consumers == 2
    text_ = (out / "consumers.yaml").read_text()
    docs = list(yaml.safe_load_all(text_))
    assert [d["name"] for d in docs] == ["team-a", "team-b"]
    assert docs[1]["budget"] == {"usd": 12.5, "period": "month"} and "limits" not in docs[1]
    assert text_.startswith("# yaml-language-server: $schema=../schemas/consumer.schema.json\n")
    assert parse_fast(text_, "consumers.yaml") is not None  # what dump writes is fast to read
    assert compile_path(out).data["consumers"] == compile_path(root).data["consumers"]
    # secrets are env references of new names there: only the consumers are compared
    assert not [c for c in plan(out, gw).changes if c.entity == "consumer"]
