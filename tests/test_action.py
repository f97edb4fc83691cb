"""The reusable GitHub Action (action.yml): its run step, executed as the runner would run it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
KEY = Fernet.generate_key().decode()  # made at run time; nothing secret is committed
_EXPR = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return data


def evaluate(value: str, inputs: dict[str, str]) -> str:
    """Expand the ``${{ inputs.X }}`` / ``${{ github.X }}`` expressions the action uses."""
    github = {"action_path": str(ROOT), "actor": "octocat"}

    def one(match: re.Match[str]) -> str:
        scope, _, name = match.group(1).partition(".")
        if scope == "inputs":
            return inputs[name]
        assert scope == "github", match.group(0)
        return github[name]

    return _EXPR.sub(one, value)


def run_step(
    project: Path, db: str, **given: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """Run the action's ``run`` step in ``project`` with inputs ``given`` (``_`` for ``-``)."""
    spec = action()
    inputs = {name: evaluate(str(i.get("default", "")), {}) for name, i in spec["inputs"].items()}
    for key, value in given.items():
        name = key.replace("_", "-")
        assert name in inputs, f"action.yml has no input {name!r}"
        inputs[name] = value
    step = next(s for s in spec["runs"]["steps"] if s.get("id") == "run")
    out, summary = project / "github_output", project / "step_summary"
    out.write_text("")
    summary.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    env.update({k: evaluate(str(v), inputs) for k, v in step["env"].items()})
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        GITHUB_OUTPUT=str(out),
        GITHUB_STEP_SUMMARY=str(summary),
        RUNNER_TEMP=str(project),
        GWCONFIG_DATABASE_URL=db,
        GWCONFIG_ENCRYPTION_KEY=KEY,
        NO_COLOR="1",
    )
    proc = subprocess.run(
        ["bash", "-c", evaluate(step["run"], inputs)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return proc, outputs, summary.read_text()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "providers.d").mkdir()
    shutil.copy(ROOT / "providers.d" / "mock.yaml", tmp_path / "providers.d" / "mock.yaml")
    return tmp_path


def gwconfig(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script."""
    exe = str(Path(sys.executable).parent / "gwconfig")
    env = {**os.environ, "GWCONFIG_ENCRYPTION_KEY": KEY}
    return subprocess.run(
        [exe, *args], env=env, capture_output=True, text=True, check=True, timeout=120
    )


@pytest.mark.slow
def test_validate_plan_apply_through_the_action(project: Path) -> None:
    db = f"sqlite:///{project / 'gateway.db'}"
    gwconfig("db", "upgrade", "--database-url", db)
    proc, outputs, _ = run_step(project, db, command="validate")
    assert proc.returncode == 0, proc.stderr
    assert outputs["exitcode"] == "0"

    proc, outputs, summary = run_step(project, db, command="plan")
    assert proc.returncode == 0, proc.stderr  # changes are a success for a PR plan
    assert outputs["exitcode"] == "2"
    assert "+ provider mock" in Path(outputs["report"]).read_text()
    assert "### gwconfig plan" in summary
    assert Path(outputs["plan-file"]).is_file()

    proc, outputs, _ = run_step(project, db, command="plan", fail_on_changes="true", format="text")
    assert proc.returncode == 2
    assert "::error title=gwconfig drift::" in proc.stdout

    proc, outputs, summary = run_step(project, db, command="apply", prune="true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Apply complete: revision 1" in proc.stdout
    assert "revision 1" in summary
    assert (
        "octocat" in gwconfig("history", "--database-url", db).stdout
    )  # the default actor is the workflow's github.actor

    proc, outputs, _ = run_step(project, db, command="plan", fail_on_changes="true")
    assert proc.returncode == 0 and outputs["exitcode"] == "0"


def test_validate_errors_become_annotations(project: Path) -> None:
    (project / "providers.d" / "bad.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: bad\nprovider_typo: x\n"
    )
    proc, outputs, _ = run_step(project, f"sqlite:///{project / 'g.db'}", command="validate")
    assert proc.returncode == 1
    assert outputs["exitcode"] == "1"
    assert "::error file=providers.d/bad.yaml,line=" in proc.stdout


@pytest.mark.parametrize(
    "given",
    [
        {"command": "plan; touch pwned"},
        {"command": "apply", "actor": "$(touch pwned)"},
        {"command": "plan", "args": "--target `touch pwned`"},
        {"command": "plan", "path": "providers.d; touch pwned"},
    ],
)
def test_inputs_cannot_inject_shell(project: Path, given: dict[str, str]) -> None:
    proc, _, _ = run_step(project, f"sqlite:///{project / 'g.db'}", **given)
    assert not (project / "pwned").exists()
    if given["command"] != "apply":
        assert proc.returncode != 0  # a usage error, never mistaken for "plan has changes"


def test_workflows_use_the_action_with_declared_inputs() -> None:
    declared = set(action()["inputs"])
    used = 0
    for wf in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for job in yaml.safe_load(wf.read_text())["jobs"].values():
            for step in job["steps"]:
                if step.get("uses") == "./":
                    used += 1
                    given = set(step.get("with", {}))
                    assert given <= declared, f"{wf.name}: unknown inputs {given - declared}"
                    assert step["with"]["command"] in {"validate", "plan", "apply"}
    assert used >= 4
