"""reconcile: plan/apply/rollback/history end to end on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update

from builders import gateway_doc, provider_doc, write_manifests
from gwconfig.errors import PlanError, StalePlanError
from gwconfig.reconcile import commands, revisions
from gwconfig.reconcile.plan import PlanOptions
from reconcile_helpers import apply, dump_tables, plan, read_state_at, yes

interactive = commands.WriteOptions(interactive=True)  # a person reviews the plan


def test_apply_round_trip_then_no_changes(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    first, result = apply(root, gw, actor="alice")
    assert result.revision == 1
    assert first.summary == {"add": 7, "change": 1, "delete": 0, "kept": 0, "drift": 0}
    again = plan(root, gw)
    assert again.changes == () and again.base_state_hash == result.state_hash
    _, second = apply(root, gw)
    assert second.revision is None
    revs = revisions.history(gw)
    assert [(r.number, r.actor) for r in revs] == [(1, "alice")]
    assert revs[0].summary["add"] == 7


def test_every_change_kind_then_quiet(gw: str, tmp_path: Path) -> None:
    root = tmp_path / "m"
    write_manifests(root, provider_doc(), provider_doc("old"), gateway_doc())
    apply(root, gw)
    models = [{"model_id": "m1", "context_window": 2000}, {"model_id": "m3"}]
    new = provider_doc(description="changed", models=models, tags=["cloud", "eu"])
    write_manifests(root, new, gateway_doc(default_route=None))
    p = plan(root, gw, prune=True)
    got = {(c.action, c.key) for c in p.changes}
    assert ("update", "openai") in got
    assert ("update", "openai/m1") in got
    assert ("create", "openai/m3") in got
    assert ("delete", "openai/m2") in got
    assert ("delete", "old") in got and ("delete", "old/m1") in got
    assert ("update", "gateway:default_route") in got
    _, result = apply(root, gw, prune=True)
    assert result.revision == 2
    assert plan(root, gw, prune=True).changes == ()


def test_without_prune_deletes_are_kept(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc(), provider_doc("old"))
    apply(root, gw)
    write_manifests(root, provider_doc())
    p = plan(root, gw)
    assert p.changes and all(c.blocked == "needs --prune" for c in p.changes)
    _, result = apply(root, gw)
    assert result.revision is None
    assert dump_tables(gw)["providers"] and len(dump_tables(gw)["providers"]) == 2


def test_deletion_protection_blocks_until_turned_off(gw: str, tmp_path: Path) -> None:
    root = tmp_path / "m"
    write_manifests(root, provider_doc(), provider_doc("keep", deletion_protection=True))
    apply(root, gw)
    write_manifests(root, provider_doc())
    p, result = apply(root, gw, prune=True)
    assert result.revision is None and all(c.blocked for c in p.changes)
    assert any("deletion_protection" in w for w in p.warnings)
    write_manifests(root, provider_doc(), provider_doc("keep", deletion_protection=False))
    apply(root, gw)
    write_manifests(root, provider_doc())
    _, result = apply(root, gw, prune=True)
    assert result.revision == 3
    assert len(dump_tables(gw)["providers"]) == 1


def test_max_deletes_and_empty_desired_refused(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc(), provider_doc("b"))
    apply(root, gw)
    before = dump_tables(gw)
    write_manifests(root, provider_doc())
    with pytest.raises(
        PlanError, match=r"refusing to delete 6 entities \(more than --max-deletes 3\)"
    ):
        apply(root, gw, prune=True, max_deletes=3)
    write_manifests(root, gateway_doc(routes=[], default_route=None))
    with pytest.raises(PlanError, match="declare no providers"):
        apply(root, gw, prune=True)
    assert dump_tables(gw) == before


def test_target_and_select_tag_limit_changes(gw: str, tmp_path: Path) -> None:
    root = tmp_path / "m"
    write_manifests(root, provider_doc("a"), provider_doc("b", tags=["local"]), provider_doc("c"))
    p, _ = apply(root, gw, tags=("local",))
    assert {c.provider_id for c in p.changes} == {"b"}
    p, _ = apply(root, gw, targets=("a",))
    assert {c.provider_id for c in p.changes} == {"a"}
    write_manifests(root, provider_doc("c"))
    p, _ = apply(root, gw, targets=("a",), prune=True)
    assert {c.provider_id for c in p.changes} == {"a"} and all(
        c.action == "delete" for c in p.changes
    )
    assert plan(root, gw, prune=True).summary["delete"] == 6  # b remains to be pruned


def test_drift_from_outside_is_marked(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    apply(root, gw)
    engine = create_engine(gw)
    with engine.begin() as conn:
        from gwconfig.db.models import ProviderModel

        t = ProviderModel.__table__
        conn.execute(update(t).where(t.c.model_id == "m1").values(max_tokens=77))
    engine.dispose()
    p = plan(root, gw)
    assert p.drift_revision == 1
    (change,) = p.changes
    assert change.key == "openai/m1" and change.drift
    assert [(f.path, f.old, f.new) for f in change.fields] == [("max_tokens", 77, None)]
    assert any("drift since revision 1" in w for w in p.warnings)
    _, result = apply(root, gw)
    assert result.revision == 2 and plan(root, gw).changes == ()
    assert revisions.history(gw)[0].summary["drift_revision"] == 1


def test_drift_through_provider_service(gw: str, tmp_path: Path) -> None:
    service_mod = pytest.importorskip("gwconfig.seed.service")
    root = write_manifests(tmp_path / "m", provider_doc())
    apply(root, gw)
    from gwconfig.db.session import open_database
    from gwconfig.secrets.keys import load_encryption_keys

    db = open_database(gw)
    try:
        with db.session() as session:
            svc = service_mod.ProviderService(session, load_encryption_keys(gw), "ops")
            svc.update_provider("openai", {"display_name": "Hand edited"})
    finally:
        db.dispose()
    p = plan(root, gw)
    assert p.drift_revision == 1
    assert [c.key for c in p.changes if c.drift] == ["openai"]


def test_saved_plan_applies_and_stale_plan_is_refused(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc())
    saved = tmp_path / "plan.json"
    saved.write_bytes(plan(root, gw).to_json_bytes(saved=True))
    # a second plan made now, applied after the first one moved the database
    stale = tmp_path / "stale.json"
    write_manifests(root, provider_doc(description="two"))
    stale.write_bytes(plan(root, gw).to_json_bytes(saved=True))
    p, result = commands.apply_saved(str(saved), gw, review=yes)
    assert result.revision == 1 and p.summary["add"] == 6
    before = dump_tables(gw)
    with pytest.raises(
        StalePlanError,
        match="plan is stale: the database changed since it was made; run plan again",
    ):
        commands.apply_saved(str(stale), gw, review=yes)
    assert dump_tables(gw) == before


def test_saved_plan_refused_when_a_secret_changed(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_manifests(tmp_path / "m", provider_doc())
    saved = tmp_path / "plan.json"
    saved.write_bytes(plan(root, gw).to_json_bytes(saved=True))
    monkeypatch.setenv("GWT_API_KEY", "sk-rotated")
    with pytest.raises(StalePlanError, match="openai/key:default@default changed"):
        commands.apply_saved(str(saved), gw, review=yes)


def test_missing_secret_is_unknown_in_plan_and_refused_by_apply(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GWT_API_KEY")
    root = write_manifests(tmp_path / "m", provider_doc())
    p = plan(root, gw)
    (key,) = [c for c in p.changes if c.entity == "api_key"]
    assert key.after is not None
    assert key.after["value"] == {"unknown": "environment variable GWT_API_KEY is not set"}
    with pytest.raises(PlanError, match="environment variable GWT_API_KEY is not set"):
        apply(root, gw)
    assert dump_tables(gw)["providers"] == []


def test_revision_and_audit_rows(gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    apply(root, gw, actor="ci-bot")
    info = revisions.show_revision(gw, 1)
    assert info["actor"] == "ci-bot" and info["git_sha"] == "a" * 40
    assert len(info["changes"]) == 8
    key = info["config"]["providers"][0]["api_keys"][0]
    assert key["value"] == {"env": "GWT_API_KEY"}
    tables = dump_tables(gw)
    assert len(tables["audit_events"]) == 8 and len(tables["config_revisions"]) == 1


def test_rollback_restores_configuration_and_secrets(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    apply(root, gw)
    state1 = _state(gw)
    monkeypatch.setenv("GWT_API_KEY", "sk-second")
    models = [{"model_id": "m1"}, {"model_id": "m9"}]
    write_manifests(root, provider_doc(models=models, description="v2"), provider_doc("b"))
    apply(root, gw)
    monkeypatch.delenv("GWT_API_KEY")  # rollback needs no reference: it uses the ciphertext
    p, result = commands.rollback(gw, 1, review=yes)
    assert result.revision == 3
    assert p.summary["delete"] > 0 and p.summary["change"] > 0
    assert _state(gw) == state1
    from gwconfig.secrets.keys import load_encryption_keys

    keys = load_encryption_keys(gw)
    engine = create_engine(gw)
    with engine.connect() as conn:
        token = conn.execute(text("SELECT key_value FROM api_keys")).scalar_one()
    engine.dispose()
    assert keys.decrypt(token) == "sk-test-key-1"
    with pytest.raises(Exception, match="revision 42 does not exist"):
        commands.rollback(gw, 42, review=yes)


def _state(url: str) -> dict[str, Any]:
    return copy.deepcopy(read_state_at(url).data)


def test_review_declined_writes_nothing(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc())
    before = dump_tables(gw)
    p, result = commands.apply(str(root), gw, PlanOptions(), review=lambda _p: False)
    assert p.summary["add"] == 6 and result.revision is None
    assert dump_tables(gw) == before


def test_history_is_newest_first_with_limit(gw: str, tmp_path: Path) -> None:
    root = tmp_path / "m"
    for i in range(3):
        write_manifests(root, provider_doc(description=f"v{i}"))
        apply(root, gw)
    assert [r.number for r in revisions.history(gw, limit=2)] == [3, 2]
    with engine_rows(gw) as rows:
        assert rows == 3


class engine_rows:
    """Count config_revisions rows."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def __enter__(self) -> int:
        from gwconfig.db.models import ConfigRevision

        with self.engine.connect() as conn:
            return len(conn.execute(select(ConfigRevision.__table__.c.number)).all())

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()


