"""Plan value: JSON round trip and the text, JSON and Markdown renderers."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import config, gateway, gateway_doc, provider, provider_doc, write_manifests
from gwconfig.errors import PlanError
from gwconfig.reconcile.changes import (
    AddItem,
    Create,
    Delete,
    RemoveItem,
    SensitiveField,
    SetField,
    Update,
    to_json,
)
from gwconfig.reconcile.diff import diff
from gwconfig.reconcile.plan import (
    PLAN_FORMAT_VERSION,
    Plan,
    render_json,
    render_markdown,
    render_text,
)


def planned(desired: Any, actual: Any, **kw: Any) -> Plan:
    """The plan of ``diff(desired, actual, **kw)`` (its changes and warnings)."""
    found = diff(desired, actual, **kw)
    return Plan(
        changes=found.changes, warnings=found.warnings, drift_revision=kw.get("drift_revision")
    )


def sample_plan() -> Plan:
    actual = config(provider(), provider("gone"), gw=gateway())
    desired = config(provider(description="new", tags=["prod", "eu"]), gw=gateway())
    desired["providers"][0]["api_keys"][0]["value"] = {"fingerprint": "hmac-sha256:new"}
    desired["providers"][0]["models"].append(copy.deepcopy(desired["providers"][0]["models"][0]))
    desired["providers"][0]["models"][-1]["model_id"] = "gpt-5"
    return planned(desired, actual, prune=True, drift_keys={"openai"}, drift_revision=4)


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
    plan = planned(config(provider()), config(provider(), provider("gone")))
    text = render_text(plan)
    assert "- provider gone (would delete: needs --prune)" in text
    assert text.rstrip().endswith("6 kept (deletion needs --prune or is protected).")
    quiet = planned(config(provider()), config(provider()))
    assert render_text(quiet) == "No changes. The database matches the manifests.\n"


def test_unknown_secret_render() -> None:
    desired = config(provider())
    desired["providers"][0]["api_keys"][0]["value"] = {
        "unknown": "environment variable X is not set"
    }
    text = render_text(planned(desired, config()))
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
    plan = planned(config(provider(models=models)), config())
    full = render_markdown(plan, limit=10**9)
    assert len(full) > 65_000
    md = render_markdown(plan)
    assert len(md) <= 65_000
    assert "changes were cut to keep this comment under GitHub's size limit" in md
    assert "| 3004 | 0 | 0 | 0 | 0 |" in md
    assert md.count("+ model ") > 100


def test_markdown_no_changes() -> None:
    md = render_markdown(planned(config(provider()), config(provider())))
    assert "**No changes.**" in md and "<details>" not in md


# ---------------------------------------------------------------------------------------------
# The published JSON, pinned byte for byte: ``plan --format json``, ``plan --out`` and
# ``apply --format json`` on a plan with every change kind. Key- and time-dependent values
# (fingerprints, state hashes) are replaced by numbered placeholders, so equal values stay equal.

GOLDEN = Path(__file__).parent / "golden"
_HASHES = re.compile(rb"(hmac-sha256|sha256):[0-9a-f]{16,}")


def _normalised(raw: bytes) -> bytes:
    seen: dict[bytes, bytes] = {}

    def placeholder(m: re.Match[bytes]) -> bytes:
        return seen.setdefault(m.group(0), m.group(1) + b":<%d>" % (len(seen) + 1))

    return _HASHES.sub(placeholder, raw)


def _every_kind(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database one apply (plus one edit from outside) away from manifests touching it all."""
    from sqlalchemy import create_engine, update

    from gwconfig.db.models import Provider
    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions

    routes = [
        {"name": "chat", "targets": [{"model": "openai/m1"}]},
        {"name": "old", "targets": [{"model": "gone/m1"}]},
    ]
    root = write_manifests(
        tmp_path / "m",
        provider_doc(),
        provider_doc("gone"),
        provider_doc("keep", deletion_protection=True),
        gateway_doc(routes=routes),
    )
    commands.apply(str(root), url, PlanOptions(), review=lambda _p: True)
    engine = create_engine(url)
    with engine.begin() as conn:  # drift: an edit made outside gwconfig
        t = Provider.__table__
        conn.execute(update(t).where(t.c.provider_id == "openai").values(description="edited"))
    engine.dispose()
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-2")  # the key changes, the project does not
    wanted = provider_doc(description="new", tags=["eu"])
    wanted["connection"]["parameters"][0]["value"] = "org-2"
    wanted["connection"]["parameters"][1]["value"] = {"env": "GWT_NOT_SET_EITHER"}
    wanted["connection"]["parameters"].append({"name": "region", "value": "eu-west-1"})
    wanted["api_keys"].append({"name": "backup", "value": {"env": "GWT_NOT_SET"}})
    wanted["models"] = [
        {"model_id": "m1", "context_window": 2000, "capabilities": ["vision", "tools"]},
        {"model_id": "m3", "pricing": {"input_per_1m": 2.5, "output_per_1m": 10.0}},
    ]
    routes = [
        {"name": "chat", "targets": [{"model": "openai/m1"}, {"model": "openai/m3"}]},
        {"name": "fast", "targets": [{"model": "openai/m3"}]},
    ]
    write_manifests(root, wanted, gateway_doc(default_route="fast", routes=routes))
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "staging.yaml").write_text("region: eu\n")
    return root


