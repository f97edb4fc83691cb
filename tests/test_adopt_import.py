"""``gwconfig import`` and ``verify`` end to end: a back-office built from backoffice_schema.sql and
filled from the real catalogue (plus rows exercising every column), imported, validated, applied
into a gateway database on another engine, planned (no changes) and verified; a back-office edit
then shows as exactly one rewritten file and as a verify difference. Secrets never appear in plain
text in any file or output, and the back-office is unchanged by import and verify."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from backoffice_helpers import build_backoffice, execute
from conftest import make_database, run_gwconfig

ROUND_TRIPS = [
    pytest.param("postgres", "sqlite", marks=[pytest.mark.postgres], id="bo_pg-gw_sqlite"),
    pytest.param(
        "mysql", "postgres", marks=[pytest.mark.mysql, pytest.mark.postgres], id="bo_maria-gw_pg"
    ),
    pytest.param("sqlite", "mysql", marks=[pytest.mark.mysql], id="bo_sqlite-gw_maria"),
]
TABLES = ("providers", "provider_models", "api_keys", "connection_parameters")


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[Any]:
    """``open(kind, name)``: a fresh database URL of ``kind``, dropped after the test."""
    with contextlib.ExitStack() as stack:

        def open_db(kind: str, name: str) -> str:
            where = tmp_path / name
            where.mkdir()
            return stack.enter_context(contextlib.contextmanager(make_database)(kind, where))

        yield open_db


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the back-office, in a stable order."""
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {
            t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))))
            for t in TABLES
        }
    engine.dispose()
    return out


