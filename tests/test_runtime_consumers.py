"""The runtime's consumers: ``GatewayConfig.consumers`` from a compiled file and from the
database (the same policies), aliases standing for the models they name, and configurations
that differ only in a consumer comparing unequal (so a reload serves the change)."""

from __future__ import annotations

from pathlib import Path

from gwconfig.manifests.front import compile_path
from gwconfig.runtime import ConfigLoader
from gwconfig.runtime.config.consumers import ConsumerPolicy
from gwconfig.runtime.permits import permits
from reconcile_helpers import apply

MANIFESTS = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: mock
provider_type: mock
models:
  - model_id: chat
    aliases: [talk]
    pricing: {input_per_1m: 1.0, output_per_1m: 2.0}
  - model_id: echo
---
apiVersion: gwconfig/v1
kind: Gateway
routes:
  - name: local
    targets:
      - model: mock/echo
---
apiVersion: gwconfig/v1
kind: Consumer
name: team-a
description: A
models: [talk, local]
limits: {rpm: 10, tpm: 1000}
tags: [x]
"""


def _tree(tmp_path: Path, text: str = MANIFESTS) -> Path:
    root = tmp_path / "m"
    root.mkdir(exist_ok=True)
    (root / "all.yaml").write_text(text)
    return root


def test_the_consumers_reach_the_runtime_from_a_file_and_the_database(
    gw: str, tmp_path: Path
) -> None:
    root = _tree(tmp_path)
    compiled = tmp_path / "compiled.json"
    compiled.write_bytes(compile_path(root).to_json_bytes())
    apply(root, gw)
    from_file = ConfigLoader(str(compiled)).load_config_as_object()
    from_db = ConfigLoader(gw).load_config_as_object()
    expected = ConsumerPolicy(
        name="team-a", models=("talk", "local", "mock/chat"), rpm=10, tpm=1000,
        budget_usd=None, budget_period=None, tags=("x",), description="A",
    )  # fmt: skip
    assert from_file.consumers == {"team-a": expected} == dict(from_db.consumers)
    policy = from_db.consumers["team-a"]
    # patterns are matched against what a name resolves to: the alias, and its model, pass
    assert all(permits(from_db, name, policy.models) for name in ("talk", "mock/chat", "local"))
    assert not permits(from_db, "mock/echo", policy.models)  # only through the route


def test_configurations_differing_in_a_consumer_are_not_equal(tmp_path: Path) -> None:
    first = tmp_path / "a.json"
    first.write_bytes(compile_path(_tree(tmp_path)).to_json_bytes())
    second = tmp_path / "b.json"
    second.write_bytes(
        compile_path(_tree(tmp_path, MANIFESTS.replace("rpm: 10", "rpm: 11"))).to_json_bytes()
    )
    a = ConfigLoader(str(first)).load_config_as_object()
    b = ConfigLoader(str(second)).load_config_as_object()
    assert a.providers == b.providers and a.routes == b.routes
    assert a != b and b.consumers["team-a"].rpm == 11
