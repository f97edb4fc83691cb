"""``gwconfig dump``: database -> manifests -> validate -> apply to an empty database -> no changes.

On SQLite, PostgreSQL and MariaDB; secrets sealed and as env references; a canary secret never
appears in any written file or output.
"""

from __future__ import annotations

import os
import secrets as random_secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from conftest import ENGINE_PARAMS, REPO, make_database, run_gwconfig
from gwconfig.cli import cli
from gwconfig.secrets.sealing import generate_keypair, write_public_key_text

NO_CHANGES = "No changes. The database matches the manifests.\n"


def run(*args: str) -> Any:
    """The CLI in-process; stdout and stderr kept apart."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(params=ENGINE_PARAMS)
def two_dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh databases on the same engine: the one dumped and an empty one."""
    gens = []
    urls = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        gen = make_database(request.param, tmp_path / name)
        gens.append(gen)
        urls.append(next(gen))
    yield urls[0], urls[1]
    for gen in gens:
        for _ in gen:
            pass


def tricky_provider() -> dict[str, Any]:
    """Values YAML likes to misread, real model ids with / : . @, every optional field."""
    return {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "gateway",  # the file name gateway.yaml is the Gateway document's
        "provider_type": "openai",
        "display_name": "yes",
        "description": "Line one: two\nline # three ",
        "enabled": False,
        "tags": ["on", "b.c"],
        "connection": {
            "api_base": "https://x.example/v1",
            "api_version": "2024-10-21",
            "headers": {"X-Date": "2023-06-01", "x-null": "null", "true": "0755"},
            "parameters": [
                {"name": "region", "value": "no"},
                {"name": "n", "value": 12, "environment": "prod"},
                {"name": "f", "value": 1.0},
                {"name": "s", "value": {"env": "GWT_PARAM"}, "sensitive": True},
            ],
        },
        "request_settings": {"timeout_seconds": 7.5, "retry_on_status": [429], "jitter": False},
        "api_keys": [
            {"name": "default", "value": {"env": "GWT_KEY"}, "expires_at": "2031-01-31T00:00:00Z"},
            {"name": "backup", "environment": "prod", "value": {"env": "GWT_KEY2"}},
        ],
        "models": [
            {"model_id": "@cf/meta/llama-3:8b", "display_name": "@cf/meta/llama-3:8b"},
            {"model_id": "ft:gpt-4o:org:id", "model_type": "embedding", "enabled": False},
            {"model_id": "a: b", "aliases": ["null", "x/y"], "capabilities": ["on", "vision"]},
            {
                "model_id": "us.anthropic.claude-3@v2",
                "parameters": {"date": "2023-06-01", "n": [1, 2.5, None, True, {"k": "~"}]},
                "pricing": {"currency": "EUR", "input_per_1m": 0.0},
            },
        ],
    }  # fmt: skip


def manifests(root: Path, canary: str) -> dict[str, str]:
    """The example manifests (secrets from the environment) plus a tricky provider; their env."""
    shutil.copytree(REPO / "providers.d", root)
    openai = root / "openai.yaml"
    openai.write_text(
        openai.read_text().replace("{file: /run/secrets/openai_api_key}", "{env: GWT_PROD}")
    )
    (root / "zz-tricky.yaml").write_text(yaml.safe_dump(tricky_provider(), sort_keys=False))
    names = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_PROJECT_ID"]
    names += ["VLLM_API_KEY", "GWT_PROD", "GWT_PARAM", "GWT_KEY", "GWT_KEY2"]
    env = {name: f"{name.lower()}-{random_secrets.token_hex(8)}" for name in names}
    env["GWT_KEY"] = canary
    return env


def everything(out: Path, *results: Any) -> str:
    """Every byte dumped and printed, as text, to scan for the canary."""
    text = "".join(r.stdout + r.stderr for r in results)
    return text + "".join(p.read_text() for p in sorted(out.rglob("*")) if p.is_file())


