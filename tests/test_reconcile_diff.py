"""diff(): desired/actual canonical pairs for every change kind (pure, no database)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from builders import config, gateway, provider, resolved
from gwconfig.errors import PlanError
from gwconfig.manifests.compile import build_config
from gwconfig.reconcile import changes as changes_module
from gwconfig.reconcile.changes import AddItem, RemoveItem, SensitiveField, SetField, to_json
from gwconfig.reconcile.diff import (
    NEEDS_PRUNE,
    PROTECTED,
    Create,
    Delete,
    Update,
    diff,
    entities,
    field_changes,
    selected_providers,
)
from gwconfig.reconcile.plan import Plan, summarise


def test_identical_configs_have_no_changes() -> None:
    c = config(provider(), provider("anthropic"), gw=gateway())
    plan = diff(c, copy.deepcopy(c))
    assert plan.changes == ()
    assert summarise(plan.changes) == {"add": 0, "change": 0, "delete": 0, "kept": 0, "drift": 0}


def test_create_everything_orders_parents_first() -> None:
    desired = config(provider(), gw=gateway())
    actual = config()
    plan = diff(desired, actual)
    kinds = [(type(c).__name__, c.entity, c.key) for c in plan.changes]
    assert kinds == [
        ("Create", "provider", "openai"),
        ("Create", "api_key", "openai/key:default@default"),
        ("Create", "connection_parameter", "openai/param:organization@default"),
        ("Create", "connection_parameter", "openai/param:project_secret@default"),
        ("Create", "model", "openai/gpt-4o"),
        ("Create", "model", "openai/gpt-4o-mini"),
        ("Create", "route", "route:chat"),
        ("Update", "default_route", "gateway:default_route"),
    ]
    assert summarise(plan.changes)["add"] == 7 and summarise(plan.changes)["change"] == 1


def test_delete_with_prune_orders_children_first() -> None:
    desired = config(provider("anthropic"))
    actual = config(provider("anthropic"), provider(), gw=gateway())
    plan = diff(desired, actual, prune=True)
    deletes = [(c.entity, c.key) for c in plan.changes if isinstance(c, Delete)]
    assert deletes == [
        ("route", "route:chat"),
        ("model", "openai/gpt-4o"),
        ("model", "openai/gpt-4o-mini"),
        ("api_key", "openai/key:default@default"),
        ("connection_parameter", "openai/param:organization@default"),
        ("connection_parameter", "openai/param:project_secret@default"),
        ("provider", "openai"),
    ]
    assert all(c.blocked is None for c in plan.changes)
    # the default route is unset at the end
    assert plan.changes[-1].entity == "default_route"
    assert summarise(plan.changes)["delete"] == 7


def test_deletes_without_prune_are_kept() -> None:
    desired = config(provider("anthropic"))
    actual = config(provider("anthropic"), provider())
    plan = diff(desired, actual)
    assert plan.changes and all(c.blocked == NEEDS_PRUNE for c in plan.changes)
    assert not any(c.effective for c in plan.changes)
    assert summarise(plan.changes)["kept"] == 6 and summarise(plan.changes)["delete"] == 0


def test_deletion_protection_in_database_blocks_delete_even_with_prune() -> None:
    desired = config(provider("anthropic"))
    actual = config(provider("anthropic"), provider(deletion_protection=True))
    plan = diff(desired, actual, prune=True)
    assert plan.changes and all(c.blocked == PROTECTED for c in plan.changes)
    assert any("deletion_protection" in w for w in plan.warnings)


def test_protection_removed_in_manifest_is_an_update_first() -> None:
    actual = config(provider(deletion_protection=True))
    desired = config(provider(deletion_protection=False))
    plan = diff(desired, actual, prune=True)
    (change,) = plan.changes
    assert isinstance(change, Update)
    assert [(f.path, f.old, f.new) for f in change.fields] == [("deletion_protection", True, False)]


def test_empty_desired_against_nonempty_database_is_refused() -> None:
    with pytest.raises(PlanError, match="declare no providers"):
        diff(config(), config(provider()), prune=True)
    plan = diff(config(), config(provider()))
    assert any("no providers" in w for w in plan.warnings)


def test_field_level_update_item_by_item() -> None:
    actual = config(provider())
    desired = config(
        provider(
            tags=["prod", "eu"],
            request_settings={"max_retries": 5},
            connection={
                "api_base": "https://api.example.com/v2",
                "headers": {"X-Team": "ml"},
                "parameters": [
                    {"name": "organization", "value": "org-1"},
                    {"name": "project_secret", "value": {"env": "PROJ"}, "sensitive": True},
                ],
            },
        )
    )
    (change,) = diff(desired, actual).changes
    assert change.entity == "provider" and isinstance(change, Update)
    got = [(f.path, f.op, f.old, f.new) for f in change.fields]
    assert got == [
        ("connection.api_base", "set", "https://api.example.com/v1", "https://api.example.com/v2"),
        ("connection.headers.X-Team", "set", None, "ml"),
        ("request_settings.max_retries", "set", 2, 5),
        ("tags", "add", None, "eu"),
    ]


def test_model_update_lists_and_nested_dicts() -> None:
    actual = config(provider())
    models = [
        {
            "model_id": "gpt-4o",
            "context_window": 64000,
            "capabilities": ["function_calling"],
            "pricing": {"input_per_1m": 2.5},
        },
        {"model_id": "gpt-4o-mini"},
    ]
    desired = config(provider(models=models))
    (change,) = diff(desired, actual).changes
    assert change.key == "openai/gpt-4o"
    got = [(f.path, f.op, f.old, f.new) for f in change.fields]
    assert ("capabilities", "remove", "vision", None) in got
    assert ("capabilities", "add", None, "function_calling") in got
    assert ("context_window", "set", 128000, 64000) in got
    assert ("pricing", "set", None, change.after["pricing"]) in got  # type: ignore[index]


def test_secret_change_is_masked() -> None:
    actual = config(provider())
    desired = resolved(dict(build_config([provider()], None).data), fp="hmac-sha256:bbb")
    plan = diff(desired, actual)
    assert {c.entity for c in plan.changes} == {"api_key", "connection_parameter"}
    for c in plan.changes:
        (f,) = c.fields
        assert f.sensitive and f.old is None and f.new is None
        assert to_json(f) == {"path": "value", "op": "set", "sensitive": True}
        assert to_json(c)["after"]["value"] == "(sensitive)"


def test_unknown_secret_is_reported() -> None:
    actual = config(provider())
    desired = config(provider())
    desired["providers"][0]["api_keys"][0]["value"] = {
        "unknown": "environment variable OPENAI_API_KEY is not set"
    }
    plan = Plan(changes=diff(desired, actual).changes)
    assert plan.unknown_secrets == (
        "openai/key:default@default: environment variable OPENAI_API_KEY is not set",
    )


def test_route_and_default_route_changes() -> None:
    actual = config(provider(), gw=gateway())
    gw2 = gateway(
        default_route="fast",
        routes=[
            {
                "name": "chat",
                "targets": [{"model": "openai/gpt-4o"}, {"model": "openai/gpt-4o-mini"}],
            },
            {"name": "fast", "targets": [{"model": "openai/gpt-4o-mini"}]},
        ],
    )
    desired = config(provider(), gw=gw2)
    plan = diff(desired, actual)
    got = [(type(c).__name__, c.key) for c in plan.changes]
    assert got == [
        ("Update", "route:chat"),
        ("Create", "route:fast"),
        ("Update", "gateway:default_route"),
    ]
    chat = plan.changes[0]
    assert [(f.path, f.new) for f in chat.fields] == [
        ("targets", [{"provider_id": "openai", "model_id": "gpt-4o", "weight": 1},
                     {"provider_id": "openai", "model_id": "gpt-4o-mini", "weight": 1}])
    ]  # fmt: skip
    assert [(f.path, f.old, f.new) for f in plan.changes[2].fields] == [
        ("default_route", "chat", "fast")
    ]


def test_selection_limits_every_change_including_deletes() -> None:
    actual = config(provider("a-old"), provider("b", tags=["local"]), provider("c"))
    desired = config(provider("b", tags=["local"], description="x"), provider("c", description="y"))
    sel = selected_providers(desired, actual, targets=["a-old"], tags=["local"])
    assert sel == frozenset({"a-old", "b"})
    plan = diff(desired, actual, prune=True, selected=sel)
    assert {c.provider_id for c in plan.changes} == {"a-old", "b"}
    assert selected_providers(desired, actual) is None


def test_selection_includes_routes_of_selected_providers_only() -> None:
    gw = gateway(
        routes=[
            {"name": "chat", "targets": [{"model": "openai/gpt-4o"}]},
            {"name": "other", "targets": [{"model": "x/y"}]},
        ]
    )
    plan = diff(config(provider(), gw=gw), config(), selected=frozenset({"openai"}))
    keys = [c.key for c in plan.changes]
    assert "route:chat" in keys and "route:other" not in keys
    assert "gateway:default_route" in keys


def test_drift_marks_changes() -> None:
    actual = config(provider(description="edited by hand"))
    desired = config(provider())
    plan = diff(desired, actual, drift_keys={"openai"}, drift_revision=3)
    assert plan.changes[0].drift and [c.key for c in plan.changes if c.drift] == ["openai"]
    assert any("drift since revision 3" in w for w in plan.warnings)


def test_entities_keys_match_compile_sources() -> None:
    keys = set(entities(config(provider(), gw=gateway())))
    assert {"openai", "openai/gpt-4o", "openai/key:default@default",
            "openai/param:organization@default", "route:chat"} <= keys  # fmt: skip


def test_field_changes_ordered_list_reorder_shows_whole_list() -> None:
    (f,) = field_changes({"fallbacks": ["a", "b"]}, {"fallbacks": ["b", "a"]})
    assert (f.path, f.old, f.new) == ("fallbacks", ["a", "b"], ["b", "a"])


def test_change_types_know_if_destructive() -> None:
    assert Delete.destructive and not Create.destructive and not Update.destructive


def test_diff_returns_changes_and_warnings_without_the_plan_module() -> None:
    # diff is a pure step: it neither builds nor imports the Plan (no diff <-> plan cycle)
    code = (
        "import sys\n"
        "from gwconfig.reconcile.diff import diff\n"
        "found = diff({'providers': []}, {'providers': []})\n"
        "assert type(found).__name__ == 'Diff' and found.changes == ()\n"
        "import gwconfig.reconcile.changes\n"
        "plans = ('gwconfig.reconcile.plan', 'gwconfig.reconcile.commands')\n"
        "loaded = [m for m in plans if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    source = Path(changes_module.__file__ or "").read_text(encoding="utf-8")
    imported = re.findall(r"^\s*(?:from|import) (gwconfig[\w.]*)", source, re.MULTILINE)
    assert imported == ["gwconfig.entities"]  # a leaf but for the entity registry


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (
            SetField(path="a", old=None, new="x"),
            {"path": "a", "op": "set", "old": None, "new": "x"},
        ),
        (AddItem(path="tags", new="eu"), {"path": "tags", "op": "add", "new": "eu"}),
        (RemoveItem(path="tags", old="us"), {"path": "tags", "op": "remove", "old": "us"}),
        (SensitiveField(path="value"), {"path": "value", "op": "set", "sensitive": True}),
        (
            SensitiveField(path="value", unknown="variable X is not set"),
            {"path": "value", "op": "set", "sensitive": True, "unknown": "variable X is not set"},
        ),
    ],
)
def test_field_change_json_comes_from_its_type(field: Any, expected: dict[str, Any]) -> None:
    change = Update(entity="model", key="p/m", provider_id="p", fields=(field,))
    assert to_json(field) == expected
    again = Plan.from_json_dict({"format_version": 1, "changes": [to_json(change)]})
    (loaded,) = again.changes[0].fields
    assert type(loaded) is type(field) and loaded == field
