"""``gwconfig seal-keygen``, ``seal`` and ``reseal`` through CliRunner and a real subprocess."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from gwconfig.cli import cli
from gwconfig.secrets import sealing

CANARY = "sk-CANARY-d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture
def repo(isolated_cwd: Path) -> Path:
    """A git work tree with providers.d/sealing.pub and the private key in GWCONFIG_SEALING_KEY."""
    (isolated_cwd / ".git").mkdir()
    return isolated_cwd


def run(*args: str, input: str | bytes | None = None, env: dict | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


def _keygen(repo: Path, monkeypatch: pytest.MonkeyPatch) -> sealing.PublicKey:
    result = run("seal-keygen", "--out-dir", "secrets")
    assert result.exit_code == 0, result.output
    (repo / "providers.d").mkdir(exist_ok=True)
    (repo / "providers.d" / "sealing.pub").write_bytes((repo / "secrets/sealing.pub").read_bytes())
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, (repo / "secrets/sealing.key").read_text())
    return sealing.load_public_key(repo / "providers.d" / "sealing.pub")


def test_keygen_writes_pair_and_warns_in_git_tree(repo: Path) -> None:
    result = run("seal-keygen", "--out-dir", "ci-keys")
    assert result.exit_code == 0
    key_file = repo / "ci-keys" / "sealing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = sealing.load_public_key(repo / "ci-keys" / "sealing.pub")
    assert f"key id {public.key_id}" in result.stdout
    assert "warning:" in result.stderr and "inside the git work tree" in result.stderr
    assert key_file.read_text() not in result.output  # the private key is never printed
    assert list(sealing._parse_private_keys(key_file.read_text())) == [public.key_id]

    again = run("seal-keygen", "--out-dir", "ci-keys")
    assert again.exit_code == 1
    assert "already exists" in again.stderr and "--force" in again.stderr


def test_keygen_outside_git_tree_does_not_warn(isolated_cwd: Path) -> None:
    result = run("seal-keygen", "--out-dir", str(isolated_cwd / "k"), "--name", "prod")
    assert result.exit_code == 0
    assert "warning" not in result.stderr
    assert (isolated_cwd / "k" / "prod.pub").is_file()


def test_seal_prints_snippet_that_opens(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = _keygen(repo, monkeypatch)
    result = run(
        "seal", "--provider", "openai", "--name", "default", "--environment", "production",
        input=CANARY + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('value: {sealed: "gwseal:v1:')
    assert result.stdout.count("\n") == 1
    blob = yaml.safe_load(result.stdout)["value"]["sealed"]
    assert sealing.unseal(blob, ("openai", "default", "production")) == CANARY  # newline stripped
    assert f"key id {public.key_id}" in result.stderr
    assert CANARY not in result.output


def test_seal_param_and_explicit_key(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _keygen(repo, monkeypatch)
    result = run(
        "seal", "--provider", "azure", "--param", "client_secret",
        "--public-key", "secrets/sealing.pub", input=CANARY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    blob = yaml.safe_load(result.stdout)["value"]["sealed"]
    assert sealing.unseal(blob, ("azure", "param:client_secret", "default")) == CANARY
    assert "parameter client_secret" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["--provider", "openai"], "x", 2, "exactly one of --name"),
        (["--provider", "openai", "--name", "a", "--param", "b"], "x", 2, "exactly one of --name"),
        (["--provider", "Open AI", "--name", "a"], "x", 2, "not a valid provider id"),
        (["--provider", "openai", "--name", "a", "--environment", "PROD"], "x", 2, "environment"),
        (["--provider", "openai", "--name", "a"], "", 1, "standard input was empty"),
        (["--provider", "openai", "--name", "a"], "\n", 1, "standard input was empty"),
    ],
)
def test_seal_errors(
    repo: Path, monkeypatch: pytest.MonkeyPatch, args: list, stdin: str, code: int, message: str
) -> None:
    _keygen(repo, monkeypatch)
    result = run("seal", *args, input=stdin)
    assert result.exit_code == code
    assert message in result.stderr
    assert result.stdout == ""


def test_seal_uses_the_schema_patterns() -> None:
    from gwconfig.cli import sealing as cli_sealing
    from gwconfig.manifests.model import SLUG_PATTERN, ConnectionParameterSpec

    assert cli_sealing.SLUG_PATTERN == SLUG_PATTERN
    name_field = ConnectionParameterSpec.model_json_schema()["properties"]["name"]
    assert name_field["pattern"] == cli_sealing.PARAM_PATTERN


def test_seal_without_public_key(isolated_cwd: Path) -> None:
    result = run("seal", "--provider", "openai", "--name", "a", input=CANARY)
    assert result.exit_code == 1
    assert "no sealing public key found" in result.stderr
    assert "seal-keygen" in result.stderr
    assert CANARY not in result.output


MANIFEST = """\
# keep this comment
apiVersion: gwconfig/v1
kind: Provider
provider_id: openai
provider_type: openai
api_keys:
  - name: default
    environment: production
    {snippet}
