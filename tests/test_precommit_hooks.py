"""The pre-commit hooks (.pre-commit-hooks.yaml) run from another repository, as its
``.pre-commit-config.yaml`` names them (``repo``, ``rev``, ``hooks``).

The hooks' repository is this one with its uncommitted changes committed in a clone (what
``pre-commit try-repo`` does); unlike ``try-repo``, which builds the hooks' environment anew in a
temporary store on every call, the runs share one store, so the environment is built once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HOOKS = ("gwconfig-validate", "gwconfig-schema-check")
NAMES = {
    "gwconfig-validate": "gwconfig validate",
    "gwconfig-schema-check": "gwconfig schema --check",
}
IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}

pytestmark = pytest.mark.slow


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    env = {**os.environ, **IDENTITY}
    done = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60, input=stdin, env=env
    )
    return done.stdout


@pytest.fixture(scope="module")
def hooks_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This repository as a consumer's config reaches it: (path, rev), with the working tree's
    changes to tracked files committed on a branch of a clone."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shadow = tmp_path_factory.mktemp("hooks-repo") / "gwconfig"
    head = git(ROOT, "rev-parse", "HEAD").decode().strip()
    git(ROOT.parent, "clone", "-q", "--no-checkout", str(ROOT), str(shadow))
    git(shadow, "checkout", "-q", "-b", "_pc_tmp", head)
    changes = git(ROOT, "diff", "HEAD", "--binary")
    if changes:
        git(shadow, "apply", "--index", "-", stdin=changes)
        git(shadow, "commit", "-q", "-m", "uncommitted changes")
    return shadow, git(shadow, "rev-parse", "HEAD").decode().strip()


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One pre-commit store for the module: the hooks' environment is built once."""
    yield tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def consumer(tmp_path: Path, hooks_repo: tuple[Path, str]) -> Path:
    """Another repository that keeps gwconfig manifests and schemas and uses both hooks."""
    repo = tmp_path / "consumer"
    (repo / "providers.d").mkdir(parents=True)
    shutil.copy(ROOT / "providers.d" / "mock.yaml", repo / "providers.d" / "mock.yaml")
    shutil.copytree(ROOT / "schemas", repo / "schemas")
    path, rev = hooks_repo
    config = {"repos": [{"repo": str(path), "rev": rev, "hooks": [{"id": h} for h in HOOKS]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    return repo


def run_hooks(consumer: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``pre-commit run --all-files`` in ``consumer`` with the store at ``home``."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GWCONFIG_", "PRE_COMMIT"))},
        "PRE_COMMIT_HOME": str(home),
        "NO_COLOR": "1",
        **IDENTITY,
    }
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files"],
        cwd=consumer,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def outcome(output: str, hook: str) -> str:
    """The result pre-commit printed for ``hook`` (Passed, Failed, Skipped)."""
    (line,) = [ln for ln in output.splitlines() if ln.startswith(NAMES[hook] + "...")]
    return line.rsplit(".", 1)[1]


def test_hook_definitions_are_what_the_readme_says() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == set(HOOKS)
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        assert hook["entry"].startswith("gwconfig ")


def test_hooks_pass_then_catch_mistakes(consumer: Path, pre_commit_home: Path) -> None:
    res = run_hooks(consumer, pre_commit_home)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [outcome(res.stdout, hook) for hook in HOOKS] == ["Passed", "Passed"], res.stdout

    (consumer / "providers.d" / "bad.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: bad\nprovider_type: openai\n"
        "modles: []\n"
    )
    git(consumer, "add", ".")
    res = run_hooks(consumer, pre_commit_home)
    assert res.returncode == 1
    assert [outcome(res.stdout, hook) for hook in HOOKS] == ["Failed", "Passed"], res.stdout
    assert "providers.d/bad.yaml:5:1: error: unknown field 'modles'" in res.stdout

    schema = next((consumer / "schemas").glob("*.json"))
    schema.write_text(schema.read_text().replace('"title"', '"titel"', 1))
    git(consumer, "add", ".")
    res = run_hooks(consumer, pre_commit_home)
    assert res.returncode == 1
    assert outcome(res.stdout, "gwconfig-schema-check") == "Failed", res.stdout
