"""Offline checks and checks with the private key; reseal and key files (sealing_files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gwconfig.errors import ManifestError, SealingError
from gwconfig.manifests.compile import SourceRef, build_config
from gwconfig.manifests.model import ProviderManifest
from gwconfig.secrets import sealed_files as sealing_files
from gwconfig.secrets import sealing
from gwconfig.secrets.resolve import resolve_secret

SECRET = "sk-canary-files-7f3a9c"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> tuple[sealing.PrivateKey, sealing.PublicKey]:
    private, public = sealing.generate_keypair()
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, private.to_text())
    return private, public


def _config(key_blob: str, param_blob: str | None = None, key_env: str = "production"):
    params = [{"name": "org_token", "value": {"sealed": param_blob}}] if param_blob else []
    manifest = ProviderManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": "openai",
            "provider_type": "openai",
            "connection": {"parameters": params},
            "api_keys": [
                {"name": "default", "environment": key_env, "value": {"sealed": key_blob}},
                {"name": "plain", "value": {"env": "OPENAI_API_KEY"}},
            ],
        }
    )
    sources = {
        "openai": SourceRef("providers.d/openai.yaml", 1, 1),
        f"openai/key:default@{key_env}": SourceRef("providers.d/openai.yaml", 12, 7),
        "openai/param:org_token@default": SourceRef("providers.d/openai.yaml", 8, 9),
    }
    return build_config([manifest], None, sources)


def _pubdir(tmp_path: Path, public: sealing.PublicKey) -> Path:
    d = tmp_path / "providers.d"
    d.mkdir(exist_ok=True)
    (d / "sealing.pub").write_text(sealing.write_public_key_text(public))
    (d / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza not-ours\n")
    return d


def test_check_ok(tmp_path: Path, keys: tuple) -> None:
    scope = ("openai", "default", "production")
    blob = sealing.seal(SECRET, scope, keys[1])
    pblob = sealing.seal("org", ("openai", "param:org_token", "default"), keys[1])
    config = _config(blob, pblob)
    assert sealing.check_sealed_references(config, [_pubdir(tmp_path, keys[1])]) == []
    assert sealing.verify_sealed_references(config) == []
    assert config.to_json_dict()["providers"][0]["api_keys"][0]["value"] == {"sealed": blob}
    assert SECRET.encode() not in config.to_json_bytes()


def test_check_without_private_key(
    tmp_path: Path, keys: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(sealing.SEALING_KEY_ENV)
    config = _config(sealing.seal(SECRET, ("openai", "default", "production"), keys[1]))
    assert sealing.check_sealed_references(config, [_pubdir(tmp_path, keys[1])]) == []


def test_check_unknown_key_and_missing_pub(tmp_path: Path, keys: tuple) -> None:
    _, other = sealing.generate_keypair()
    config = _config(sealing.seal(SECRET, ("openai", "default", "production"), other))
    diags = sealing.check_sealed_references(config, [_pubdir(tmp_path, keys[1])])
    assert [(d.path, d.line, d.col) for d in diags] == [("providers.d/openai.yaml", 12, 7)]
    assert f"sealed to key id {other.key_id}" in diags[0].message
    assert keys[1].key_id in diags[0].message

    empty = tmp_path / "empty"
    empty.mkdir()
    diags = sealing.check_sealed_references(config, [empty])
    assert len(diags) == 1
    assert "no sealing public key (*.pub) found" in diags[0].message
    assert "sealing.pub" in (diags[0].hint or "")


def test_check_scope_and_malformed(tmp_path: Path, keys: tuple) -> None:
    moved = sealing.seal(SECRET, ("openai", "default", "staging"), keys[1])
    pbroken = "gwseal:v1:AAAA"
    diags = sealing.check_sealed_references(_config(moved, pbroken), [_pubdir(tmp_path, keys[1])])
    assert [(d.line, d.col) for d in diags] == [(8, 9), (12, 7)]
    assert "malformed" in diags[0].message
    assert diags[1].message == (
        "sealed value was sealed for provider openai key default environment staging, "
        "used for provider openai key default environment production"
    )
    assert diags[1].format().startswith("providers.d/openai.yaml:12:7: error: sealed value")


def test_check_no_sealed_values_needs_no_key(tmp_path: Path) -> None:
    manifest = ProviderManifest.model_validate(
        {
            "apiVersion": "gwconfig/v1",
            "kind": "Provider",
            "provider_id": "a",
            "provider_type": "mock",
        }
    )
    assert sealing.check_sealed_references(build_config([manifest], None), [tmp_path]) == []


def test_verify_reports_at_file_line(keys: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    blob = sealing.seal(SECRET, ("openai", "default", "production"), keys[1])
    data = bytearray(sealing._b64d(blob[len(sealing.BLOB_PREFIX) :]))
    data[-1] ^= 1
    tampered = sealing.BLOB_PREFIX + sealing._b64e(bytes(data))
    diags = sealing.verify_sealed_references(_config(tampered))
    assert [(d.path, d.line) for d in diags] == [("providers.d/openai.yaml", 12)]
    assert "failed authentication" in diags[0].message

    wrong, _ = sealing.generate_keypair()
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, wrong.to_text())
    diags = sealing.verify_sealed_references(_config(blob))
    assert "sealed to key id" in diags[0].message and diags[0].line == 12


def test_resolve_secret_opens_sealed(keys: tuple) -> None:
    scope = ("openai", "default", "production")
    blob = sealing.seal(SECRET, scope, keys[1])
    assert resolve_secret({"sealed": blob}, scope) == SECRET
    with pytest.raises(SealingError, match="used for provider openai key default environment dev"):
        resolve_secret({"sealed": blob}, ("openai", "default", "dev"))


# --- reseal -----------------------------------------------------------------------------------

TEMPLATE = """\
# OpenAI, production keys  -- keep the comment
apiVersion: gwconfig/v1
kind:   Provider
provider_id: openai
provider_type: openai
connection:
  parameters:
    - {{name: org_token, value: {{sealed: "{param}"}}}}   # inline flow style
