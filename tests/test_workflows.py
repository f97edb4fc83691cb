"""The CI workflows (plan, apply, drift) parse, trigger as documented and run real commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from gwconfig.cli import cli

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"
# a command position: line start, or after && || ; $(
_INVOCATION = re.compile(r"(?m)(?:^|&&|\|\||;|\$\()[ \t]*gwconfig((?:[ \t]+[^\s|;&>)]+)+)")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key 'on' as True
    data["on"] = data.pop(True, data.get("on"))
    return data


def scripts(workflow: dict[str, Any]) -> list[str]:
    return [
        step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
    ]


def invocations(script: str) -> list[list[str]]:
    """Every ``gwconfig ...`` command line in a shell script, as words."""
    joined = script.replace("\\\n", " ")
    return [m.group(1).split() for m in _INVOCATION.finditer(joined)]


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command a word list names, and the option words passed to it."""
    ctx = click.Context(cli)
    command: click.Command = cli
    rest = list(words)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"gwconfig has no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, [w.split("=", 1)[0] for w in rest if w.startswith("--")]


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
        command, options = resolve(words)
        known = {opt for p in command.params for opt in getattr(p, "opts", [])}
        for option in options:
            assert option in known, f"{name}: gwconfig {' '.join(words)}: unknown {option}"


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
    command, options = resolve(["plan", "providers.d", "--bogus", "--format=json"])
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    assert options == ["--bogus", "--format"]
    assert "--bogus" not in known and "--format" in known
    with pytest.raises(AssertionError, match="no command 'deploy'"):
        resolve(["deploy"])
