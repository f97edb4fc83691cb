"""Secrets: Fernet at rest with rotation, keyed fingerprints, key loading, reference resolution."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from gwconfig.errors import EncryptionKeyError, SealingError, SecretError
from gwconfig.secrets.keys import (
    ENV_VAR,
    MASK,
    EncryptionKeys,
    StoredKeys,
    generate_key,
    key_id,
    load_encryption_keys,
    mask_entity,
)
from gwconfig.secrets.resolve import MissingSecretError, resolve_secret

PLAIN = "sk-test-secret-0123456789"
SCOPE = ("openai", "default", "default")


def test_encrypt_decrypt_round_trip(fernet_key: str) -> None:
    keys = EncryptionKeys(fernet_key)
    token = keys.encrypt(PLAIN)
    assert PLAIN not in token and token != keys.encrypt(PLAIN)  # random IV each time
    assert keys.decrypt(token) == PLAIN
    assert fernet_key not in repr(keys)


def test_multifernet_encrypts_with_newest_and_decrypts_with_any(fernet_key: str) -> None:
    old = EncryptionKeys(fernet_key)
    new_key = generate_key()
    token_old = old.encrypt(PLAIN)
    both = EncryptionKeys(f"{new_key}, {fernet_key}")
    assert len(both) == 2
    assert both.decrypt(token_old) == PLAIN
    rotated = both.rotate(token_old)
    assert EncryptionKeys(new_key).decrypt(rotated) == PLAIN
    with pytest.raises(EncryptionKeyError):
        old.decrypt(both.encrypt(PLAIN))


def test_wrong_key_fails_clearly_without_leaking(fernet_key: str) -> None:
    token = EncryptionKeys(fernet_key).encrypt(PLAIN)
    with pytest.raises(EncryptionKeyError) as info:
        EncryptionKeys(generate_key()).decrypt(token)
    assert ENV_VAR in str(info.value) + (info.value.hint or "")
    assert PLAIN not in str(info.value) and token not in str(info.value)
    with pytest.raises(EncryptionKeyError):
        EncryptionKeys(fernet_key).decrypt("not-a-token")


@pytest.mark.parametrize("raw", ["", " , ", "short", "x" * 44])
def test_malformed_keys_name_the_variable_not_the_value(raw: str) -> None:
    with pytest.raises(EncryptionKeyError) as info:
        EncryptionKeys(raw)
    assert ENV_VAR in str(info.value)
    if raw.strip(" ,"):
        assert raw not in str(info.value)
    assert "gwconfig keys generate" in (info.value.hint or "")


def test_fingerprint_is_keyed_hmac(fernet_key: str) -> None:
    keys = EncryptionKeys(fernet_key)
    fp = keys.fingerprint(PLAIN)
    assert fp.startswith("hmac-sha256:") and len(fp) == len("hmac-sha256:") + 64
    assert fp == keys.fingerprint(PLAIN) != keys.fingerprint(PLAIN + "x")
    assert fp.split(":", 1)[1] != hashlib.sha256(PLAIN.encode()).hexdigest()
    assert fp != EncryptionKeys(generate_key()).fingerprint(PLAIN)
    # only the newest key counts: adding an older key keeps fingerprints stable
    assert EncryptionKeys([fernet_key, generate_key()]).fingerprint(PLAIN) == fp


def test_load_keys_from_environment(monkeypatch: pytest.MonkeyPatch, fernet_key: str) -> None:
    monkeypatch.setenv(ENV_VAR, fernet_key)
    keys = load_encryption_keys("postgresql+psycopg://u@h/db")
    assert keys.decrypt(EncryptionKeys(fernet_key).encrypt(PLAIN)) == PLAIN


def test_missing_key_for_a_server_database_is_an_error(isolated_cwd: Path) -> None:
    with pytest.raises(EncryptionKeyError) as info:
        load_encryption_keys("postgresql+psycopg://u:pw@h/db")
    assert f"set {ENV_VAR}" in (info.value.hint or "")
    assert "gwconfig keys generate" in (info.value.hint or "")
    assert "pw@" not in str(info.value)
    assert not (isolated_cwd / ".gwconfig").exists()


def test_embedded_default_generates_a_private_key_file(
    isolated_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = load_encryption_keys(None)
    path = isolated_cwd / ".gwconfig" / "encryption.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    err = capsys.readouterr().err
    assert "generated a new encryption key" in err and str(Path(".gwconfig")) in err
    assert path.read_text().strip() not in err
    second = load_encryption_keys(None)
    assert capsys.readouterr().err == ""
    assert second.decrypt(first.encrypt(PLAIN)) == PLAIN


def test_resolve_env_and_file(monkeypatch: pytest.MonkeyPatch, isolated_cwd: Path) -> None:
    monkeypatch.setenv("MY_KEY", PLAIN)
    assert resolve_secret({"env": "MY_KEY"}, SCOPE) == PLAIN
    (isolated_cwd / "key.txt").write_text(PLAIN + "\n")
    assert resolve_secret({"file": "key.txt"}, SCOPE) == PLAIN


def test_missing_references_name_the_reference(isolated_cwd: Path) -> None:
    with pytest.raises(MissingSecretError) as info:
        resolve_secret({"env": "NOT_SET_ANYWHERE"}, SCOPE)
    assert "environment variable NOT_SET_ANYWHERE is not set" in str(info.value)
    assert info.value.reference == "env:NOT_SET_ANYWHERE"
    with pytest.raises(MissingSecretError) as info:
        resolve_secret({"file": "nope.txt"}, SCOPE)
    assert info.value.reference == "file:nope.txt"
    (isolated_cwd / "empty.txt").write_text("\n")
    with pytest.raises(SecretError, match="empty"):
        resolve_secret({"file": "empty.txt"}, SCOPE)
    with pytest.raises(SecretError):
        resolve_secret({"env": "A", "file": "b"}, SCOPE)


def test_sealed_references_are_opened_for_their_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gwconfig.secrets import sealing

    private, public = sealing.generate_keypair()
    blob = sealing.seal(PLAIN, SCOPE, public)
    monkeypatch.setenv("GWCONFIG_SEALING_KEY", private.to_text())
    assert resolve_secret({"sealed": blob}, SCOPE) == PLAIN
    with pytest.raises(SealingError):
        resolve_secret({"sealed": blob}, ("openai", "other", "default"))


def test_mask_entity_hides_only_secret_values() -> None:
    key = {"name": "default", "environment": "default", "value": {"env": "X"}}
    assert mask_entity("api_key", key) == {**key, "value": MASK}
    secret = {"name": "org", "environment": "default", "sensitive": True, "value": "v"}
    plain = {**secret, "sensitive": False}
    assert mask_entity("connection_parameter", secret)["value"] == MASK  # type: ignore[index]
    assert mask_entity("connection_parameter", plain) == plain
    assert mask_entity("model", {"model_id": "m"}) == {"model_id": "m"}
    assert mask_entity("api_key", None) is None


def test_key_ids_are_short_stable_distinct_and_reveal_nothing() -> None:
    keys = [generate_key() for _ in range(20)]
    ids = [key_id(k) for k in keys]
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(keys)
    assert ids == [key_id(k.encode()) for k in keys]
    assert EncryptionKeys(keys[:3]).ids == tuple(ids[:3])
    assert not any(i in k for i, k in zip(ids, keys, strict=True))


@pytest.mark.parametrize("others", [0, 1, 2])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_bind_takes_the_database_key_wherever_it_is_listed(others: int, position: int) -> None:
    stored_key = generate_key()
    listed = [generate_key() for _ in range(others)]
    listed.insert(min(position, others), stored_key)
    keys = EncryptionKeys(listed)
    bound = keys.bind(StoredKeys(frozenset({key_id(stored_key)})))
    alone = EncryptionKeys(stored_key)
    assert bound.primary_id == key_id(stored_key)
    assert bound.fingerprint(PLAIN) == alone.fingerprint(PLAIN)
    assert alone.decrypt(bound.encrypt(PLAIN)) == PLAIN  # writes stay under the stored key
    assert keys.bind(StoredKeys()).primary_id == keys.ids[0]  # an empty database: the newest


def test_bind_learns_unrecorded_keys_by_trying_them() -> None:
    old, new = generate_key(), generate_key()
    tokens = tuple(EncryptionKeys(old).encrypt(f"v{i}") for i in range(3))
    unknown = StoredKeys(unknown=tokens)
    assert EncryptionKeys([new, old]).bind(unknown).primary_id == key_id(old)
    with pytest.raises(EncryptionKeyError, match="recorded before key ids") as info:
        EncryptionKeys(new).bind(unknown)
    assert key_id(new) in info.value.message and old not in info.value.message


def test_several_stored_keys_are_refused_to_writers_only() -> None:
    a, b = generate_key(), generate_key()
    stored = StoredKeys(frozenset({key_id(a)}), (EncryptionKeys(b).encrypt(PLAIN),))
    keys = EncryptionKeys([a, b])
    with pytest.raises(EncryptionKeyError, match="several encryption keys") as info:
        keys.bind(stored)
    assert "keys rotate" in (info.value.hint or "")
    assert keys.bind(stored, single=False).decrypt(stored.unknown[0]) == PLAIN
    with pytest.raises(EncryptionKeyError, match=f"missing: {key_id(b)}"):
        EncryptionKeys(a).bind(StoredKeys(frozenset({key_id(a), key_id(b)})), single=False)