api_keys:
  - name: default
    environment: production
    value:
      sealed: {key}
  - name: other
    value: {{sealed: '{other}'}}\r
    # trailing comment with unicode: café
"""

J2 = """\
{{% for env in ["dev", "prod"] %}}
- name: k-{{{{ env }}}}
  value: {{sealed: "{blob}"}}
{{% endfor %}}
"""


def _write_manifests(tmp_path: Path, public: sealing.PublicKey) -> dict[Path, str]:
    d = tmp_path / "providers.d"
    (d / "sub").mkdir(parents=True)
    files = {
        d / "openai.yaml": TEMPLATE.format(
            param=sealing.seal("org-1", ("openai", "param:org_token", "default"), public),
            key=sealing.seal(SECRET, ("openai", "default", "production"), public),
            other=sealing.seal("other-2", ("openai", "other", "default"), public),
        ),
        d / "sub" / "keys.yaml.j2": J2.format(
            blob=sealing.seal("tmpl-3", ("openai", "k", "default"), public)
        ),
        d / "notes.txt": f"gwseal:v1:{'A' * 20} is not a manifest\n",
    }
    for path, text in files.items():
        path.write_bytes(text.encode("utf-8"))
    os.chmod(d / "openai.yaml", 0o640)
    return files


def test_reseal_changes_only_the_sealed_strings(tmp_path: Path, keys: tuple) -> None:
    files = _write_manifests(tmp_path, keys[1])
    new_priv, new_pub = sealing.generate_keypair()
    result = sealing_files.reseal_files([tmp_path / "providers.d"], new_pub)
    assert (result.resealed, result.unchanged, len(result.files)) == (4, 0, 2)
    new_keys = {new_pub.key_id: new_priv}
    opened = []
    for path, before in files.items():
        after = path.read_bytes().decode("utf-8")
        if path.suffix == ".txt":
            assert after == before
            continue
        old_blobs = sealing.BLOB_PATTERN.findall(before)
        new_blobs = sealing.BLOB_PATTERN.findall(after)
        assert len(old_blobs) == len(new_blobs) and set(old_blobs).isdisjoint(new_blobs)
        # every other byte of the file is unchanged
        assert sealing.BLOB_PATTERN.split(after) == sealing.BLOB_PATTERN.split(before)
        for old, new in zip(old_blobs, new_blobs, strict=True):
            old_scope, old_text = sealing.open_blob(old, {keys[1].key_id: keys[0]})
            assert sealing.open_blob(new, new_keys) == (old_scope, old_text)
            opened.append(old_text)
    assert sorted(opened) == sorted(["org-1", SECRET, "other-2", "tmpl-3"])
    assert stat.S_IMODE((tmp_path / "providers.d" / "openai.yaml").stat().st_mode) == 0o640
    assert not list((tmp_path / "providers.d").rglob("*.gwseal-tmp"))

    again = sealing_files.reseal_files([tmp_path / "providers.d"], new_pub)
    assert (again.resealed, again.unchanged, again.files) == (0, 4, ())


def test_reseal_failure_writes_nothing(tmp_path: Path, keys: tuple) -> None:
    files = _write_manifests(tmp_path, keys[1])
    _, stranger = sealing.generate_keypair()
    target = tmp_path / "providers.d" / "openai.yaml"
    text = target.read_text()
    bad = sealing.seal("x", ("openai", "z", "default"), stranger)
    target.write_text(text + f"# later: {bad}\n")
    files[target] = target.read_text()
    _, new_pub = sealing.generate_keypair()
    with pytest.raises(ManifestError) as info:
        sealing_files.reseal_files([tmp_path / "providers.d"], new_pub)
    d = info.value.diagnostics[0]
    assert (d.path, d.line, d.col) == (str(target), text.count("\n") + 1, 10)
    assert "sealed to key id" in d.message
    for path, before in files.items():
        assert path.read_text() == before


def test_reseal_needs_the_old_key(
    tmp_path: Path, keys: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_manifests(tmp_path, keys[1])
    monkeypatch.delenv(sealing.SEALING_KEY_ENV)
    with pytest.raises(SealingError, match="GWCONFIG_SEALING_KEY is not set"):
        sealing_files.reseal_files([tmp_path / "providers.d"], sealing.generate_keypair()[1])
    with pytest.raises(SealingError, match="no such file"):
        sealing_files.reseal_files([tmp_path / "missing"], keys[1])


# --- key generation ---------------------------------------------------------------------------


def test_write_keypair_modes_and_formats(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = sealing_files.write_keypair(out)
    assert stat.S_IMODE(result.private_path.stat().st_mode) == 0o600
    assert result.git_root is None
    private_text = result.private_path.read_text()
    parsed = sealing._parse_private_keys(private_text)  # exactly what the variable takes
    public = sealing.load_public_key(result.public_path)
    assert list(parsed) == [public.key_id] == [result.key_id]
    with pytest.raises(SealingError, match="already exists"):
        sealing_files.write_keypair(out)
    again = sealing_files.write_keypair(out, force=True)
    assert again.key_id != result.key_id
    assert stat.S_IMODE(again.private_path.stat().st_mode) == 0o600


def test_write_keypair_in_git_work_tree(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    result = sealing_files.write_keypair(tmp_path / "deep" / "dir", "ci")
    assert result.git_root == tmp_path.resolve()
    assert result.private_path.name == "ci.key" and result.public_path.name == "ci.pub"


def test_default_public_key(tmp_path: Path, keys: tuple) -> None:
    d = tmp_path / "providers.d"
    with pytest.raises(SealingError, match="no sealing public key"):
        sealing_files.default_public_key(d)
    d.mkdir()
    (d / "team.pub").write_text(keys[1].to_text() + "\n")
    assert sealing_files.default_public_key(d).raw == keys[1].raw
    (d / "other.pub").write_text(sealing.generate_keypair()[1].to_text())
    with pytest.raises(SealingError, match="several public keys"):
        sealing_files.default_public_key(d)
    (d / "sealing.pub").write_text(keys[1].to_text())
    assert sealing_files.default_public_key(d).key_id == keys[1].key_id


def test_sealed_values_stored_through_the_database(
    db_url: str, keys: tuple, fernet_key: str
) -> None:
    """Sealed refs open at write time (resolve_secret) and are stored Fernet-encrypted."""
    from gwconfig.db.rows import insert_config
    from gwconfig.db.session import open_database
    from gwconfig.reconcile.state import read_state
    from gwconfig.secrets.keys import EncryptionKeys

    key_blob = sealing.seal(SECRET, ("openai", "default", "production"), keys[1])
    param_blob = sealing.seal("org-canary-55", ("openai", "param:org_token", "default"), keys[1])
    config = _config(key_blob, param_blob)
    data = {**config.data}
    data["providers"] = [{**p, "api_keys": p["api_keys"][:1]} for p in data["providers"]]
    enc = EncryptionKeys(fernet_key)
    db = open_database(db_url, upgrade=True)
    try:
        with db.transaction() as session:
            insert_config(session.connection(), data, enc)
        with db.connect() as conn:
            state = read_state(conn)
    finally:
        db.dispose()
    provider = state.provider("openai")
    assert provider is not None
    assert provider["api_keys"][0]["value"] == {"fingerprint": enc.fingerprint(SECRET)}
    assert provider["connection_parameters"][0]["value"] == {
        "fingerprint": enc.fingerprint("org-canary-55")
    }
    stored = state.secrets[("openai", "key", "default", "production")]
    assert enc.decrypt(stored) == SECRET
    assert SECRET not in repr(state.data) and SECRET not in stored

    moved = _config(sealing.seal(SECRET, ("openai", "default", "staging"), keys[1]))
    db = open_database(db_url, upgrade=True)
    try:
        with (
            pytest.raises(SealingError, match="used for provider openai key default"),
            db.transaction() as session,
        ):
            insert_config(session.connection(), moved.data, enc)
    finally:
        db.dispose()


def test_reseal_keeps_non_utf8_bytes(tmp_path: Path, keys: tuple) -> None:
    blob = sealing.seal(SECRET, ("p", "default", "default"), keys[1]).encode()
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"# caf\xe9\r\nvalue: {sealed: " + blob + b"}\r\n\xff")
    _, new_pub = sealing.generate_keypair()
    assert sealing_files.reseal_files([path], new_pub).resealed == 1
    after = path.read_bytes()
    assert after.startswith(b"# caf\xe9\r\nvalue: {sealed: gwseal:v1:") and after.endswith(
        b"}\r\n\xff"
    )
    assert blob not in after


def test_malformed_public_key_file_is_reported(tmp_path: Path, keys: tuple) -> None:
    (tmp_path / "broken.pub").write_text("gwseal-public:v1:AAAA\n")
    config = _config(sealing.seal(SECRET, ("openai", "default", "production"), keys[1]))
    diags = sealing.check_sealed_references(config, [tmp_path])
    assert (diags[0].path, diags[0].line) == (str(tmp_path / "broken.pub"), 1)
    assert "not a gwconfig sealing public key" in diags[0].message
    assert "no sealing public key (*.pub) found" in diags[1].message


def test_public_keys_in_hidden_directories_are_ignored(tmp_path: Path, keys: tuple) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "sealing.pub").write_text(keys[1].to_text())
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    found, diags = sealing.find_public_keys([tmp_path])
    assert (found, diags) == ([], [])
    (tmp_path / "nested" / "deeper" / "team.pub").write_text(keys[1].to_text())
    found, _ = sealing.find_public_keys([tmp_path])
    assert [k.key_id for k in found] == [keys[1].key_id]


def test_reseal_writes_through_symlinks(tmp_path: Path, keys: tuple) -> None:
    real = tmp_path / "shared" / "openai.yaml"
    real.parent.mkdir()
    blob = sealing.seal(SECRET, ("p", "default", "default"), keys[1])
    real.write_text(f"value: {{sealed: {blob}}}\n")
    (tmp_path / "providers.d").mkdir()
    link = tmp_path / "providers.d" / "openai.yaml"
    link.symlink_to(real)
    _, new_pub = sealing.generate_keypair()
    assert sealing_files.reseal_files([tmp_path / "providers.d"], new_pub).resealed == 1
    assert link.is_symlink()
    assert blob not in real.read_text() and real.read_text().startswith(
        "value: {sealed: gwseal:v1:"
    )
