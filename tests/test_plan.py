"""Plan value: JSON round trip and the text, JSON and Markdown renderers."""

from __future__ import annotations

import copy

import orjson
import pytest

from gwconfig.diff import diff
from gwconfig.errors import PlanError
from gwconfig.plan import PLAN_FORMAT_VERSION, Plan, render_json, render_markdown, render_text
from test_diff import config, gateway, provider


def sample_plan() -> Plan:
    actual = config(provider(), provider("gone"), gw=gateway())
    desired = config(provider(description="new", tags=["prod", "eu"]), gw=gateway())
    desired["providers"][0]["api_keys"][0]["value"] = {"fingerprint": "hmac-sha256:new"}
    desired["providers"][0]["models"].append(copy.deepcopy(desired["providers"][0]["models"][0]))
    desired["providers"][0]["models"][-1]["model_id"] = "gpt-5"
    return diff(desired, actual, prune=True, drift_keys={"openai"}, drift_revision=4)


def test_json_round_trip_is_lossless() -> None:
    plan = sample_plan()
    saved = plan.to_json_bytes(saved=True)
    again = Plan.from_json_bytes(saved)
    assert again.same_changes(plan)
    assert again.summary == plan.summary
    assert again.to_json_bytes(saved=True) == saved


def test_json_schema_is_documented_shape() -> None:
    doc = orjson.loads(render_json(sample_plan()))
    assert doc["format_version"] == PLAN_FORMAT_VERSION
    assert set(doc) == {"format_version", "base_state_hash", "desired_hash", "drift_revision",
                        "options", "summary", "warnings", "changes"}  # fmt: skip
    assert doc["summary"] == {"add": 1, "change": 2, "delete": 6, "kept": 0, "drift": 1}
    change = doc["changes"][0]
    assert set(change) == {"action", "entity", "key", "provider_id", "fields", "drift", "blocked",
                           "before", "after"}  # fmt: skip
    secret = next(c for c in doc["changes"] if c["entity"] == "api_key" and c["action"] == "update")
    assert secret["fields"] == [{"path": "value", "op": "set", "sensitive": True}]
    assert secret["after"]["value"] == "(sensitive)"
    assert "hmac-sha256:new" not in render_json(sample_plan())


def test_foreign_or_damaged_plan_files_are_refused() -> None:
    with pytest.raises(PlanError, match="not a gwconfig plan file"):
        Plan.from_json_bytes(b'{"format_version": 99}')
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.from_json_bytes(b"{nope")
    with pytest.raises(PlanError, match="damaged"):
        Plan.from_json_bytes(b'{"format_version": 1, "changes": [{"action": "create"}]}')


def test_text_render() -> None:
    text = render_text(sample_plan())
    lines = text.splitlines()
    assert "~ provider openai [drift]" in lines
    assert '    description: null -> "new"' in lines
    assert '    tags: + "eu"' in lines
    assert "~ api_key openai/key:default@default" in lines
    assert "    value: (sensitive value changed)" in lines
    assert "+ model openai/gpt-5" in lines
    assert "- provider gone" in lines
    assert lines[-1] == "Plan: 1 to add, 2 to change, 6 to delete."
    assert "\x1b[" not in text
    assert "\x1b[" in render_text(sample_plan(), color=True)


def test_text_render_kept_deletes_and_no_changes() -> None:
    plan = diff(config(provider()), config(provider(), provider("gone")))
    text = render_text(plan)
    assert "- provider gone (would delete: needs --prune)" in text
    assert text.rstrip().endswith("6 kept (deletion needs --prune or is protected).")
    quiet = diff(config(provider()), config(provider()))
    assert render_text(quiet) == "No changes. The database matches the manifests.\n"


def test_unknown_secret_render() -> None:
    desired = config(provider())
    desired["providers"][0]["api_keys"][0]["value"] = {
        "unknown": "environment variable X is not set"
    }
    text = render_text(diff(desired, config()))
    assert "(unknown until apply: environment variable X is not set)" in text


def test_markdown_has_summary_table_and_details() -> None:
    md = render_markdown(sample_plan())
    assert "| Add | Change | Delete |" in md
    assert "| 1 | 2 | 6 | 0 | 1 |" in md
    assert "<details><summary><code>openai</code>" in md
    assert "<details><summary><code>gone</code>" in md
    assert "```diff" in md and "(sensitive value changed)" in md
    assert "Drift:" in md and "revision 4" in md
    assert "were cut" not in md


def test_markdown_stays_under_the_comment_limit() -> None:
    models = [{"model_id": f"model-{i:05d}", "display_name": "x" * 40} for i in range(3000)]
    plan = diff(config(provider(models=models)), config())
    full = render_markdown(plan, limit=10**9)
    assert len(full) > 65_000
    md = render_markdown(plan)
    assert len(md) <= 65_000
    assert "changes were cut to keep this comment under GitHub's size limit" in md
    assert "| 3004 | 0 | 0 | 0 | 0 |" in md
    assert md.count("+ model ") > 100


def test_markdown_no_changes() -> None:
    md = render_markdown(diff(config(provider()), config(provider())))
    assert "**No changes.**" in md and "<details>" not in md