@pytest.fixture
def setup(
    two_dbs: tuple[str, str], tmp_path: Path, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str, str]:
    """Database A holds the example manifests; database B is empty; returns (A, B, canary)."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.chdir(tmp_path)
    canary = "canary-" + random_secrets.token_hex(16)
    for name, value in manifests(tmp_path / "src", canary).items():
        monkeypatch.setenv(name, value)
    a, b = two_dbs
    for url in (a, b):
        assert run("db", "upgrade", "--database-url", url).exit_code == 0
    res = run("apply", str(tmp_path / "src"), "--database-url", a, "--auto-approve")
    assert res.exit_code == 0, res.output
    assert run("plan", str(tmp_path / "src"), "--database-url", a).stdout == NO_CHANGES
    return a, b, canary


def test_dump_sealed_round_trip(
    setup: tuple[str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, canary = setup
    priv, pub = generate_keypair()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sealing.pub").write_text(write_public_key_text(pub))
    res = run("dump", "--database-url", a, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "dumped 6 providers, 14 models, 7 API keys, 6 parameters, 5 routes, 2 consumers" in (
        res.stderr
    )
    assert "8 files written, 0 unchanged, 0 removed" in res.stderr
    assert canary not in everything(out, res)
    assert run("validate", str(out)).exit_code == 0
    # the dump describes database A exactly: no changes, secrets included (by fingerprint)
    monkeypatch.setenv("GWCONFIG_SEALING_KEY", priv.to_text())
    res2 = run("plan", str(out), "--database-url", a)
    assert res2.stdout == NO_CHANGES, res2.output
    # applied to an empty database, then planned: no changes
    res3 = run("apply", str(out), "--database-url", b, "--auto-approve")
    assert res3.exit_code == 0, res3.output
    assert run("plan", str(out), "--database-url", b).stdout == NO_CHANGES
    # dumping B gives the same bytes: nothing rewritten
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res4 = run("dump", "--database-url", b, "--out", str(out))
    assert "0 files written, 8 unchanged, 0 removed" in res4.stderr, res4.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert canary not in everything(out, res2, res3, res4)


def test_dump_env_references(
    setup: tuple[str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, canary = setup
    monkeypatch.delenv("GWCONFIG_ENCRYPTION_KEY")  # env references need no key
    out = tmp_path / "out"
    res = run("dump", "--database-url", a, "--out", str(out), "--secrets", "env")
    assert res.exit_code == 0, res.output
    names = [line.split("\t")[0] for line in res.stdout.splitlines()]
    assert "GW_GATEWAY_KEY_DEFAULT" in names and "GW_GATEWAY_PARAM_S" in names
    assert len(names) == 7 + 2  # keys, sensitive parameters
    assert canary not in everything(out, res)
    tricky = (out / "gateway-provider.yaml").read_text()
    assert 'tags: [b.c, "on"]\n' in tricky and 'model_id: "@cf/meta/llama-3:8b"\n' in tricky
    assert "value: {env: GW_GATEWAY_KEY_DEFAULT}" in tricky
    assert run("validate", str(out)).exit_code == 0


def test_dump_selection_and_bad_input(
    setup: tuple[str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, _ = setup
    out = tmp_path / "out"
    res = run(
        "dump", "--database-url", a, "--out", str(out), "--target", "nope", "--secrets", "env"
    )
    assert res.exit_code == 1 and "--target nope: no provider has this id" in res.stderr
    res = run("dump", "--database-url", a, "--out", str(out))
    assert res.exit_code == 1 and "--seal-to" in res.stderr
    (tmp_path / "bad.pub").write_text("not a key\n")
    res = run(
        "dump", "--database-url", a, "--out", str(out), "--seal-to", str(tmp_path / "bad.pub")
    )
    assert res.exit_code == 1 and "not a gwconfig sealing public key" in res.stderr
    res = run("dump", "--database-url", a, "--out", str(out), "--seal-to", str(tmp_path / "no"))
    assert res.exit_code == 1 and "cannot read public key" in res.stderr
    assert not out.exists()
    # a selection writes its providers only: no gateway.yaml, nothing else removed
    out.mkdir()
    (out / "keep.yaml").write_text("apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: k\n")
    res = run("dump", "--database-url", a, "--out", str(out), "--secrets", "env",
              "--target", "openai", "--select-tag", "eu")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [
        "azure-openai-eu.yaml",
        "keep.yaml",
        "openai.yaml",
    ]
    assert "dumped 2 providers" in res.stderr


def test_dump_of_a_database_not_upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    res = run("dump", "--database-url", url, "--out", "out", "--secrets", "env")
    assert res.exit_code == 1 and "gwconfig db upgrade" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_catalogue_database_dumps_to_manifests_that_plan_clean(
    corpus: Any, tmp_path: Path, sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real catalogue (~4,800 models, ids with / : . @) through a database and back."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.chdir(tmp_path)
    env = corpus.corpus_env(1)  # random values, made once
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    src = corpus.write_corpus(tmp_path / "src", scale=1)
    assert run("db", "upgrade", "--database-url", sqlite_url).exit_code == 0
    assert run("apply", str(src), "--database-url", sqlite_url, "--auto-approve").exit_code == 0
    priv, pub = generate_keypair()
    (tmp_path / "key.pub").write_text(write_public_key_text(pub))
    out = tmp_path / "out"
    res = run("dump", "--database-url", sqlite_url, "--out", str(out),
              "--seal-to", str(tmp_path / "key.pub"))  # fmt: skip
    assert res.exit_code == 0, res.output
    shutil.copy(tmp_path / "key.pub", out / "sealing.pub")
    assert run("validate", str(out)).exit_code == 0
    monkeypatch.setenv("GWCONFIG_SEALING_KEY", priv.to_text())
    assert run("plan", str(out), "--database-url", sqlite_url).stdout == NO_CHANGES
    texts = [p.read_text() for p in out.glob("*.yaml")]
    assert any("model_id: " in t and "@" in t for t in texts)
    assert all(v not in "".join(texts) for v in env.values())


def test_dump_from_sqlite_applies_on_other_engines(
    tmp_path: Path,
    pg_url: str,
    mysql_url: str,
    fernet_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dumped from SQLite, applied to PostgreSQL and MariaDB: no changes on either."""
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.chdir(tmp_path)
    for name, value in manifests(tmp_path / "src", "c-" + random_secrets.token_hex(8)).items():
        monkeypatch.setenv(name, value)
    source = f"sqlite:///{tmp_path / 'a.db'}"
    assert run("db", "upgrade", "--database-url", source).exit_code == 0
    assert run("apply", "src", "--database-url", source, "--auto-approve").exit_code == 0
    res = run("dump", "--database-url", source, "--out", "out", "--secrets", "env")
    assert res.exit_code == 0, res.output
    for line in res.stdout.splitlines():  # give each referenced variable its stored value
        name, scope = line.split("\t# ")
        words = scope.split()  # provider P key|parameter N environment E
        original = {
            ("openai", "key", "default", "default"): "OPENAI_API_KEY",
            ("openai", "key", "default", "prod"): "GWT_PROD",
            ("openai", "parameter", "project", "default"): "OPENAI_PROJECT_ID",
            ("anthropic", "key", "default", "default"): "ANTHROPIC_API_KEY",
            ("azure-openai-eu", "key", "default", "default"): "AZURE_OPENAI_API_KEY",
            ("vllm", "key", "default", "default"): "VLLM_API_KEY",
            ("gateway", "parameter", "s", "default"): "GWT_PARAM",
            ("gateway", "key", "default", "default"): "GWT_KEY",
            ("gateway", "key", "backup", "prod"): "GWT_KEY2",
        }[(words[1], words[2], words[3], words[5])]
        monkeypatch.setenv(name, os.environ[original])
    assert run("plan", "out", "--database-url", source).stdout == NO_CHANGES
    for url in (pg_url, mysql_url):
        assert run("db", "upgrade", "--database-url", url).exit_code == 0
        res = run("apply", "out", "--database-url", url, "--auto-approve")
        assert res.exit_code == 0, res.output
        assert run("plan", "out", "--database-url", url).stdout == NO_CHANGES


