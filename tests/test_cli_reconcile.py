"""CLI: plan/apply/history/show-revision/rollback through CliRunner and a real subprocess;
the secret canary never appears in any output, file, row, log or exception."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, text

from builders import gateway_doc, provider_doc, write_manifests
from gwconfig.cli import cli
from gwconfig.db.snapshots import decompress_snapshot


def run(*args: str, input: str | None = None) -> Any:
    """Invoke the CLI in-process; never let an exception escape unnoticed."""
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result


def test_plan_detailed_exitcode_and_formats(gw: str, tmp_path: Path) -> None:
    root = str(write_manifests(tmp_path / "m", provider_doc(), gateway_doc()))
    res = run("plan", root, "--database-url", gw, "--detailed-exitcode")
    assert res.exit_code == 2, res.output
    assert "+ provider openai" in res.output
    assert res.output.rstrip().endswith("Plan: 7 to add, 1 to change, 0 to delete.")
    res = run("plan", root, "--database-url", gw, "--format", "json", "--detailed-exitcode")
    assert res.exit_code == 2
    doc = orjson.loads(res.output)  # complete JSON before the exit code
    assert doc["summary"]["add"] == 7 and doc["format_version"] == 1
    res = run("plan", root, "--database-url", gw, "--format", "markdown")
    assert res.exit_code == 0 and "### gwconfig plan" in res.output
    res = run("apply", root, "--database-url", gw, "--auto-approve", "--actor", "me")
    assert res.exit_code == 0, res.output
    assert "Apply complete: revision 1 (7 added, 1 changed, 0 deleted)." in res.output
    res = run("plan", root, "--database-url", gw, "--detailed-exitcode")
    assert res.exit_code == 0
    assert res.output == "No changes. The database matches the manifests.\n"


def test_saved_plan_and_stale_plan(gw: str, tmp_path: Path) -> None:
    root = str(write_manifests(tmp_path / "m", provider_doc()))
    out = str(tmp_path / "plan.json")
    res = run("plan", root, "--database-url", gw, "--out", out)
    assert res.exit_code == 0 and f"gwconfig apply --plan {out}" in res.output
    res = run("apply", "--plan", out, "--database-url", gw, "--auto-approve")
    assert res.exit_code == 0 and "revision 1" in res.output
    res = run("apply", "--plan", out, "--database-url", gw, "--auto-approve")
    assert res.exit_code == 1
    assert "error: plan is stale: the database changed since it was made; run plan again" in (
        res.output
    )
    res = run("apply", root, "--plan", out, "--database-url", gw)
    assert res.exit_code == 2 and "--plan applies a saved plan" in res.output


def test_apply_asks_for_confirmation(gw: str, tmp_path: Path) -> None:
    root = str(write_manifests(tmp_path / "m", provider_doc()))
    res = run("apply", root, "--database-url", gw, input="n\n")
    assert res.exit_code == 0 and "Apply cancelled; nothing was changed." in res.output
    res = run("apply", root, "--database-url", gw, input="")
    assert res.exit_code == 1 and "pass --auto-approve in scripts and CI" in res.output
    res = run("apply", root, "--database-url", gw, input="y\n")
    assert res.exit_code == 0 and "Apply complete: revision 1" in res.output


def test_apply_json_history_show_revision_rollback(gw: str, tmp_path: Path) -> None:
    root = tmp_path / "m"
    write_manifests(root, provider_doc(), gateway_doc())
    res = run("apply", str(root), "--database-url", gw, "--auto-approve", "--format", "json")
    doc = orjson.loads(res.output)
    assert doc["applied"] and doc["revision"] == 1 and doc["plan"]["summary"]["add"] == 7
    write_manifests(root, provider_doc(description="v2"), gateway_doc())
    run("apply", str(root), "--database-url", gw, "--auto-approve")
    res = run("history", "--database-url", gw)
    lines = res.output.splitlines()
    assert lines[0].split()[:3] == ["REV", "APPLIED", "(UTC)"]
    assert lines[1].split()[0] == "2" and "+0 ~1 -0" in lines[1]
    assert lines[2].split()[0] == "1" and "+7 ~1 -0" in lines[2]
    res = run("history", "--database-url", gw, "--format", "json", "--limit", "1")
    assert [r["number"] for r in orjson.loads(res.output)] == [2]
    res = run("show-revision", "2", "--database-url", gw)
    assert "Revision 2" in res.output and "~ provider openai" in res.output
    res = run("show-revision", "1", "--database-url", gw, "--format", "json")
    assert orjson.loads(res.output)["config"]["providers"][0]["description"] is None
    res = run("rollback", "1", "--database-url", gw, "--auto-approve")
    assert res.exit_code == 0 and "Rollback to revision 1 complete: revision 3" in res.output
    res = run("plan", str(tmp_path / "m"), "--database-url", gw, "--detailed-exitcode")
    assert res.exit_code == 2 and 'description: null -> "v2"' in res.output
    res = run("show-revision", "9", "--database-url", gw)
    assert res.exit_code == 1 and "error: revision 9 does not exist" in res.output


def test_history_empty(gw: str) -> None:
    res = run("history", "--database-url", gw)
    assert res.exit_code == 0 and "No revisions yet" in res.output


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from gwconfig.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.slow
def test_exit_codes_in_a_real_process(sqlite_url: str, tmp_path: Path, fernet_key: str) -> None:
    from gwconfig.db.session import open_database

    gw = sqlite_url
    open_database(gw, upgrade=True).dispose()
    env = {**os.environ, "NO_COLOR": "1", "GWCONFIG_ENCRYPTION_KEY": fernet_key,
           "GWT_API_KEY": "k", "GWT_PROJECT": "p"}  # fmt: skip
    root = str(write_manifests(tmp_path / "m", provider_doc()))
    p = _cli("plan", root, "--database-url", gw, "--detailed-exitcode", "--format", "json", env=env)
    assert p.returncode == 2 and orjson.loads(p.stdout)["summary"]["add"] == 6
    assert _cli("apply", root, "--database-url", gw, "--auto-approve", env=env).returncode == 0
    p = _cli("plan", root, "--database-url", gw, "--detailed-exitcode", env=env)
    assert p.returncode == 0 and "\x1b[" not in p.stdout
    p = _cli(
        "plan", str(tmp_path / "missing"), "--database-url", gw, "--detailed-exitcode", env=env
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr and p.stderr.strip()


def all_rows(url: str) -> str:
    """Every row of every table in the database, as one string."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            chunks = []
            for table in inspect(conn).get_table_names():
                result = conn.execute(text(f"SELECT * FROM {table}"))
                columns = list(result.keys())
                for row in result:
                    values = [
                        decompress_snapshot(v) if c == "snapshot" else v  # stored compressed
                        for c, v in zip(columns, row, strict=True)
                    ]
                    chunks.append(repr(values))
            return "\n".join(chunks)
    finally:
        engine.dispose()


