"""Reports read as sentences: counted nouns agree, lists of problems go one per line, and
``show-revision`` names entities as ``plan`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gwconfig.cli import cli
from gwconfig.words import bulleted, plural
from manifest_texts import gateway_routing_to

PROVIDER = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: mock
provider_type: mock
api_keys:
{keys}
models:
  - model_id: echo
"""
GATEWAY = gateway_routing_to("mock/echo")


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 providers"), (1, "1 provider"), (2, "2 providers"), (21, "21 providers")],
)
def test_plural(count: int, expected: str) -> None:
    assert plural(count, "provider") == expected
    assert plural(count, "entity", "entities").endswith("entity" if count == 1 else "entities")


def test_bulleted_puts_one_item_per_line() -> None:
    assert bulleted(["a", "b"]) == "\n  - a\n  - b"


def _write(root: Path, environments: list[str]) -> Path:
    keys = "\n".join(
        f"  - {{name: k{i}, environment: {e}, value: {{env: GW_WORDS_MISSING_{i}}}}}"
        for i, e in enumerate(environments)
    )
    d = root / "providers.d"
    d.mkdir(exist_ok=True)
    (d / "mock.yaml").write_text(PROVIDER.format(keys=keys or "  []"))
    (d / "gateway.yaml").write_text(GATEWAY)
    return d


@pytest.mark.parametrize("missing", [1, 6])
def test_missing_secrets_are_listed_one_per_line(
    missing: int, tmp_path: Path, sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    path = _write(tmp_path, [f"env{i}" for i in range(missing)])
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade", "--database-url", sqlite_url]).exit_code == 0
    for command in (["apply", "--auto-approve"], ["apply"]):
        result = runner.invoke(cli, [*command, str(path), "--database-url", sqlite_url])
        assert result.exit_code == 1, result.output
        lines = result.output.splitlines()
        head = next(i for i, line in enumerate(lines) if "cannot apply" in line)
        assert lines[head].endswith(f"{plural(missing, 'secret')} cannot be resolved:")
        listed = lines[head + 1 : head + 1 + missing]
        assert [line.split(": ")[0] for line in listed] == [
            f"  - mock/key:k{i}@env{i}" for i in range(missing)
        ]
        assert all(f"GW_WORDS_MISSING_{i} is not set" in listed[i] for i in range(missing))
        assert max(len(line) for line in lines) < 120


def _empty_tree_and_database(
    tmp_path: Path, sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, CliRunner]:
    """Manifests with no keys, an upgraded database, the encryption key set; and a runner."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    path = _write(tmp_path, [])
    runner = CliRunner()
    runner.invoke(cli, ["db", "upgrade", "--database-url", sqlite_url])
    return path, runner


def test_a_single_delete_over_the_limit_is_one_entity(
    tmp_path: Path, sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, runner = _empty_tree_and_database(tmp_path, sqlite_url, fernet_key, monkeypatch)
    args = ["--database-url", sqlite_url, "--auto-approve", "--max-deletes", "0"]
    assert runner.invoke(cli, ["apply", str(path), *args]).exit_code == 0
    (path / "gateway.yaml").write_text("apiVersion: gwconfig/v1\nkind: Gateway\nroutes: []\n")
    result = runner.invoke(cli, ["apply", str(path), "--prune", *args])
    assert result.exit_code == 1
    assert "refusing to delete 1 entity " in result.output, result.output


def test_show_revision_labels_and_counts_read_like_plan(
    tmp_path: Path, sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, runner = _empty_tree_and_database(tmp_path, sqlite_url, fernet_key, monkeypatch)
    plan = runner.invoke(cli, ["plan", str(path), "--database-url", sqlite_url])
    planned = [line for line in plan.output.splitlines() if line[:2] in ("+ ", "~ ", "- ")]
    assert "+ route local-chat" in planned
    args = ["--database-url", sqlite_url, "--auto-approve"]
    assert runner.invoke(cli, ["apply", str(path), *args]).exit_code == 0
    shown = runner.invoke(cli, ["show-revision", "1", "--database-url", sqlite_url]).output
    listed = [line.strip() for line in shown.splitlines() if line.startswith("    ")]
    assert sorted(listed) == sorted(planned)
    assert "config:   1 provider, 1 model, 1 route" in shown
