"""Credential headers (``connection.headers`` named like a credential) are secrets end to end.

``validate`` refuses a literal one at its file:line; applied, it is stored encrypted and planned
masked; REST shows it masked, the config API carries only its ciphertext, dump writes it as an
env reference; the runtime sends the decrypted value to a recording upstream. The value is made
per test and searched for in every output. Non-credential headers stay plain.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import run_gwconfig
from gwconfig.cli import cli
from gwconfig.db.session import open_database
from gwconfig.db.watch import stop_shared_watchers
from gwconfig.entities import MASK
from gwconfig.secrets.keys import generate_key
from gwconfig.secrets.names import sensitive_header
from runtime_servers import FakeLLMServer
from serve_helpers import make_token, serve_app

#: a safety net against a runtime that never follows a write, never an assumption about speed
BOUND = 60.0
NO_CHANGES = "No changes. The database matches the manifests.\n"


def run(*args: str) -> Any:
    """The CLI in-process; stdout and stderr kept apart."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def provider(base_url: str, headers: dict[str, Any]) -> dict[str, Any]:
    """A provider reached at the recording upstream, with ``headers``."""
    return {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "proxy",
        "provider_type": "openai",
        "connection": {"api_base": f"{base_url}/v1", "headers": headers},
        "models": [{"model_id": "m"}],
    }