class Session:
    """Runs gwconfig in ``cwd`` with an environment, and keeps every output for the canary."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.outputs: list[str] = []

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        res = run_gwconfig(list(args), cwd=self.cwd, env=self.env, timeout=300)
        self.outputs += [res.stdout, res.stderr]
        assert res.returncode == code, (args, res.stdout[-3000:], res.stderr[-3000:])
        assert "Traceback" not in res.stderr
        return res


def session(tmp_path: Path, gw_url: str, legacy_key: str) -> Session:
    from gwconfig.secrets.keys import generate_key

    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    env.update(
        GWCONFIG_DATABASE_URL=gw_url,
        GWCONFIG_ENCRYPTION_KEY=generate_key(),
        GWCONFIG_LEGACY_KEY=legacy_key,
    )
    work = tmp_path / "repo"
    work.mkdir()
    return Session(work, env)


def assert_no_secret(keys: dict[str, str], s: Session, root: Path) -> None:
    """The canary: no key in any output or any file under ``root``."""
    texts = list(s.outputs)
    texts += [p.read_text("utf-8", "replace") for p in root.rglob("*") if p.is_file()]
    for value in keys.values():
        for t in texts:
            assert value not in t


@pytest.mark.slow
@pytest.mark.parametrize(("bo_kind", "gw_kind"), ROUND_TRIPS)
def test_round_trip_across_engines(
    bo_corpus: ModuleType, databases: Any, tmp_path: Path, bo_kind: str, gw_kind: str
) -> None:
    bo_url, gw_url = databases(bo_kind, "bo"), databases(gw_kind, "gw")
    legacy = Fernet.generate_key().decode()
    keys = build_backoffice(bo_corpus, bo_url, legacy)
    before = snapshot(bo_url)
    s = session(tmp_path, gw_url, legacy)
    s("seal-keygen")
    s.env["GWCONFIG_SEALING_KEY"] = (s.cwd / "sealing.key").read_text().strip()
    (s.cwd / "providers.d").mkdir()
    (s.cwd / "sealing.pub").rename(s.cwd / "providers.d" / "sealing.pub")
    (s.cwd / "sealing.key").unlink()

    res = s("import", "--from-url", bo_url)
    assert "imported 155 providers, 4760 models, 157 API keys (1 expired, kept), 8 parameters" in (
        res.stderr
    )
    assert "155 files written, 0 unchanged, 0 removed in providers.d" in res.stderr
    assert "model_type 'vision-chat' is not in schema v1" in res.stderr
    assert "request_settings.circuit_breaker has no place in schema v1" in res.stderr
    files = sorted(p.name for p in (s.cwd / "providers.d").glob("*.yaml"))
    assert len(files) == 155 and "edge-bo.yaml" in files
    edge = (s.cwd / "providers.d" / "edge-bo.yaml").read_text()
    assert "model_id: meta-llama/Llama-3.1-8B:free" in edge and "org.model@v1.2" in edge
    assert "backoffice_model_type: vision-chat" in edge

    s("validate", "providers.d")
    s("db", "upgrade")
    s("apply", "providers.d", "--auto-approve")
    assert s("plan", "providers.d").stdout.startswith("No changes.")
    res = s("verify", "--against", bo_url)
    assert "parity: the gateway holds everything the back-office holds" in res.stdout
    assert "  edge-bo: 3/3, 3/3, 8/8" in res.stdout
    assert snapshot(bo_url) == before  # import and verify only read the back-office

    # a back-office edit: verify lists it; re-import rewrites exactly that provider's file
    execute(
        bo_url,
        "UPDATE provider_models SET context_window = 4242 WHERE provider_id = 'edge-bo' "
        "AND model_id = :m",
        m="meta-llama/Llama-3.1-8B:free",
    )
    keys["new"] = "sk-rotated-" + secrets.token_hex(16)
    execute(bo_url, "UPDATE api_keys SET key_value = :v WHERE id = 1", v=keys["new"])
    res = s("verify", "--against", bo_url, code=1)
    assert (
        "provider edge-bo: model meta-llama/Llama-3.1-8B:free: context_window: back-office 4242, "
        "gateway 8192" in res.stdout
    )
    first = sorted(keys_pid for keys_pid in keys if "/" not in keys_pid)[0]
    assert f"provider {first}: API key default@production: value differs (values not shown)" in (
        res.stdout
    )
    old = {p.name: p.read_bytes() for p in (s.cwd / "providers.d").glob("*.yaml")}
    res = s("import", "--from-url", bo_url)
    assert "2 files written, 153 unchanged, 0 removed" in res.stderr
    new = {p.name: p.read_bytes() for p in (s.cwd / "providers.d").glob("*.yaml")}
    changed = sorted(n for n in new if new[n] != old[n])
    assert changed == sorted(["edge-bo.yaml", f"{first}.yaml"])
    old_lines, new_lines = old["edge-bo.yaml"].splitlines(), new["edge-bo.yaml"].splitlines()
    assert [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b] == [
        (b"    context_window: 8192", b"    context_window: 4242")
    ]
    res = s("import", "--from-url", bo_url)
    assert "0 files written, 155 unchanged" in res.stderr  # a no-op re-import writes nothing
    assert_no_secret(keys, s, s.cwd)


def test_env_references_canary_and_parity(
    bo_corpus: ModuleType, databases: Any, tmp_path: Path
) -> None:
    from gwconfig.adopt.writer import env_name
    from gwconfig.entities import SecretScope

    bo_url, gw_url = databases("sqlite", "bo"), databases("sqlite", "gw")
    legacy = Fernet.generate_key().decode()
    keys = build_backoffice(bo_corpus, bo_url, legacy)
    s = session(tmp_path, gw_url, legacy)
    res = s("import", "--from-url", bo_url, "--secrets", "env")
    names = [line.split("\t")[0] for line in res.stdout.splitlines()]
    assert len(names) == 158  # 157 keys and one sensitive parameter, named, never valued
    assert "GW_EDGE_BO_KEY_KEY_2_PRODUCTION" in names
    assert "GW_EDGE_BO_PARAM_ORG_SECRET_PRODUCTION" in names
    assert_no_secret(keys, s, s.cwd)
    # the names are a function of the scope: set them, then apply, plan and verify
    values = {
        env_name(SecretScope(pid, "key", "default", "production")): keys[pid]
        for pid in keys
        if "/" not in pid
    }
    values[env_name(SecretScope("edge-bo", "key", "default", "production"))] = keys[
        "edge-bo/default"
    ]
    values[env_name(SecretScope("edge-bo", "key", "key-2", "production"))] = keys["edge-bo/key-2"]
    values[env_name(SecretScope("edge-bo", "key", "default", "staging"))] = keys["edge-bo/expired"]
    values[env_name(SecretScope("edge-bo", "param", "org_secret", "production"))] = keys[
        "edge-bo/param"
    ]
    assert sorted(values) == sorted(names)
    s.env.update(values)
    s("db", "upgrade")
    s("apply", "providers.d", "--auto-approve")
    assert s("plan", "providers.d").stdout.startswith("No changes.")
    res = s("verify", "--against", bo_url, "--format", "json")
    assert '"parity": true' in res.stdout
    # routes are the team's: a hand-written gateway.yaml survives a re-import, while a provider
    # gone from the back-office has its file removed
    gateway = "apiVersion: gwconfig/v1\nkind: Gateway\nroutes:\n  - name: r\n    targets:\n"
    gateway += "      - model: edge-bo/meta-llama/Llama-3.1-8B:free\n"
    (s.cwd / "providers.d" / "gateway.yaml").write_text(gateway)
    gone = sorted(pid for pid in keys if "/" not in pid)[0]
    for table in ("provider_models", "api_keys", "connection_parameters", "providers"):
        execute(bo_url, f"DELETE FROM {table} WHERE provider_id = :p", p=gone)
    res = s("import", "--from-url", bo_url, "--secrets", "env", code=1)
    assert f"providers.d/{gone}.yaml (removed)" in res.stderr
    assert "nothing was written" in res.stderr and "--force" in res.stderr
    assert (s.cwd / "providers.d" / f"{gone}.yaml").exists()
    res = s("import", "--from-url", bo_url, "--secrets", "env", "--force")
    assert "0 files written, 154 unchanged, 1 removed" in res.stderr
    assert not (s.cwd / "providers.d" / f"{gone}.yaml").exists()
    assert (s.cwd / "providers.d" / "gateway.yaml").read_text() == gateway
    res = s("verify", "--against", bo_url, code=1)
    assert f"provider {gone}: only in the gateway" in res.stdout
    for value in values.values():
        for o in s.outputs:
            assert value not in o
