"""``gwconfig health``: one real call per model against loopback upstreams, a table, exit codes."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner

from builders import write_manifests
from conftest import run_gwconfig
from gwconfig.cli import cli
from reconcile_helpers import apply
from runtime_servers import FAST, FakeLLMServer, provider_doc, write_compiled


def _compiled(tmp_path: Path, server: FakeLLMServer) -> Path:
    good = provider_doc(
        "up",
        "openai",
        ["gpt-ok", "leak:json", "fail:503:1000"],
        api_keys=[{"value": {"env": "HEALTH_KEY"}}],
        request_settings={**FAST, "max_retries": 1, "timeout_seconds": 5},
        connection={"api_base": server.base_url + "/v1"},
    )
    mock = provider_doc("mock", "mock", [{"model_id": "chat", "parameters": {"reply": "OK"}}])
    routes = [
        {"name": "main", "targets": [{"model": "up/gpt-ok"}, {"model": "mock/chat"}]},
    ]
    return write_compiled(tmp_path / "c.json", [good, mock], routes=routes)


def _env(key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    env["HEALTH_KEY"] = key
    return env


def test_health_of_the_routes_targets_passes(tmp_path: Path, module_server: FakeLLMServer) -> None:
    path = _compiled(tmp_path, module_server)
    key = "sk-health-" + secrets.token_urlsafe(24)
    result = run_gwconfig(["health", "--config", str(path)], cwd=tmp_path, env=_env(key))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["MODEL", "STATUS", "LATENCY_MS", "ERROR"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert rows == {"up/gpt-ok": "ok", "mock/chat": "ok"}
    # each check is one small real call: a short prompt and a small max_tokens
    sent = [body for _p, _h, body in module_server.requests if body.get("model") == "gpt-ok"]
    assert sent and sent[-1]["max_tokens"] == 5


def test_health_fails_with_exit_1_and_never_prints_the_key(
    tmp_path: Path, module_server: FakeLLMServer
) -> None:
    path = _compiled(tmp_path, module_server)
    key = "sk-health-" + secrets.token_urlsafe(24)
    result = run_gwconfig(
        ["health", "--config", str(path), "--all", "--format", "json", "--concurrency", "2"],
        cwd=tmp_path,
        env=_env(key),
    )
    assert result.returncode == 1
    docs = {d["model"]: d for d in json.loads(result.stdout)}
    assert set(docs) == {"up/gpt-ok", "up/leak:json", "up/fail:503:1000", "mock/chat"}
    assert docs["up/gpt-ok"]["ok"] and docs["mock/chat"]["ok"]
    assert not docs["up/leak:json"]["ok"] and "HTTP 401" in docs["up/leak:json"]["error"]
    assert not docs["up/fail:503:1000"]["ok"] and "503" in docs["up/fail:503:1000"]["error"]
    assert "2 of 4 failed" in result.stderr
    # the upstream echoed the key in its error: none of it is printed
    for out in (result.stdout, result.stderr):
        assert all(key[i : i + 8] not in out for i in range(len(key) - 7))


def test_health_of_named_models_and_errors(tmp_path: Path, module_server: FakeLLMServer) -> None:
    path = _compiled(tmp_path, module_server)
    env = _env("sk-" + secrets.token_urlsafe(24))
    one = run_gwconfig(["health", "--config", str(path), "-m", "chat"], cwd=tmp_path, env=env)
    assert one.returncode == 0, one.stderr
    assert [line.split()[0] for line in one.stdout.splitlines()[1:]] == ["mock/chat"]
    unknown = run_gwconfig(["health", "--config", str(path), "-m", "nope"], cwd=tmp_path, env=env)
    assert unknown.returncode == 1
    assert "error: no route, alias or model named 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    both = run_gwconfig(
        ["health", "--config", str(path), "-m", "chat", "--all"], cwd=tmp_path, env=env
    )
    assert both.returncode == 2 and "either --model or --all" in both.stderr


def test_health_from_the_database(
    db_url: str, fernet_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gwconfig.db.session import open_database

    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.chdir(tmp_path)
    open_database(db_url, upgrade=True).dispose()
    mock = provider_doc("mock", "mock", [{"model_id": "chat", "parameters": {"reply": "OK"}}])
    gateway = {
        "apiVersion": "gwconfig/v1",
        "kind": "Gateway",
        "routes": [{"name": "main", "targets": [{"model": "mock/chat"}]}],
    }
    apply(write_manifests(tmp_path / "m", mock, gateway), db_url)
    result = CliRunner().invoke(cli, ["health", "--database-url", db_url, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [d["model"] for d in json.loads(result.output)] == ["mock/chat"]
