"""The CI workflows (plan, apply, drift) parse, trigger as documented and run real commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from docs_words import invocations, resolve, unknown_options

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key 'on' as True
    data["on"] = data.pop(True, data.get("on"))
    return data


def scripts(workflow: dict[str, Any]) -> list[str]:
    return [
        step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
    ]


def action_steps(workflow: dict[str, Any], command: str) -> list[dict[str, Any]]:
    """The steps of ``workflow`` that run the repository's own action with ``command``."""
    return [
        step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if step.get("uses") == "./" and step["with"]["command"] == command
    ]


@pytest.mark.parametrize("name", ["plan.yml", "apply.yml", "drift.yml", "validate.yml"])
def test_commands_in_workflows_exist(name: str) -> None:
    wf = load(name)
    found = [words for script in scripts(wf) for words in invocations(script)]
    assert found or any(s.get("uses") == "./" for j in wf["jobs"].values() for s in j["steps"])
    for words in found:
        assert unknown_options(words) == [], f"{name}: gwconfig {' '.join(words)}"


def test_plan_workflow_comments_on_pull_requests() -> None:
    wf = load("plan.yml")
    assert "pull_request" in wf["on"]
    assert wf["permissions"]["pull-requests"] == "write"
    assert action_steps(wf, "validate")  # annotations (--format github by default)
    (plan,) = action_steps(wf, "plan")
    assert plan["id"] == "plan" and plan["with"]["prune"] == "true"
    assert plan["with"].get("format", "markdown") == "markdown"
    steps = wf["jobs"]["plan"]["steps"]
    comment = next(s for s in steps if s.get("uses", "").startswith("actions/github-script"))
    assert comment["env"]["PLAN_REPORT"] == "${{ steps.plan.outputs.report }}"
    assert "updateComment" in comment["with"]["script"]
    assert "createComment" in comment["with"]["script"]


def test_apply_workflow_is_serialised_and_records_actor() -> None:
    wf = load("apply.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["concurrency"]["cancel-in-progress"] is False
    (apply,) = action_steps(wf, "apply")
    assert "actor" not in apply["with"]  # the action's default: github.actor
    assert float(apply["with"]["lock-timeout"]) >= 60
    env = wf["jobs"]["apply"]["env"]
    assert env["GWCONFIG_ENCRYPTION_KEY"] == "${{ secrets.GWCONFIG_ENCRYPTION_KEY }}"
    assert env["GWCONFIG_DATABASE_URL"].startswith("${{ secrets.")


def test_drift_workflow_is_scheduled_and_fails_on_changes() -> None:
    wf = load("drift.yml")
    assert wf["on"]["schedule"][0]["cron"]
    (plan,) = action_steps(wf, "plan")
    assert plan["with"]["fail-on-changes"] == "true"


def test_secrets_only_come_from_repository_secrets() -> None:
    for name in ("plan.yml", "apply.yml", "drift.yml"):
        for job in load(name)["jobs"].values():
            for var, value in job.get("env", {}).items():
                if var.endswith(("_KEY", "_URL", "_ID")):
                    assert str(value).startswith("${{ secrets."), f"{name}: {var}"


def test_invocations_parser() -> None:
    script = "gwconfig apply providers.d --prune \\\n  --auto-approve | tee x\ngwconfig history"
    assert invocations(script) == [
        ["apply", "providers.d", "--prune", "--auto-approve"],
        ["history"],
    ]


def test_checker_catches_unknown_commands_and_options() -> None:
    _, options = resolve(["plan", "providers.d", "--bogus", "--format=json"])
    assert options == ["--bogus", "--format"]
    assert unknown_options(["plan", "providers.d", "--bogus", "--format=json"]) == ["--bogus"]
    with pytest.raises(AssertionError, match="no command 'deploy'"):
        resolve(["deploy"])