def write(root: Path, doc: dict[str, Any]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "proxy.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


@pytest.mark.parametrize(
    ("name", "secret"),
    [("Authorization", True), ("api-key", True), ("X-Api-Key", True), ("X-Auth-Token", True),
     ("Cookie", True), ("X-Team", False), ("Accept-Language", False)],
)  # fmt: skip
def test_the_one_rule_for_credential_names(name: str, secret: bool) -> None:
    assert sensitive_header(name) is secret


def test_validate_refuses_a_literal_credential_header_at_its_line(tmp_path: Path) -> None:
    literal = "lit-" + secrets.token_hex(8)
    root = tmp_path / "m"
    root.mkdir()
    (root / "proxy.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: proxy\nprovider_type: openai\n"
        "connection:\n  headers:\n    X-Team: blue\n"
        f"    X-Api-Key: {literal}\n"
        "models:\n  - model_id: m\n"
    )
    res = run_gwconfig(["validate", str(root)])
    assert res.returncode == 1
    assert (
        f"{root / 'proxy.yaml'}:8:16: error: header 'X-Api-Key' carries credentials" in res.stderr
    )
    assert "hint: secrets are never written in plain text" in res.stderr
    assert "gwconfig seal --provider proxy --header X-Api-Key" in res.stderr
    assert literal not in res.stderr + res.stdout
    # as a reference it is valid; the plain header stays plain
    (root / "proxy.yaml").write_text(
        (root / "proxy.yaml").read_text().replace(literal, "{env: PROXY_HEADER}")
    )
    assert run_gwconfig(["validate", str(root)]).returncode == 0


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    yield server
    server.stop()


def test_apply_plan_rest_config_dump_and_runtime(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeLLMServer
) -> None:
    value = "hdr-" + secrets.token_hex(16)
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("PROXY_HEADER", value)
    monkeypatch.delenv("GWCONFIG_API_TOKEN", raising=False)
    root = write(
        tmp_path / "m",
        provider(upstream.base_url, {"X-Team": "blue", "X-Api-Key": {"env": "PROXY_HEADER"}}),
    )
    outputs: list[str] = []
    open_database(db_url, upgrade=True).dispose()
    applied = run("apply", str(root), "--database-url", db_url, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    plan = run("plan", str(root), "--database-url", db_url)
    assert plan.stdout == NO_CHANGES, plan.output
    monkeypatch.setenv("PROXY_HEADER", value + "-new")
    changed = run("plan", str(root), "--database-url", db_url, "--format", "json")
    assert "(sensitive" in changed.stdout and '"sensitive": true' in changed.stdout
    monkeypatch.setenv("PROXY_HEADER", value)
    outputs += [applied.output, plan.output, changed.output]
    # at rest: ciphertext and a fingerprint, never the value
    dumped = run("dump", "--database-url", db_url, "--out", str(tmp_path / "d"), "--secrets", "env")
    assert dumped.exit_code == 0, dumped.output
    written = (tmp_path / "d" / "proxy.yaml").read_text()
    assert "X-Api-Key:\n      env: GW_PROXY_PARAM_HEADER_X_API_KEY\n" in written
    assert "X-Team: blue" in written
    outputs += [dumped.output, written]
    try:
        with serve_app(db_url) as server:
            read, runtime, invoke = (make_token(db_url, s) for s in ("read", "runtime", "invoke"))
            with server.client(read) as client:
                detail = client.get("/api/v1/providers/proxy")
            assert detail.status_code == 200, detail.text
            body = detail.json()
            assert body["connection_params"]["headers"] == {"X-Team": "blue"}
            masked = [
                p for p in body["connection_parameters"] if p["param_name"] == "header:X-Api-Key"
            ]
            assert masked and masked[0]["is_sensitive"] is True
            with server.client(runtime) as client:
                config = client.get("/api/v1/config")
            assert config.status_code == 200
            ids = [s[0] for s in config.json()["secrets"]]
            assert "proxy/param:header:X-Api-Key@default" in ids
            with server.client(invoke) as client:
                answer = client.post(
                    "/v1/chat/completions",
                    json={"model": "proxy/m", "messages": [{"role": "user", "content": "hi"}]},
                )
            assert answer.status_code == 200, answer.text
            outputs += [detail.text, config.text, answer.text]
    finally:
        stop_shared_watchers()
    sent = upstream.requests[-1][1]
    assert sent["x-api-key"] == value and sent["x-team"] == "blue"
    for out in outputs:
        assert value not in out


def test_rest_takes_a_credential_header_as_a_write_only_secret(
    db_url: str, monkeypatch: pytest.MonkeyPatch, upstream: FakeLLMServer
) -> None:
    value = "rest-" + secrets.token_hex(16)
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    monkeypatch.delenv("GWCONFIG_API_TOKEN", raising=False)
    open_database(db_url, upgrade=True).dispose()
    outputs: list[str] = []
    try:
        with serve_app(db_url) as server:
            admin, read, invoke = (make_token(db_url, s) for s in ("admin", "read", "invoke"))
            body = {
                "provider_id": "rest-proxy",
                "provider_type": "openai",
                "connection_params": {
                    "api_base": f"{upstream.base_url}/v1",
                    "headers": {"Authorization": f"Bearer {value}", "X-Team": "red"},
                },
                "models": [{"model_id": "m"}],
            }
            with server.client(admin) as client:
                created = client.post("/api/v1/providers", json=body)
            assert created.status_code == 201, created.text
            for token in (admin, read):
                with server.client(token) as client:
                    shown = client.get("/api/v1/providers/rest-proxy")
                assert shown.status_code == 200, shown.text
                assert shown.json()["connection_params"]["headers"] == {"X-Team": "red"}
                outputs.append(shown.text)
            request = {"model": "rest-proxy/m", "messages": [{"role": "user", "content": "hi"}]}
            deadline = time.monotonic() + BOUND  # the runtime follows the write: poll for it
            with server.client(invoke) as client:
                answer = client.post("/v1/chat/completions", json=request)
                while answer.status_code == 404 and time.monotonic() < deadline:
                    answer = client.post("/v1/chat/completions", json=request)
            assert answer.status_code == 200, answer.text
            outputs += [created.text, answer.text]
    finally:
        stop_shared_watchers()
    sent = upstream.requests[-1][1]
    assert sent["authorization"] == f"Bearer {value}" and sent["x-team"] == "red"
    for out in outputs:
        assert value not in out


def test_rest_masks_a_credential_header_stored_plain(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential header stored as plain text (written before headers were secrets) is
    shown masked to every token."""
    from gwconfig.db.models import Provider

    value = "old-" + secrets.token_hex(16)
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    monkeypatch.delenv("GWCONFIG_API_TOKEN", raising=False)
    db = open_database(db_url, upgrade=True)
    try:
        with db.transaction() as session:
            session.add(
                Provider(
                    provider_id="old",
                    provider_type="openai",
                    display_name="old",
                    connection_params={"headers": {"X-Api-Key": value, "X-Team": "blue"}},
                    request_settings={},
                    tags=[],
                )
            )
    finally:
        db.dispose()
    try:
        with serve_app(db_url) as server, server.client(make_token(db_url, "read")) as client:
            shown = client.get("/api/v1/providers/old")
    finally:
        stop_shared_watchers()
    assert shown.status_code == 200, shown.text
    assert shown.json()["connection_params"]["headers"] == {"X-Api-Key": MASK, "X-Team": "blue"}
    assert value not in shown.text


def test_a_sealed_header_applies_and_dumps_sealed(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream: FakeLLMServer
) -> None:
    from gwconfig.secrets.sealing import generate_keypair, write_public_key_text

    value = "sealed-" + secrets.token_hex(16)
    priv, pub = generate_keypair()
    root = tmp_path / "m"
    root.mkdir()
    (root / "sealing.pub").write_text(write_public_key_text(pub))
    sealed = subprocess.run(
        [sys.executable, "-c", "from gwconfig.cli import main; main()", "seal",
         "--provider", "proxy", "--header", "X-Api-Key", "--public-key", str(root / "sealing.pub")],
        input=value, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert sealed.returncode == 0, sealed.stderr
    blob = sealed.stdout.split('"')[1]
    write(root, provider(upstream.base_url, {"X-Api-Key": {"sealed": blob}}))
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("GWCONFIG_SEALING_KEY", priv.to_text())
    open_database(sqlite_url, upgrade=True).dispose()
    applied = run("apply", str(root), "--database-url", sqlite_url, "--auto-approve")
    assert applied.exit_code == 0, applied.output
    out = tmp_path / "d"
    out.mkdir()
    (out / "sealing.pub").write_text(write_public_key_text(pub))
    dumped = run("dump", "--database-url", sqlite_url, "--out", str(out))
    assert dumped.exit_code == 0, dumped.output
    written = (out / "proxy.yaml").read_text()
    assert "X-Api-Key:\n      sealed: gwseal:v1:" in written
    # the sealed dump opens for the same scope: no changes
    assert run("plan", str(out), "--database-url", sqlite_url).stdout == NO_CHANGES
    # another header name cannot open it
    (root / "proxy.yaml").write_text(
        (root / "proxy.yaml").read_text().replace("X-Api-Key", "X-Key")
    )
    wrong = run("plan", str(root), "--database-url", sqlite_url)
    assert wrong.exit_code == 1
    for text in (sealed.stderr, applied.output, dumped.output, written, wrong.output):
        assert value not in text