def test_unopenable_sealed_secret_is_reported_at_its_manifest_line(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gwconfig.errors import ManifestError

    monkeypatch.delenv("GWCONFIG_SEALING_KEY", raising=False)
    sealed = {"name": "default", "value": {"sealed": "gwseal:v1:AAAAnotarealblob"}}
    root = write_manifests(tmp_path / "m", provider_doc(api_keys=[sealed]))
    with pytest.raises(ManifestError) as info:
        plan(root, gw)
    (diag,) = info.value.diagnostics
    assert diag.path.endswith("00-openai.yaml") and diag.line > 1
    assert diag.message.startswith("sealed value")


def test_database_errors_are_gwconfig_errors(tmp_path: Path, fernet_key: str) -> None:
    from gwconfig.errors import GwconfigError

    root = write_manifests(tmp_path / "m", provider_doc())
    url = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    with pytest.raises(GwconfigError, match=r"127\.0\.0\.1"):
        commands.plan(str(root), url, PlanOptions())
    with pytest.raises(GwconfigError):
        revisions.history(url)


def test_interactive_review_holds_no_lock_and_detects_changes(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc())
    other = write_manifests(tmp_path / "other", provider_doc("b"))

    def slow_reviewer(_plan: Any) -> bool:
        # another apply runs while the person reads: it must not wait for a lock
        _, result = apply(other, gw, lock_timeout=1)
        assert result.revision == 1
        return True

    with pytest.raises(StalePlanError, match="changed while the plan was being reviewed"):
        commands.apply(str(root), gw, PlanOptions(), review=slow_reviewer, write=interactive)
    assert [r.number for r in revisions.history(gw)] == [1]
    p, result = commands.apply(str(root), gw, PlanOptions(), review=yes, write=interactive)
    assert result.revision == 2 and p.summary["add"] == 6


def test_saved_plan_whose_changes_no_longer_match_is_refused(gw: str, tmp_path: Path) -> None:
    import orjson

    root = write_manifests(tmp_path / "m", provider_doc())
    saved = tmp_path / "plan.json"
    doc = plan(root, gw).to_json_dict(saved=True)
    doc["changes"] = doc["changes"][1:]  # as if another version had planned differently
    saved.write_bytes(orjson.dumps(doc))
    with pytest.raises(StalePlanError, match="other changes than the saved plan"):
        commands.apply_saved(str(saved), gw, review=yes)
    with pytest.raises(StalePlanError, match="other changes than the saved plan"):
        commands.apply_saved(str(saved), gw, review=yes, write=interactive)
    assert dump_tables(gw)["providers"] == []


def test_selection_that_matches_nothing_is_warned(gw: str, tmp_path: Path) -> None:
    root = write_manifests(tmp_path / "m", provider_doc())
    p = plan(root, gw, targets=("opneai",), tags=("nope",))
    assert p.changes == ()
    assert "--target opneai: no provider has this id" in p.warnings
    assert "--select-tag nope: no provider has this tag" in p.warnings


def test_manifest_problems_come_before_database_problems(tmp_path: Path, fernet_key: str) -> None:
    from gwconfig.errors import GwconfigError, ManifestError

    root = write_manifests(tmp_path / "m", provider_doc(colour="blue"))
    url = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    for run in (
        lambda: commands.plan(str(root), url, PlanOptions()),
        lambda: commands.apply(str(root), url, PlanOptions(), review=yes),
    ):
        with pytest.raises(ManifestError, match="colour"):
            run()
    write_manifests(root, provider_doc())
    with pytest.raises(GwconfigError, match=r"127\.0\.0\.1") as info:
        commands.apply(str(root), url, PlanOptions(), review=yes)
    assert not isinstance(info.value, ManifestError)


def test_reading_errors_on_the_direct_path_name_the_database(gw: str, tmp_path: Path) -> None:
    from gwconfig.errors import DatabaseError

    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    apply(root, gw)
    engine = create_engine(gw)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_events"))
        conn.execute(text("DROP TABLE routes"))
    engine.dispose()
    with pytest.raises(DatabaseError, match="planning against") as info:
        plan(root, gw)
    assert "routes" in str(info.value)


def test_invalid_manifests_release_the_lock_taken_while_parsing(gw: str, tmp_path: Path) -> None:
    from gwconfig.errors import ManifestError

    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    apply(root, gw)
    before = dump_tables(gw)
    write_manifests(root, provider_doc(colour="blue"), gateway_doc())
    with pytest.raises(ManifestError, match="colour"):
        apply(root, gw, lock_timeout=1)
    assert dump_tables(gw) == before  # rolled back, nothing written
    write_manifests(root, provider_doc(display_name="Renamed"), gateway_doc())
    _, result = apply(root, gw, lock_timeout=1)  # the lock was released
    assert result.revision == 2
