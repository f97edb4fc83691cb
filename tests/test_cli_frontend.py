"""``gwconfig validate|compile|schema`` through CliRunner and through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from conftest import run_gwconfig
from gwconfig.cli import cli
from manifest_texts import MOCK as GOOD

BAD = GOOD.replace("model_id: mock-chat", "model_id: mock-chat\n    max_token: 3")


def tree(root: Path, text: str) -> None:
    """A providers.d with one file."""
    (root / "providers.d").mkdir(exist_ok=True)
    (root / "providers.d" / "mock.yaml").write_text(text)


def test_validate_clean_exits_zero(isolated_cwd: Path) -> None:
    tree(isolated_cwd, GOOD)
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 0, result.output
    assert "ok: 1 file, 1 provider, 1 model, 0 routes" in result.output


def test_validate_reports_errors_in_text(isolated_cwd: Path) -> None:
    tree(isolated_cwd, BAD)
    result = CliRunner().invoke(cli, ["validate", "providers.d"])
    assert result.exit_code == 1
    assert "providers.d/mock.yaml:7:5: error: unknown field 'max_token' in 'models'" in (
        result.stderr
    )
    assert "hint: did you mean 'max_tokens'?" in result.stderr
    assert "1 error" in result.stderr
    assert "Traceback" not in result.output


def test_validate_json_format(isolated_cwd: Path) -> None:
    tree(isolated_cwd, BAD)
    result = CliRunner().invoke(cli, ["validate", "--format", "json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["errors"] == 1
    assert doc["diagnostics"][0] == {
        "path": "providers.d/mock.yaml",
        "line": 7,
        "col": 5,
        "severity": "error",
        "message": "unknown field 'max_token' in 'models'",
        "hint": "did you mean 'max_tokens'?",
    }


def test_validate_github_annotations(isolated_cwd: Path) -> None:
    tree(isolated_cwd, BAD)
    result = CliRunner().invoke(cli, ["validate", "--format", "github"])
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "::error file=providers.d/mock.yaml,line=7,col=5,title=gwconfig error::"
        "unknown field 'max_token' in 'models'%0Ahint: did you mean 'max_tokens'?"
    )


def test_compile_writes_canonical_json(isolated_cwd: Path) -> None:
    tree(isolated_cwd, GOOD)
    result = CliRunner().invoke(cli, ["compile", "-o", "out/compiled.json"])
    assert result.exit_code == 0, result.output
    doc = json.loads((isolated_cwd / "out" / "compiled.json").read_text())
    assert doc["content_hash"].startswith("sha256:")
    assert doc["providers"][0]["models"][0]["model_id"] == "mock-chat"
    stdout = CliRunner().invoke(cli, ["compile"]).stdout
    assert json.loads(stdout) == doc


def test_compile_error_exits_one(isolated_cwd: Path) -> None:
    tree(isolated_cwd, BAD)
    result = CliRunner().invoke(cli, ["compile"])
    assert result.exit_code == 1
    assert "providers.d/mock.yaml:7:5: error: unknown field" in result.stderr


def test_schema_out_and_check(isolated_cwd: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["schema", "--check", "schemas"]).exit_code == 1
    result = runner.invoke(cli, ["schema", "--out", "schemas"])
    assert result.exit_code == 0
    names = sorted(p.name for p in (isolated_cwd / "schemas").iterdir())
    assert names == [
        "consumer.schema.json",
        "gateway.schema.json",
        "manifest.schema.json",
        "provider.schema.json",
    ]
    assert runner.invoke(cli, ["schema", "--check", "schemas"]).exit_code == 0
    (isolated_cwd / "schemas" / "gateway.schema.json").write_text("{}")
    stale = runner.invoke(cli, ["schema", "--check", "schemas"])
    assert stale.exit_code == 1
    assert "gateway.schema.json: out of date" in stale.stderr


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    return run_gwconfig(args, cwd, env)


def test_exit_codes_through_a_subprocess(isolated_cwd: Path) -> None:
    tree(isolated_cwd, GOOD)
    assert _run(["validate"], isolated_cwd).returncode == 0
    tree(isolated_cwd, BAD)
    bad = _run(["validate"], isolated_cwd)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert "providers.d/mock.yaml:7:5: error:" in bad.stderr
    missing = _run(["compile", "nowhere"], isolated_cwd)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no such file or directory: nowhere\n")


def test_env_option_renders_templates_and_names_template_lines(isolated_cwd: Path) -> None:
    (isolated_cwd / "providers.d").mkdir()
    (isolated_cwd / "environments").mkdir()
    (isolated_cwd / "environments" / "dev.yaml").write_text("model: dev-model\n")
    template = isolated_cwd / "providers.d" / "mock.yaml.j2"
    template.write_text(GOOD.replace("mock-chat", "{{ vars.model }}"))
    ok = CliRunner().invoke(cli, ["compile", "--env", "dev"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["providers"][0]["models"][0]["model_id"] == "dev-model"
    template.write_text(GOOD.replace("mock-chat", "{{ vars.model }}\n    colour: red"))
    bad = CliRunner().invoke(cli, ["validate", "--env", "dev", "--format", "github"])
    assert bad.exit_code == 1
    assert bad.stdout.startswith("::error file=providers.d/mock.yaml.j2,line=7,")
    assert "unknown field 'colour' in 'models'" in bad.stdout


def test_the_console_script_exits_with_the_command_status_and_flushed_output(
    isolated_cwd: Path,
) -> None:
    # main() ends the process itself (no interpreter teardown): output and status must survive
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handler ran', file=sys.stderr))\n"
        "from gwconfig.cli import main\nmain()\n"
    )
    for args, status in ((["validate", "nowhere"], 1), (["schema", "--help"], 0)):
        out = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, check=False
        )
        assert out.returncode == status
        assert "exit handler ran" in out.stderr
        assert out.stdout or out.stderr.count("\n") > 1
