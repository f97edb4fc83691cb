"""``gwconfig generate``: one request through the runtime client from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import run_gwconfig
from gwconfig.cli import cli
from gwconfig.db.rows import insert_config
from gwconfig.db.session import open_database
from gwconfig.secrets.keys import EncryptionKeys
from runtime_servers import (
    compile_docs,
    provider_doc,
    write_compiled,
)

MODELS = [
    {"model_id": "chat", "parameters": {"reply": "Hello from mock!"}},
    {"model_id": "echo", "parameters": {"echo": True}},
]
ROUTES = [{"name": "local-chat", "targets": [{"model": "mock/chat"}]}]


def compiled(tmp_path: Path) -> Path:
    return write_compiled(
        tmp_path / "c.json", [provider_doc("mock", "mock", MODELS)], routes=ROUTES
    )


def test_generate_from_compiled_file(tmp_path: Path, isolated_cwd: Path) -> None:
    path = compiled(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["generate", "--config", str(path), "--model", "local-chat", "Hi"])
    assert result.exit_code == 0, result.output
    assert result.output == "Hello from mock!\n"
    streamed = runner.invoke(
        cli, ["generate", "--config", str(path), "-m", "mock/echo", "--stream", "one two three"]
    )
    assert streamed.exit_code == 0 and streamed.output == "one two three\n"
    as_json = runner.invoke(cli, ["generate", "--config", str(path), "-m", "echo", "--json", "x y"])
    doc = json.loads(as_json.output)
    assert doc["generated_content"] == "x y" and doc["provider_id"] == "mock"
    assert doc["usage"]["total_tokens"] == 4 and doc["attempts"][0]["outcome"] == "ok"


def test_generate_errors_are_messages_not_tracebacks(tmp_path: Path, isolated_cwd: Path) -> None:
    path = compiled(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["generate", "--config", str(path), "-m", "local-caht", "Hi"])
    assert result.exit_code == 1
    assert "error: no route, alias or model named 'local-caht'" in result.output
    assert "did you mean 'local-chat'" in result.output
    missing = runner.invoke(cli, ["generate", "--config", str(tmp_path / "nope.json"), "Hi"])
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_generate_against_database_records_usage(
    tmp_path: Path, isolated_cwd: Path, fernet_key: str
) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = open_database(url, upgrade=True)
    with db.engine.begin() as conn:
        data = compile_docs([provider_doc("mock", "mock", MODELS)], routes=ROUTES).data
        insert_config(conn, data, EncryptionKeys(fernet_key))
    env = {"GWCONFIG_DATABASE_URL": url, "GWCONFIG_ENCRYPTION_KEY": fernet_key}
    result = CliRunner().invoke(
        cli, ["generate", "-m", "local-chat", "--session-id", "cli-1", "Hi"], env=env
    )
    assert result.exit_code == 0 and result.output == "Hello from mock!\n"
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT session_id, outcome FROM usage_records").all()
    assert rows == [("cli-1", "ok")]
    db.dispose()


def test_empty_database_hints_at_apply(tmp_path: Path, isolated_cwd: Path) -> None:
    """Through a real subprocess: exit code 1 and a hint, on the embedded default database."""
    proc = subprocess.run(
        [sys.executable, "-c", "from gwconfig.cli import main; main()", "generate", "Hi"],
        capture_output=True,
        text=True,
        cwd=isolated_cwd,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "has no providers" in proc.stderr and "gwconfig apply" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_readme_main_job_ends_with_an_answer(isolated_cwd: Path) -> None:
    """apply the example manifests' local provider, then generate through the embedded DB."""
    import shutil

    shutil.copytree(Path(__file__).resolve().parent.parent / "providers.d", "providers.d")
    apply = run_gwconfig(["apply", "--auto-approve", "--select-tag", "local"])
    assert apply.returncode == 0, apply.stderr
    answer = run_gwconfig(["generate", "--model", "local-chat", "Hello, world!"], timeout=60)
    assert answer.returncode == 0, answer.stderr
    import yaml

    texts = [p.read_text() for p in Path("providers.d").glob("*.yaml")]
    docs = [d for text in texts for d in yaml.safe_load_all(text)]
    replies = {
        m.get("parameters", {}).get("reply")
        for d in docs
        if d and d.get("kind") == "Provider" and d.get("provider_type") == "mock"
        for m in d.get("models", [])
    }
    assert answer.stdout.strip() in replies  # the local route's mock reply from providers.d/
    assert "Traceback" not in answer.stderr


def test_generate_without_model_or_default_route_says_how_to_name_one(
    tmp_path: Path, isolated_cwd: Path
) -> None:
    path = write_compiled(tmp_path / "c.json", [provider_doc("mock", "mock", MODELS)])
    result = CliRunner().invoke(cli, ["generate", "--config", str(path), "Hi"])
    assert result.exit_code == 1
    assert "no model and there is no default route" in result.output
    assert "hint: name a model: --model" in result.output
    assert "'mock/chat'" in result.output and "default_route" in result.output


def test_generate_lists_each_failed_target_on_its_own_line(
    tmp_path: Path, isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GWT_UNSET_KEY_X", raising=False)
    failing = [
        {"model_id": f"m{i}", "parameters": {"fail_times": 9, "fail_status": 503}} for i in range(2)
    ]
    keyed = provider_doc("keyed", "mock", ["k"], api_keys=[{"value": {"env": "GWT_UNSET_KEY_X"}}])
    routes = [
        {
            "name": "r",
            "targets": [{"model": "mock/m0"}, {"model": "mock/m1"}, {"model": "keyed/k"}],
        }
    ]
    path = write_compiled(
        tmp_path / "c.json",
        [provider_doc("mock", "mock", failing, request_settings={"max_retries": 0}), keyed],
        routes=routes,
    )
    result = CliRunner().invoke(cli, ["generate", "--config", str(path), "-m", "r", "Hi"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "error: all targets failed for 'r':"
    assert lines[1] == "  mock/m0, 1 attempt: mock failure (HTTP 503)"
    assert lines[2] == "  mock/m1, 1 attempt: mock failure (HTTP 503)"
    assert lines[3].startswith("  keyed/k, not called: no usable API key for environment")
    assert "((" not in result.output and "))" not in result.output
