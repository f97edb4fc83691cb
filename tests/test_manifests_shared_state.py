"""The ``Gateway`` manifest's ``shared_state``: validated at file:line, compiled into the
canonical configuration only when set, read by the runtime as its policy."""

from __future__ import annotations

from pathlib import Path

from builders import config, gateway
from gwconfig.manifests import validate_path
from gwconfig.manifests.shared_state import SharedStateSpec
from gwconfig.runtime.config.build import build_gateway_config
from gwconfig.runtime.config.shared_state import SharedStatePolicy
from manifest_texts import messages, write

GATEWAY = """\
apiVersion: gwconfig/v1
kind: Gateway
shared_state:
  on_unavailable:
    limits: closed
    budgets: sometimes
  breaker: {failures: 0}
"""


def test_a_bad_policy_is_named_at_its_line(isolated_cwd: Path) -> None:
    write(isolated_cwd, "g.yaml", GATEWAY)
    found = messages(validate_path("providers.d"))
    assert [(path, line) for path, line, _ in found] == [
        ("providers.d/g.yaml", 6),
        ("providers.d/g.yaml", 7),
    ]
    assert "shared_state.on_unavailable.budgets" in found[0][2]
    assert "'closed' or 'open'" in found[0][2]
    assert "shared_state.breaker.failures" in found[1][2]


def test_the_policy_reaches_the_runtime_and_is_absent_by_default() -> None:
    assert "shared_state" not in config(gw=gateway())["gateway"]  # hashes of older configs stay
    spec = SharedStateSpec.model_validate(
        {"on_unavailable": {"limits": "closed", "budgets": "open"},
         "breaker": {"failures": 2, "cooloff_seconds": 1.5}}
    )  # fmt: skip
    data = config(gw=gateway(shared_state=spec))
    built = build_gateway_config(data, "default", lambda ref, scope: "x")
    assert built.shared_state == SharedStatePolicy(
        limits_on_unavailable="closed", budgets_on_unavailable="open",
        breaker_failures=2, breaker_cooloff_seconds=1.5,
    )  # fmt: skip
    default = build_gateway_config(config(gw=gateway()), "default", lambda ref, scope: "x")
    assert default.shared_state == SharedStatePolicy()
