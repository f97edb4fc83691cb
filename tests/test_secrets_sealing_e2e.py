"""Adding an API key end to end (the docs' flow): seal-keygen, seal, validate, plan, apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gwconfig.cli import cli
from gwconfig.secrets import sealing
from reconcile_helpers import read_state_at

CANARY = "sk-CANARY-e2e-0b1d6f5e44c2a7d9"

MANIFEST = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: openai
provider_type: openai
api_keys:
  - name: default
    environment: prod
    {snippet}
models:
  - model_id: gpt-4o
"""


def state_of(url: str) -> tuple[str, int | None]:
    state = read_state_at(url)
    return state.state_hash, state.last_revision


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def flow(isolated_cwd: Path, sqlite_url: str, fernet_key: str, monkeypatch: pytest.MonkeyPatch):
    from gwconfig.db.session import open_database

    open_database(sqlite_url, upgrade=True).dispose()
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("GWCONFIG_DATABASE_URL", sqlite_url)
    keys = isolated_cwd.parent / f"{isolated_cwd.name}-keys"  # outside the work tree
    assert run("seal-keygen", "--out-dir", str(keys)).exit_code == 0
    (isolated_cwd / "providers.d").mkdir()
    (isolated_cwd / "providers.d" / "sealing.pub").write_bytes((keys / "sealing.pub").read_bytes())
    return isolated_cwd, (keys / "sealing.key").read_text(), sqlite_url


def test_add_an_api_key(flow, monkeypatch: pytest.MonkeyPatch) -> None:
    root, private_key, db_url = flow
    db_file = Path(db_url[len("sqlite:///") :])
    outputs: list[Result] = []
    sealed = run("seal", "--provider", "openai", "--name", "default", "--environment", "prod",
                 input=CANARY + "\n")  # fmt: skip
    assert sealed.exit_code == 0
    manifest = root / "providers.d" / "openai.yaml"
    manifest.write_text(MANIFEST.format(snippet=sealed.stdout.strip()))

    # the pull request: validate offline (no private key), then plan needs the key
    outputs.append(valid := run("validate"))
    assert valid.exit_code == 0, valid.output
    outputs.append(no_key := run("plan"))
    assert no_key.exit_code == 1
    assert "providers.d/openai.yaml:8:" in no_key.stderr
    assert "GWCONFIG_SEALING_KEY is not set" in no_key.stderr

    monkeypatch.setenv(sealing.SEALING_KEY_ENV, private_key)
    outputs.append(plan := run("plan", "--format", "json"))
    assert plan.exit_code == 0, plan.output
    assert "openai/key:default@prod" in plan.stdout
    outputs.append(applied := run("apply", "--auto-approve"))
    assert applied.exit_code == 0, applied.output
    outputs.append(again := run("plan", "--detailed-exitcode"))
    assert again.exit_code == 0, again.output

    # a blob moved to another environment: validate catches it offline, at the line
    manifest.write_text(manifest.read_text().replace("environment: prod", "environment: dev"))
    outputs.append(moved := run("validate"))
    assert moved.exit_code == 1
    assert moved.stderr.startswith("providers.d/openai.yaml:8:")  # the column is the front end's
    assert (
        "error: sealed value was sealed for provider openai key "
        "default environment prod, used for provider openai key default environment dev"
    ) in moved.stderr

    # a tampered blob passes the offline check but plan refuses it at the line; nothing written
    blob = sealing.BLOB_PATTERN.search(sealed.stdout).group(0)  # type: ignore[union-attr]
    data = bytearray(sealing._b64d(blob[len(sealing.BLOB_PREFIX) :]))
    data[-1] ^= 0x01
    tampered = sealing.BLOB_PREFIX + sealing._b64e(bytes(data))
    manifest.write_text(MANIFEST.format(snippet=f'value: {{sealed: "{tampered}"}}'))
    before = state_of(db_url)
    assert before[1] == 1
    outputs.append(bad := run("apply", "--auto-approve"))
    assert bad.exit_code == 1
    assert "providers.d/openai.yaml:8:" in bad.stderr and "failed authentication" in bad.stderr
    assert state_of(db_url) == before

    for r in outputs:
        assert CANARY not in r.output
    for f in db_file.parent.glob(db_file.name + "*"):  # the database and any WAL/journal
        assert CANARY.encode() not in f.read_bytes()
    assert CANARY not in manifest.read_text()
