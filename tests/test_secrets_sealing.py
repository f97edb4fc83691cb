"""gwconfig.secrets.sealing: seal/unseal round trip, tampering, scope binding, keys and rotation."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwconfig.errors import SealingError
from gwconfig.manifests.model import SecretRef
from gwconfig.secrets import sealed_files as sealing_files
from gwconfig.secrets import sealing

SCOPE = ("openai-prod", "default", "production")
SECRET = "sk-canary-0123456789abcdef"


@pytest.fixture
def pair() -> tuple[sealing.PrivateKey, sealing.PublicKey]:
    return sealing.generate_keypair()


@pytest.fixture
def env_key(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[sealing.PrivateKey, sealing.PublicKey]
) -> sealing.PublicKey:
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, pair[0].to_text())
    return pair[1]


def _flip_payload(blob: str, index: int, mask: int) -> str:
    data = bytearray(sealing._b64d(blob[len(sealing.BLOB_PREFIX) :]))
    data[index] ^= mask
    return sealing.BLOB_PREFIX + sealing._b64e(bytes(data))


def test_round_trip(env_key: sealing.PublicKey) -> None:
    blob = sealing.seal(SECRET, SCOPE, env_key)
    assert blob.startswith("gwseal:v1:")
    assert SECRET not in blob
    assert re.fullmatch(r"^gwseal:v1:[A-Za-z0-9_=-]+$", blob)
    assert SecretRef(sealed=blob).to_json() == {"sealed": blob}  # the schema accepts it
    assert sealing.unseal(blob, SCOPE) == SECRET


def test_sealing_is_randomised(env_key: sealing.PublicKey) -> None:
    a, b = sealing.seal(SECRET, SCOPE, env_key), sealing.seal(SECRET, SCOPE, env_key)
    assert a != b
    assert sealing.unseal(a, SCOPE) == sealing.unseal(b, SCOPE) == SECRET


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=300))
def test_round_trip_any_text(text: str) -> None:
    private, public = sealing.generate_keypair()
    blob = sealing.seal(text, ("p", "param:token", "default"), public)
    scope, opened = sealing.open_blob(blob, {public.key_id: private})
    assert (scope, opened) == (("p", "param:token", "default"), text)


def test_blob_header_names_scope_and_key(env_key: sealing.PublicKey) -> None:
    parsed = sealing.parse_blob(sealing.seal(SECRET, SCOPE, env_key))
    assert parsed.scope == SCOPE
    assert parsed.key_id == env_key.key_id
    assert len(parsed.key_id) == 16


def test_every_character_changed_is_a_clear_error(env_key: sealing.PublicKey) -> None:
    blob = sealing.seal(SECRET, SCOPE, env_key)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, ch in enumerate(blob):
        for replacement in {alphabet[(alphabet.find(ch) + 1) % 64], "=", "+", chr(ord(ch) ^ 1)}:
            if replacement == ch:
                continue
            tampered = blob[:i] + replacement + blob[i + 1 :]
            with pytest.raises(SealingError) as info:
                sealing.unseal(tampered, SCOPE)
            assert SECRET not in str(info.value)


def test_every_payload_bit_flip_is_a_clear_error(env_key: sealing.PublicKey) -> None:
    blob = sealing.seal(SECRET, SCOPE, env_key)
    size = len(sealing._b64d(blob[len(sealing.BLOB_PREFIX) :]))
    for i in range(size):
        for mask in (0x01, 0x80):
            with pytest.raises(SealingError) as info:
                sealing.unseal(_flip_payload(blob, i, mask), SCOPE)
            msg = info.value.message
            assert SECRET not in str(info.value)
            if i < 8:  # the key id: no such key, and the message says it may be altered
                assert "sealed to key id" in msg and "altered" in msg
            else:
                assert "failed authentication" in msg or "malformed" in msg, msg


def test_tampered_ciphertext_message(env_key: sealing.PublicKey) -> None:
    blob = sealing.seal(SECRET, SCOPE, env_key)
    size = len(sealing._b64d(blob[len(sealing.BLOB_PREFIX) :]))
    with pytest.raises(SealingError, match="failed authentication: it was altered"):
        sealing.unseal(_flip_payload(blob, size - 1, 0x01), SCOPE)


def test_tampered_scope_in_header_fails_authentication(env_key: sealing.PublicKey) -> None:
    blob = sealing.seal(SECRET, ("openai-prod", "default", "productiom"), env_key)
    data = sealing._b64d(blob[len(sealing.BLOB_PREFIX) :])
    forged = sealing.BLOB_PREFIX + sealing._b64e(data.replace(b"productiom", b"production"))
    with pytest.raises(SealingError, match="failed authentication"):
        sealing.unseal(forged, SCOPE)


def test_truncated_blobs_are_malformed(env_key: sealing.PublicKey) -> None:
    blob = sealing.seal(SECRET, SCOPE, env_key)
    for n in range(len(blob)):
        with pytest.raises(SealingError):
            sealing.unseal(blob[:n], SCOPE)


@pytest.mark.parametrize(
    "blob", ["", "gwseal:v1:", "gwseal:v2:AAAA", "gwseal:v1:AA AA", "gwseal:v1:A", "plain"]
)
def test_malformed(env_key: sealing.PublicKey, blob: str) -> None:
    with pytest.raises(SealingError, match="malformed"):
        sealing.unseal(blob, SCOPE)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (("anthropic", "default", "production"), "used for provider anthropic key default"),
        (("openai-prod", "backup", "production"), "used for provider openai-prod key backup"),
        (("openai-prod", "default", "staging"), "environment staging"),
        (("openai-prod", "param:default", "production"), "parameter default"),
    ],
)
def test_scope_mismatch(
    env_key: sealing.PublicKey, scope: sealing.SealedScope, expected: str
) -> None:
    blob = sealing.seal(SECRET, SCOPE, env_key)
    with pytest.raises(SealingError) as info:
        sealing.unseal(blob, scope)
    msg = info.value.message
    assert msg.startswith(
        "sealed value was sealed for provider openai-prod key default environment production, "
    )
    assert expected in msg
    assert SECRET not in msg


def test_wrong_key(monkeypatch: pytest.MonkeyPatch, pair: tuple) -> None:
    blob = sealing.seal(SECRET, SCOPE, pair[1])
    other, _ = sealing.generate_keypair()
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, other.to_text())
    with pytest.raises(SealingError) as info:
        sealing.unseal(blob, SCOPE)
    assert f"sealed to key id {pair[1].key_id}" in info.value.message
    assert other.public_key().key_id in info.value.message
    assert "GWCONFIG_SEALING_KEY" in (info.value.hint or "")


def test_key_not_set(monkeypatch: pytest.MonkeyPatch, pair: tuple) -> None:
    blob = sealing.seal(SECRET, SCOPE, pair[1])
    monkeypatch.delenv(sealing.SEALING_KEY_ENV, raising=False)
    with pytest.raises(SealingError, match="GWCONFIG_SEALING_KEY is not set"):
        sealing.unseal(blob, SCOPE)


@pytest.mark.parametrize("bad", ["nonsense", "gwseal-private:v1:AAAA", "gwseal-public:v1:AAAA"])
def test_malformed_private_key(monkeypatch: pytest.MonkeyPatch, pair: tuple, bad: str) -> None:
    blob = sealing.seal(SECRET, SCOPE, pair[1])
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, f"{pair[0].to_text()},{bad}")
    with pytest.raises(SealingError, match="GWCONFIG_SEALING_KEY entry 2 is") as info:
        sealing.unseal(blob, SCOPE)
    assert pair[0].to_text() not in str(info.value)


@pytest.mark.parametrize("sep", [",", "\n", ", ", " \n"])
def test_two_keys_during_rotation(monkeypatch: pytest.MonkeyPatch, sep: str) -> None:
    old_priv, old_pub = sealing.generate_keypair()
    new_priv, new_pub = sealing.generate_keypair()
    old_blob = sealing.seal("old-secret", SCOPE, old_pub)
    new_blob = sealing.seal("new-secret", SCOPE, new_pub)
    monkeypatch.setenv(
        sealing.SEALING_KEY_ENV, new_priv.to_text() + sep + old_priv.to_text() + "\n"
    )
    assert sealing.unseal(old_blob, SCOPE) == "old-secret"
    assert sealing.unseal(new_blob, SCOPE) == "new-secret"
    monkeypatch.setenv(sealing.SEALING_KEY_ENV, new_priv.to_text())
    with pytest.raises(SealingError, match="key id"):
        sealing.unseal(old_blob, SCOPE)


def test_key_text_formats(pair: tuple) -> None:
    private, public = pair
    assert re.fullmatch(r"gwseal-private:v1:[A-Za-z0-9_-]{43}", private.to_text())
    assert re.fullmatch(r"gwseal-public:v1:[A-Za-z0-9_-]{43}", public.to_text())
    text = sealing.write_public_key_text(public)
    assert public.key_id in text
    assert sealing.parse_public_key(text).raw == public.raw
    assert private.to_text() not in repr(private)
    assert base64.urlsafe_b64encode(private.raw).decode()[:20] not in repr(private)


@pytest.mark.parametrize("text", ["", "gwseal-public:v1:AAAA", "ssh-ed25519 AAAA", "a\nb"])
def test_bad_public_key(text: str) -> None:
    with pytest.raises(SealingError, match=r"x\.pub"):
        sealing.parse_public_key(text, "x.pub")


def test_empty_value_refused(pair: tuple) -> None:
    with pytest.raises(SealingError, match="empty"):
        sealing.seal("", SCOPE, pair[1])


def test_read_secret_text_strips_one_newline() -> None:
    assert sealing_files.read_secret_text(b"abc\n") == "abc"
    assert sealing_files.read_secret_text(b"abc\r\n") == "abc"
    assert sealing_files.read_secret_text(b"abc\n\n") == "abc\n"
    assert sealing_files.read_secret_text(b"abc") == "abc"
    with pytest.raises(SealingError, match="UTF-8"):
        sealing_files.read_secret_text(b"\xff\xfe")
