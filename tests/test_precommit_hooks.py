"""The pre-commit hooks (.pre-commit-hooks.yaml) run from another repository via ``try-repo``."""

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

pytestmark = pytest.mark.slow


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One pre-commit cache for the module: the hook environment is built once."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    yield tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def consumer(tmp_path: Path) -> Path:
    """Another repository that keeps gwconfig manifests and schemas."""
    repo = tmp_path / "consumer"
    (repo / "providers.d").mkdir(parents=True)
    shutil.copy(ROOT / "providers.d" / "mock.yaml", repo / "providers.d" / "mock.yaml")
    shutil.copytree(ROOT / "schemas", repo / "schemas")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    return repo


def try_repo(consumer: Path, home: Path, hook: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GWCONFIG_", "PRE_COMMIT"))},
        "PRE_COMMIT_HOME": str(home),
        "NO_COLOR": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), hook, "--all-files"],
        cwd=consumer,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_hook_definitions_are_what_the_readme_says() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == set(HOOKS)
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        assert hook["entry"].startswith("gwconfig ")


def test_hooks_pass_then_catch_mistakes(consumer: Path, pre_commit_home: Path) -> None:
    for hook in HOOKS:
        res = try_repo(consumer, pre_commit_home, hook)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Passed" in res.stdout

    (consumer / "providers.d" / "bad.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: bad\nprovider_type: openai\n"
        "modles: []\n"
    )
    git(consumer, "add", ".")
    res = try_repo(consumer, pre_commit_home, "gwconfig-validate")
    assert res.returncode == 1
    assert "Failed" in res.stdout
    assert "providers.d/bad.yaml:5:1: error: unknown field 'modles'" in res.stdout

    schema = next((consumer / "schemas").glob("*.json"))
    schema.write_text(schema.read_text().replace('"title"', '"titel"', 1))
    git(consumer, "add", ".")
    res = try_repo(consumer, pre_commit_home, "gwconfig-schema-check")
    assert res.returncode == 1 and "Failed" in res.stdout