"""


def test_reseal_rotation_end_to_end(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = _keygen(repo, monkeypatch)
    sealed = run("seal", "--provider", "openai", "--name", "default", "--environment",
                 "production", input=CANARY)  # fmt: skip
    manifest = repo / "providers.d" / "openai.yaml"
    manifest.write_text(MANIFEST.format(snippet=sealed.stdout.strip()))
    before = manifest.read_bytes()
    values = repo / "environments" / "prod.yaml"
    values.parent.mkdir()
    scope = ("openai", "k", "prod")
    values.write_text(f"# values\nkey: {sealing.seal('v', scope, public)}\n")
    hidden = repo / "providers.d" / ".cache" / "old.yaml"
    hidden.parent.mkdir()
    hidden.write_text(values.read_text())

    new = run("seal-keygen", "--out-dir", "new", "--name", "next")
    assert new.exit_code == 0
    dry = run("reseal", "--public-key", "new/next.pub", "--dry-run")
    assert dry.exit_code == 0 and "would re-seal 2 values in 2 files" in dry.stdout
    assert manifest.read_bytes() == before

    result = run("reseal", "--public-key", "new/next.pub")
    assert result.exit_code == 0, result.output
    assert "re-sealed 2 values in 2 files" in result.stdout
    assert "environments/prod.yaml" in result.stdout
    assert hidden.read_text() != values.read_text()  # hidden directories are left alone
    after = manifest.read_bytes()
    assert after != before
    assert sealing.BLOB_PATTERN.split(after.decode()) == sealing.BLOB_PATTERN.split(before.decode())

    # during the rotation CI holds both keys; afterwards only the new one is needed
    old_key = os.environ[sealing.SEALING_KEY_ENV]
    new_key = (repo / "new" / "next.key").read_text()
    blob = yaml.safe_load(after)["api_keys"][0]["value"]["sealed"]
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, f"{new_key.strip()},{old_key.strip()}")
    assert sealing.unseal(blob, ("openai", "default", "production")) == CANARY
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, new_key)
    assert sealing.unseal(blob, ("openai", "default", "production")) == CANARY

    # a second reseal to the same key changes nothing
    again = run("reseal", "--public-key", "new/next.pub", "providers.d", "environments")
    assert again.exit_code == 0 and "2 already sealed to the new key" in again.stdout
    assert manifest.read_bytes() == after
    for r in (sealed, new, dry, result, again):
        assert CANARY not in r.output


def test_reseal_error_is_located_and_writes_nothing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = _keygen(repo, monkeypatch)
    blob = sealing.seal(CANARY, ("openai", "default", "production"), public)
    data = bytearray(sealing._b64d(blob[len(sealing.BLOB_PREFIX) :]))
    data[-3] ^= 0x10
    tampered = sealing.BLOB_PREFIX + sealing._b64e(bytes(data))
    manifest = repo / "providers.d" / "openai.yaml"
    manifest.write_text(MANIFEST.format(snippet=f'value: {{sealed: "{tampered}"}}'))
    before = manifest.read_bytes()
    (repo / "next.pub").write_text(sealing.generate_keypair()[1].to_text())
    result = run("reseal", "--public-key", "next.pub")
    assert result.exit_code == 1
    assert "providers.d/openai.yaml:9:22: error: sealed value for provider openai key default" in (
        result.stderr
    )
    assert "failed authentication" in result.stderr
    assert manifest.read_bytes() == before
    assert CANARY not in result.output


def test_subprocess_exit_codes_and_no_plaintext(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _keygen(repo, monkeypatch)
    exe = [sys.executable, "-c", "from gwconfig.cli import main; main()"]
    ok = subprocess.run(
        [*exe, "seal", "--provider", "openai", "--name", "default"],
        input=CANARY.encode(), capture_output=True, cwd=repo, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert CANARY.encode() not in ok.stdout + ok.stderr
    blob = yaml.safe_load(ok.stdout)["value"]["sealed"]

    env = {k: v for k, v in os.environ.items() if k != sealing.SEALING_KEY_ENV}
    (repo / "providers.d" / "x.yaml").write_text(f"value: {{sealed: {blob}}}\n")
    _, other = sealing.generate_keypair()
    (repo / "other.pub").write_text(other.to_text())
    failed = subprocess.run(
        [*exe, "reseal", "--public-key", "other.pub"],
        capture_output=True, cwd=repo, env=env, check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert b"GWCONFIG_SEALING_KEY is not set" in failed.stderr
    assert b"Traceback" not in failed.stderr
    assert CANARY.encode() not in failed.stdout + failed.stderr
