"""``gwconfig tokens`` and ``gwconfig serve`` as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from builders import gateway_doc, provider_doc, write_manifests
from conftest import REPO, run_gwconfig
from gwconfig.cli import cli
from gwconfig.cli.serving import serve_cmd
from gwconfig.db.session import open_database
from gwconfig.errors import ConfigurationError
from gwconfig.server.state import ServeSettings
from reconcile_helpers import yes
from serve_helpers import free_port

TOKEN_LINE = re.compile(r"gwc_[A-Za-z0-9_-]{43}\n")


@pytest.fixture
def url(sqlite_url: str) -> str:
    """An upgraded SQLite database."""
    open_database(sqlite_url, upgrade=True).dispose()
    return sqlite_url


def test_create_prints_the_token_alone_and_list_never_shows_it(url: str) -> None:
    created = run_gwconfig(
        [
            "tokens",
            "create",
            "ci",
            "--scope",
            "runtime",
            "--expires-in",
            "30d",
            "--database-url",
            url,
        ]
    )
    assert created.returncode == 0, created.stderr
    assert TOKEN_LINE.fullmatch(created.stdout), created.stdout
    token = created.stdout.strip()
    assert "not shown again" in created.stderr and token not in created.stderr

    listed = run_gwconfig(["tokens", "list", "--database-url", url])
    assert listed.returncode == 0 and "ci" in listed.stdout and "runtime" in listed.stdout
    as_json = run_gwconfig(["tokens", "list", "--format", "json", "--database-url", url])
    [entry] = json.loads(as_json.stdout)
    assert entry["name"] == "ci" and entry["status"] == "active" and entry["expires_at"]
    body = token.removeprefix("gwc_")
    for out in (listed, as_json):
        assert body not in out.stdout + out.stderr and body[:12] not in out.stdout

    revoked = run_gwconfig(["tokens", "revoke", "ci", "--database-url", url])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    listed = run_gwconfig(["tokens", "list", "--database-url", url])
    assert "revoked" in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tokens", "revoke", "nope"], "no token named 'nope'"),
        (["tokens", "create", "bad name", "--scope", "read"], "invalid token name"),
        (["tokens", "create", "x", "--scope", "read", "--expires-in", "5y"], "invalid duration"),
        (["tokens", "create", "x", "--scope", "root"], "Invalid value for '--scope'"),
    ],
)
def test_token_errors_are_messages(url: str, args: list[str], message: str) -> None:
    result = run_gwconfig([*args, "--database-url", url])
    assert result.returncode != 0 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_a_database_not_at_head_with_the_cli_message(
    tmp_path: Path, workers: str
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    port = str(free_port())
    served = run_gwconfig(["serve", "--port", port, "--workers", workers, "--database-url", url])
    other = run_gwconfig(["tokens", "list", "--database-url", url])
    assert served.returncode == 1 and other.returncode == 1
    assert "has no gwconfig schema" in served.stderr
    assert "gwconfig db upgrade" in served.stderr
    assert served.stderr == other.stderr


def guide_options() -> dict[str, str]:
    """Option -> default of the options table in docs/serving.md ("Running the server")."""
    text = (REPO / "docs" / "serving.md").read_text()
    section = text.split("## Running the server", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(--[a-z-]+)[^`]*` \| ([^|]+) \|", section, re.MULTILINE)
    return {name: default.strip().strip("`") for name, default in rows}


def test_serve_help_and_the_guide_list_the_same_options_and_defaults() -> None:
    shown = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    in_help = set(re.findall(r"^  (--[a-z-]+)", shown.output, re.MULTILINE)) - {"--help"}
    table = guide_options()
    assert set(table) == in_help
    context = click.Context(serve_cmd)
    for param in serve_cmd.params:
        assert isinstance(param, click.Option)
        if param.name == "database_url":  # "as every command"
            continue
        default = param.get_default(context)
        if default is None or not isinstance(default, str | int | float | bool):
            expected = "none"  # no default (click's "unset")
        elif isinstance(default, bool):
            expected = "on" if default else "off"
        elif isinstance(default, float):
            expected = f"{default:g}"
        else:
            expected = str(default)
        assert table[max(param.opts, key=len)] == expected, param.opts


@pytest.mark.parametrize(
    ("option", "value"),
    [("--header-timeout", "0"), ("--header-timeout", "601"), ("--max-connections", "0")],
)
def test_listener_options_out_of_range_are_refused(option: str, value: str) -> None:
    shown = CliRunner().invoke(cli, ["serve", option, value])
    assert shown.exit_code == 2 and option in shown.output and "Traceback" not in shown.output


@pytest.mark.parametrize(
    "fields", [{"header_timeout_seconds": 0}, {"max_connections": 0}, {"max_connections": 10**6}]
)
def test_listener_settings_out_of_range_are_configuration_errors(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ServeSettings(**fields)


@pytest.mark.parametrize("missing", ["fastapi", "uvicorn", "prometheus_client"])
def test_serve_without_the_server_extra_names_the_extra(tmp_path: Path, missing: str) -> None:
    shim = tmp_path / "shim" / missing
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        f"raise ModuleNotFoundError({f'No module named {missing!r}'!r}, name={missing!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), *sys.path])}
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    served = run_gwconfig(["serve", "--port", str(free_port()), "--database-url", url], env=env)
    assert served.returncode == 2, served.stderr
    assert "internal error" not in served.stderr and "Traceback" not in served.stderr
    assert (
        "gwconfig serve needs the 'server' extra: pip install 'gwconfig[server]'" in served.stderr
    )
    assert missing in served.stderr
    # the commands that do not serve still work without it
    assert run_gwconfig(["validate", "--help"], env=env).returncode == 0


def start_serve(*args: str) -> subprocess.Popen[str]:
    """``gwconfig serve *args`` in a subprocess (no GWCONFIG_SERVE_* variables of this one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_SERVE_")}
    return subprocess.Popen(
        [sys.executable, "-c", "from gwconfig.cli import main; main()", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _workers(pid: int) -> list[int]:
    """The worker processes of server ``pid`` (not multiprocessing's resource tracker)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(p) for p in path.read_text().split()] if path.exists() else []
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(child)
    return found


@pytest.mark.slow
def test_serve_with_two_workers_answers_and_stops_cleanly(url: str) -> None:
    token = run_gwconfig(["tokens", "create", "ci", "--scope", "read", "--database-url", url])
    port = free_port()
    proc = start_serve("--port", str(port), "--workers", "2", "--database-url", url)
    base = f"http://127.0.0.1:{port}"
    try:
        # polled with a bound: the server process tells nothing else when it is ready
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _workers(proc.pid)
            try:
                if len(workers) >= 2 and httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        assert len(workers) == 2
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        with httpx.Client(base_url=base, headers=headers) as client:
            for _ in range(20):
                assert client.get("/api/v1/whoami").json()["name"] == "ci"
            assert client.get("/readyz").json()["status"] == "ready"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "2 workers" in err and "Traceback" not in err
    assert token.stdout.strip()[4:] not in err
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def _request_read_by_server(port: int, client_port: int) -> bool:
    """True once the server has read everything the client sent on that connection (its
    receive queue in ``/proc/net/tcp`` is empty): uvicorn has started the request then."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if local.endswith(f":{port:04X}") and remote.endswith(f":{client_port:04X}"):
            return int(queues.split(":")[1], 16) == 0
    return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_sigterm_does_not_wait_for_a_held_long_poll(
    url: str, tmp_path: Path, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``?wait=60`` long-poll is cancelled after ``--graceful-timeout`` seconds, not 60."""
    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions

    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("GWT_API_KEY", "sk-" + os.urandom(8).hex())
    monkeypatch.setenv("GWT_PROJECT", "proj-1")
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    root = write_manifests(tmp_path / "m", provider_doc(), gateway_doc())
    commands.apply(str(root), url, PlanOptions(), review=yes)
    token = run_gwconfig(["tokens", "create", "rt", "--scope", "runtime", "--database-url", url])
    bearer = {"Authorization": f"Bearer {token.stdout.strip()}"}
    port = free_port()
    proc = start_serve("--port", str(port), "--graceful-timeout", "1", "--database-url", url)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a safety net: the process tells nothing when ready
        etag = None
        while etag is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                etag = httpx.get(f"{base}/api/v1/config", headers=bearer).headers["etag"]
            except httpx.TransportError:
                time.sleep(0.1)
        assert etag is not None, proc.communicate(timeout=60)[1]
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            poll = (
                f"GET /api/v1/config?wait=60 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: {bearer['Authorization']}\r\nIf-None-Match: {etag}\r\n\r\n"
            )
            sock.sendall(poll.encode())
            client_port = sock.getsockname()[1]
            while not _request_read_by_server(port, client_port):
                assert time.monotonic() < deadline, "the long-poll never reached the server"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            # bounded below the poll's 60 seconds: a shutdown waiting for it fails here
            _out, err = proc.communicate(timeout=45)
            answer = sock.recv(4096)  # the connection is closed: no 304 comes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # uvicorn re-raises the SIGTERM it handled once it has shut down
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "timeout graceful shutdown exceeded" in err and b" 304 " not in answer
    assert "cancelled at shutdown" in err and "Traceback" not in err
    assert token.stdout.strip()[4:] not in err
