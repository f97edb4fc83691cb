"""The Gateway's egress policy as a plan change on every engine (added, changed, removed,
unchanged, drift, rollback; revision and audit), and the audit rows of key origin bindings."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, create_engine, select, text, update

from builders import gateway_doc, provider_doc, write_manifests
from gwconfig.db.models import AuditEvent, GatewaySetting
from gwconfig.reconcile import commands, revisions
from gwconfig.reconcile.gateway_settings import read_egress_policy
from gwconfig.reconcile.plan import render_json, render_markdown, render_text
from reconcile_helpers import apply, plan, yes

FIRST = {"allow": ["api.example.com", "*.corp.example"]}
SECOND = {"allow": ["api.example.com", "10.0.0.0/8"]}


def manifests(root: Path, egress: dict[str, Any] | None, **provider: Any) -> Path:
    extra = {} if egress is None else {"egress": egress}
    return write_manifests(root, provider_doc(**provider), gateway_doc(**extra))


def stored_policy(url: str) -> tuple[str, ...] | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            policy = read_egress_policy(conn)
    finally:
        engine.dispose()
    return None if policy is None else policy.allow


def audit(url: str, entity: str) -> list[tuple[Any, ...]]:
    """(revision, actor, key, action, before, after) of the audit rows of ``entity``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            a = cast(Table, AuditEvent.__table__)
            columns = (a.c.revision_number, a.c.actor, a.c.entity_key, a.c.action)
            query = select(*columns, a.c.before, a.c.after).where(a.c.entity_type == entity)
            rows = conn.execute(query.order_by(a.c.id)).all()
    finally:
        engine.dispose()

    def doc(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value

    return [(r[0], r[1], r[2], r[3], doc(r[4]), doc(r[5])) for r in rows]


def only_egress(p: Any) -> Any:
    (change,) = p.changes
    assert change.entity == "egress_policy" and change.key == "gateway:egress"
    return change


def test_policy_added_changed_removed_in_plan_apply_and_audit(gw: str, tmp_path: Path) -> None:
    root = manifests(tmp_path / "m", None)
    apply(root, gw)
    manifests(root, FIRST)
    p = plan(root, gw)
    change = only_egress(p)
    assert change.action == "create" and p.summary["add"] == 1
    assert render_text(p).splitlines()[0] == "+ egress_policy gateway.egress"
    assert "+ egress_policy gateway.egress" in render_markdown(p)
    (shown,) = json.loads(render_json(p))["changes"]
    assert shown["after"] == {"allow": ["*.corp.example", "api.example.com"]}
    _, result = apply(root, gw, actor="ci-bot")
    assert result.revision == 2 and stored_policy(gw) == ("*.corp.example", "api.example.com")
    assert revisions.show_revision(gw, 2)["changes"] == [
        {"entity": "egress_policy", "key": "gateway:egress", "action": "create"}
    ]

    unchanged = plan(root, gw)
    assert unchanged.changes == () and "No changes" in render_text(unchanged)
    _, result = apply(root, gw)
    assert result.revision is None

    manifests(root, SECOND)
    p = plan(root, gw)
    change = only_egress(p)
    assert change.action == "update"
    assert [(f.path, f.op, f.old, f.new) for f in change.fields] == [
        ("allow", "remove", "*.corp.example", None),
        ("allow", "add", None, "10.0.0.0/8"),
    ]
    text_plan = render_text(p)
    assert "~ egress_policy gateway.egress" in text_plan
    assert 'allow: - "*.corp.example"' in text_plan and 'allow: + "10.0.0.0/8"' in text_plan
    fields = json.loads(render_json(p))["changes"][0]["fields"]
    assert {"path": "allow", "op": "add", "new": "10.0.0.0/8"} in fields
    apply(root, gw, actor="ci-bot")
    assert stored_policy(gw) == ("10.0.0.0/8", "api.example.com")

    manifests(root, None)  # removing the policy is the Gateway's setting: no --prune needed
    p = plan(root, gw)
    change = only_egress(p)
    assert change.action == "delete" and change.blocked is None and p.summary["delete"] == 1
    assert render_text(p).splitlines()[0] == "- egress_policy gateway.egress"
    _, result = apply(root, gw, actor="ci-bot")
    assert result.revision == 4 and stored_policy(gw) is None
    assert plan(root, gw).changes == ()

    first, second = sorted(FIRST["allow"]), sorted(SECOND["allow"])
    assert audit(gw, "egress_policy") == [
        (2, "ci-bot", "gateway:egress", "create", None, {"allow": first}),
        (3, "ci-bot", "gateway:egress", "update", {"allow": first}, {"allow": second}),
        (4, "ci-bot", "gateway:egress", "delete", {"allow": second}, None),
    ]


def test_rollback_restores_the_policy(gw: str, tmp_path: Path) -> None:
    root = manifests(tmp_path / "m", FIRST)
    apply(root, gw)
    manifests(root, SECOND)
    apply(root, gw)
    p, result = commands.rollback(gw, 1, review=yes)
    assert only_egress(p).action == "update" and result.revision == 3
    assert stored_policy(gw) == ("*.corp.example", "api.example.com")
    manifests(root, None)
    apply(root, gw)
    p, result = commands.rollback(gw, 3, review=yes)  # back to a revision with a policy
    assert only_egress(p).action == "create"
    assert stored_policy(gw) == ("*.corp.example", "api.example.com")
    p, _ = commands.rollback(gw, 4, review=yes)  # and to one without
    assert only_egress(p).action == "delete" and stored_policy(gw) is None


def test_a_policy_changed_in_the_database_is_drift(gw: str, tmp_path: Path) -> None:
    root = manifests(tmp_path / "m", FIRST)
    apply(root, gw)
    assert plan(root, gw).changes == ()
    engine = create_engine(gw)
    try:
        with engine.begin() as conn:
            t = cast(Table, GatewaySetting.__table__)
            conn.execute(update(t).where(t.c.name == "egress").values(value=SECOND))
    finally:
        engine.dispose()
    p = plan(root, gw)
    change = only_egress(p)
    assert change.action == "update" and change.drift and p.drift_revision == 1
    assert any("drift since revision 1" in w for w in p.warnings)
    apply(root, gw)
    assert stored_policy(gw) == ("*.corp.example", "api.example.com")
    assert plan(root, gw).changes == ()


def test_rebinding_keys_is_audited_per_provider(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-" + secrets.token_urlsafe(16)
    monkeypatch.setenv("GWT_API_KEY", key)
    root = manifests(tmp_path / "m", None)
    apply(root, gw)
    assert audit(gw, "key_binding") == []  # new secrets: their creation is audited
    connection = {**provider_doc()["connection"], "api_base": "https://llm.example.net:8443/v1"}
    manifests(root, None, connection=connection)
    p = plan(root, gw)
    assert [c.entity for c in p.changes] == ["provider"]  # bindings are not plan changes
    apply(root, gw, actor="ci-bot")
    a, b = "https://api.example.com:443", "https://llm.example.net:8443"
    secrets_before = {"openai/key:default@default": a, "openai/param:project@default": a}
    secrets_after = {k: b for k in secrets_before}
    assert audit(gw, "key_binding") == [
        (
            2, "ci-bot", "openai", "bind",
            {"secrets": secrets_before, "key_origin": a},
            {"secrets": secrets_after, "key_origin": b},
        )
    ]  # fmt: skip
    engine = create_engine(gw)
    try:
        with engine.begin() as conn:
            dumped = str(conn.execute(text("SELECT * FROM audit_events")).all())
            for table in ("api_keys", "connection_parameters"):
                conn.execute(text(f"UPDATE {table} SET origin = NULL"))
    finally:
        engine.dispose()
    assert key not in dumped
    _, result = apply(root, gw, actor="ops")  # nothing to change: bound again, no revision
    assert result.revision is None
    unbound = {k: None for k in secrets_before}
    assert audit(gw, "key_binding")[1:] == [
        (None, "ops", "openai", "bind", {"secrets": unbound}, {"secrets": secrets_after})
    ]