def test_dump_of_an_empty_database_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert run("db", "upgrade", "--database-url", url).exit_code == 0
    out = tmp_path / "out"
    shutil.copytree(REPO / "providers.d", out)
    before = sorted(p.name for p in out.iterdir())
    res = run("dump", "--database-url", url, "--out", str(out), "--secrets", "env")
    assert res.exit_code == 1 and "is empty (no providers, no routes)" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == before


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_dump_over_a_tree_it_would_cut_needs_force(tmp_path: Path, fernet_key: str) -> None:
    """The migration guide's commands, run in a repository: a dump of the ``local`` selection
    would remove four manifests (the consumers' too: a selection leaves them out) and four
    routes; without --force it lists them and writes nothing, with --force it writes."""
    shutil.copytree(REPO / "providers.d", tmp_path / "providers.d")
    env = {**os.environ, "GWCONFIG_DATABASE_URL": f"sqlite:///{tmp_path / 'gw.db'}"}
    env["GWCONFIG_ENCRYPTION_KEY"] = fernet_key
    assert run_gwconfig(["db", "upgrade"], cwd=tmp_path, env=env).returncode == 0
    applied = run_gwconfig(
        ["apply", "--auto-approve", "--select-tag", "local"], cwd=tmp_path, env=env
    )
    assert applied.returncode == 0, applied.stderr
    before = _tree(tmp_path / "providers.d")
    res = run_gwconfig(["dump", "--secrets", "env"], cwd=tmp_path, env=env)
    assert res.returncode == 1, res.stderr
    assert "internal error" not in res.stderr
    for name in ("anthropic.yaml", "azure-openai.yaml", "consumers.yaml", "openai.yaml"):
        assert f"providers.d/{name} (removed)" in res.stderr
    assert (
        "providers.d/gateway.yaml: loses route chat, route chat-anthropic, route chat-cheap, "
        "route internal" in res.stderr
    )
    assert "nothing was written" in res.stderr and "--force" in res.stderr
    assert _tree(tmp_path / "providers.d") == before
    # the same dump into a new directory loses nothing: no question asked
    fresh = run_gwconfig(["dump", "--secrets", "env", "--out", "adopted"], cwd=tmp_path, env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert "would lose" not in fresh.stderr
    # dumped again over its own output: nothing lost, no --force needed
    again = run_gwconfig(["dump", "--secrets", "env", "--out", "adopted"], cwd=tmp_path, env=env)
    assert again.returncode == 0 and "0 files written" in again.stderr, again.stderr
    forced = run_gwconfig(["dump", "--secrets", "env", "--force"], cwd=tmp_path, env=env)
    assert forced.returncode == 0, forced.stderr
    assert "providers.d/openai.yaml (removed)" in forced.stderr
    assert "4 removed in providers.d" in forced.stderr
    assert not (tmp_path / "providers.d" / "openai.yaml").exists()