@pytest.fixture
def every_kind(
    sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Path, str]:
    """Manifests and a SQLite database whose plan has every change kind."""
    from gwconfig.db.session import open_database

    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("GWT_API_KEY", "sk-test-key-1")
    monkeypatch.setenv("GWT_PROJECT", "proj-1")
    monkeypatch.delenv("GWT_NOT_SET", raising=False)
    monkeypatch.delenv("GWT_NOT_SET_EITHER", raising=False)
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.chdir(tmp_path)
    open_database(sqlite_url, upgrade=True).dispose()
    return _every_kind(tmp_path, sqlite_url, monkeypatch), sqlite_url


def _cli(*args: str) -> bytes:
    from click.testing import CliRunner

    from gwconfig.cli import cli

    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout_bytes


def test_published_plan_json_is_pinned_byte_for_byte(
    every_kind: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, url = every_kind
    out = tmp_path / "plan.json"
    selection = ("--env", "staging", "--target", "openai", "--target", "gone", "--target", "keep",
                 "--target", "nosuch", "--select-tag", "nosuchtag")  # fmt: skip
    kept = _cli("plan", str(root), "--database-url", url, "--format", "json", *selection)
    assert _normalised(kept) == (GOLDEN / "plan_kept.json").read_bytes()
    pruned = _cli(
        "plan", str(root), "--database-url", url, "--format", "json", "--prune", "--out", str(out)
    )
    assert _normalised(pruned) == (GOLDEN / "plan_pruned.json").read_bytes()
    saved = out.read_bytes()
    assert _normalised(saved) == (GOLDEN / "plan_pruned_saved.json").read_bytes()
    assert b"sk-test-key" not in saved and b"proj-1" not in saved
    # a saved plan read back writes the same bytes, and renders the published form
    again = Plan.from_json_bytes(saved)
    assert again.to_json_bytes(saved=True) == saved
    assert render_json(again).encode() == pruned
    # apply --format json embeds the same published form (the unknown secrets set first)
    monkeypatch.setenv("GWT_NOT_SET", "sk-backup-1")
    monkeypatch.setenv("GWT_NOT_SET_EITHER", "sk-backup-2")
    fresh = _cli("plan", str(root), "--database-url", url, "--format", "json", "--prune")
    applied = _cli("apply", str(root), "--database-url", url, "--prune", "--auto-approve",
                   "--format", "json")  # fmt: skip
    doc = orjson.loads(applied)
    assert list(doc) == ["applied", "revision", "state_hash", "plan"] and doc["applied"]
    assert orjson.dumps(doc["plan"], option=orjson.OPT_INDENT_2) + b"\n" == fresh


@pytest.mark.parametrize(
    "damage",
    [
        {"changes": [{"action": "create"}]},  # no entity, no key
        {"changes": [{"action": "rename", "entity": "model", "key": "p/m"}]},
        {"changes": [{"action": "create", "entity": "gizmo", "key": "x"}]},
        {
            "changes": [
                {
                    "action": "update",
                    "entity": "model",
                    "key": "p/m",
                    "fields": [{"path": "a", "op": "twist"}],
                }
            ]
        },
        {"changes": "all of them"},
        {"options": {"prune": "perhaps"}},
        {"warnings": [{"not": "a string"}]},
        {"changes": [5]},
        {"changes": [{"action": ["create"], "entity": "model", "key": "p/m"}]},
        {"changes": [{"action": "create", "entity": "model", "key": 7}]},
        {"changes": [{"action": "update", "entity": "model", "key": "p/m", "fields": {}}]},
        {"changes": [{"action": "update", "entity": "model", "key": "p/m", "before": "x"}]},
        {"changes": [{"action": "delete", "entity": "model", "key": "p/m", "drift": "yes"}]},
        {
            "changes": [
                {
                    "action": "update",
                    "entity": "api_key",
                    "key": "p/key:k@e",
                    "fields": [{"path": "value", "op": "set", "sensitive": True, "old": "sk-1"}],
                }
            ]
        },
        {"desired": "everything"},
    ],
)
def test_damaged_plan_files_are_refused_with_where(damage: dict[str, Any]) -> None:
    with pytest.raises(PlanError, match=r"the plan file is damaged \(\w+"):
        Plan.from_json_bytes(orjson.dumps({"format_version": 1, **damage}))


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        ({"action": "create"}, "changes.1.entity"),
        ({"action": "rename", "entity": "model", "key": "p/m"}, "changes.1.action"),
        ({"action": "update", "entity": "model", "key": "p/m",
          "fields": [{"path": "a", "op": "add", "new": 1}, {"path": "a", "op": "twist"}]},
         "changes.1.fields.1.op"),
        ({"action": "update", "entity": "model", "key": "p/m", "fields": [{"op": "add"}]},
         "changes.1.fields.0.path"),
    ],
)  # fmt: skip
def test_damage_is_located_in_the_change_list(damage: dict[str, Any], where: str) -> None:
    good = orjson.loads(render_json(sample_plan()))["changes"][0]
    with pytest.raises(PlanError, match=rf"the plan file is damaged \({re.escape(where)}: "):
        Plan.from_json_dict({"format_version": 1, "changes": [good, damage]})