def test_secret_canary_never_leaks(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    canary = "sk-canary-" + secrets.token_hex(16)
    param_canary = "proj-canary-" + secrets.token_hex(16)
    monkeypatch.setenv("GWT_API_KEY", canary)
    monkeypatch.setenv("GWT_PROJECT", param_canary)
    root = tmp_path / "m"
    write_manifests(root, provider_doc(), gateway_doc())
    out = str(tmp_path / "plan.json")
    outputs: list[str] = []
    for args in (
        ["plan", str(root), "--out", out],
        ["plan", str(root), "--format", "json"],
        ["plan", str(root), "--format", "markdown"],
        ["apply", "--plan", out, "--auto-approve"],
        ["apply", "--plan", out, "--auto-approve"],  # stale: an error message
        ["history"],
        ["history", "--format", "json"],
        ["show-revision", "1"],
        ["show-revision", "1", "--format", "json"],
    ):
        res = CliRunner().invoke(cli, [*args, "--database-url", gw])
        outputs.append(res.output + repr(res.exception))
    monkeypatch.setenv("GWT_API_KEY", canary + "-2")
    for args in (
        ["apply", str(root), "--auto-approve", "--format", "json"],
        ["rollback", "1", "--auto-approve"],
        ["rollback", "1", "--auto-approve", "--format", "json"],
        ["plan", str(root)],
    ):
        res = CliRunner().invoke(cli, [*args, "--database-url", gw])
        assert res.exit_code in (0, 2), res.output
        outputs.append(res.output + repr(res.exception))
    assert "(sensitive value changed)" in outputs[-1]
    monkeypatch.delenv("GWT_API_KEY")
    res = CliRunner().invoke(cli, ["apply", str(root), "--auto-approve", "--database-url", gw])
    assert res.exit_code == 1
    outputs.append(res.output + repr(res.exception))
    haystacks = {
        "outputs": "\n".join(outputs),
        "plan file": Path(out).read_text(),
        "database": all_rows(gw),
        "logs": caplog.text,
    }
    for name, hay in haystacks.items():
        for needle in (canary, param_canary):
            assert needle not in hay, f"plaintext secret found in {name}"
    assert "revision 1" in haystacks["outputs"] and "gwconfig plan" in haystacks["outputs"]


def test_readme_quick_start_applies_local_providers(isolated_cwd: Path) -> None:
    import shutil

    examples = Path(__file__).resolve().parent.parent / "providers.d"
    shutil.copytree(examples, isolated_cwd / "providers.d")
    res = run("apply", "--auto-approve", "--select-tag", "local")
    assert res.exit_code == 0, res.output
    assert "+ provider mock" in res.output and "+ route local-chat" in res.output
    assert "Apply complete: revision 1" in res.output
    assert (isolated_cwd / ".gwconfig" / "encryption.key").stat().st_mode & 0o777 == 0o600
    res = run("apply", "--auto-approve", "--select-tag", "local")
    assert res.exit_code == 0 and "No changes." in res.output


def test_git_sha_recorded_from_the_checkout(
    gw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    if shutil.which("git") is None:
        pytest.fail("git is needed to check that the commit sha is recorded")
    root = write_manifests(tmp_path / "repo" / "providers.d", provider_doc())
    repo = root.parent
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "manifests"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    run("apply", str(root), "--database-url", gw, "--auto-approve")
    res = run("history", "--database-url", gw, "--format", "json")
    assert orjson.loads(res.output)[0]["git_sha"] == head.strip()