def test_a_plan_holds_the_diffs_changes_and_desired_as_they_are() -> None:
    # no per-change validation or copying: a plan lists changes by the 10,000
    desired = config(provider(description="new"), gw=gateway())
    found = diff(desired, config(provider(), gw=gateway()))
    plan = Plan(changes=found.changes, desired=desired)
    assert plan.changes is found.changes and plan.desired is desired
    again = Plan.from_json_bytes(plan.to_json_bytes(saved=True))
    assert again.same_changes(plan) and again.changes == plan.changes


@pytest.mark.parametrize("kind", [Create, Update, Delete, SetField, AddItem, RemoveItem,
                                  SensitiveField])  # fmt: skip
def test_change_types_are_frozen_slotted_dataclasses(kind: type) -> None:
    assert dataclasses.is_dataclass(kind) and "__slots__" in vars(kind)
    assert not any(hasattr(base, "model_fields") for base in kind.__mro__)
    value = next(v for v in _examples() if type(v) is kind)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, dataclasses.fields(kind)[-1].name, None)
    keys = [f.name for f in dataclasses.fields(kind) if f.metadata.get("json") != "never"]
    written = list(to_json(value))
    assert written == [k for k in keys if k in written]  # declared order, declared keys


def _examples() -> list[Any]:
    fields = (
        SetField(path="a", old=1, new=2),
        AddItem(path="t", new="x"),
        RemoveItem(path="t", old="y"),
        SensitiveField(path="value", unknown="why"),
    )
    return [
        *fields,
        Create(entity="model", key="p/m", provider_id="p", after={"model_id": "m"}),
        Update(entity="model", key="p/m", provider_id="p", before={}, after={}, fields=fields),
        Delete(entity="model", key="p/m", provider_id="p", before={"model_id": "m"}),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(body=st.dictionaries(st.text(), json_values, max_size=5), old=json_values, new=json_values)
@settings(max_examples=60, deadline=None)
def test_plan_bytes_are_what_orjson_writes_for_its_dict(body: Any, old: Any, new: Any) -> None:
    # to_json_bytes serialises in pydantic-core (fast); it must equal the documented orjson form
    plan = Plan(
        warnings=("w",),
        changes=(
            Update(entity="model", key="p/m", provider_id="p", before=body, after=body,
                   fields=(SetField(path="x", old=old, new=new),)),
            Create(entity="api_key", key="p/key:k@e", provider_id="p", after={**body, "value": 1}),
        ),
        desired={"providers": [body]},
    )  # fmt: skip
    for saved in (False, True):
        expected = orjson.dumps(plan.to_json_dict(saved=saved), option=orjson.OPT_INDENT_2)
        assert plan.to_json_bytes(saved=saved) == expected + b"\n"
