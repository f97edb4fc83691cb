"""Secret references: never gwconfig's own secrets nor pseudo files; bounded ``{file:}`` reads."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from gwconfig.canonical import content_hash
from gwconfig.errors import ManifestError, SecretError
from gwconfig.manifests import validate_path
from gwconfig.secrets import refs as secretrefs
from gwconfig.secrets.resolve import MissingSecretError, resolve_secret

SCOPE = ("openai", "default", "default")
SECRET = "sk-test-" + "0123456789abcdef"

OWN_VARIABLES = [
    "GWCONFIG_SEALING_KEY",
    "GWCONFIG_ENCRYPTION_KEY",
    "GWCONFIG_LEGACY_KEY",
    "GWCONFIG_API_TOKEN",
    "GWCONFIG_DATABASE_URL",
    "GWCONFIG_ACTOR",
    "GWCONFIG_ANYTHING_ELSE",
]
PSEUDO_FILES = [
    "/proc/self/environ",
    "/proc/1/environ",
    "/proc",
    "/sys/kernel/hostname",
    "/dev/zero",
    "/dev/stdin",
    "/dev/shm/x",
    "/tmp/x/../../proc/self/environ",
    "/./proc//self/environ",
    "../" * 40 + "proc/self/environ",
    "~/" + "../" * 40 + "dev/zero",
    ".gwconfig/encryption.key",
    "./.gwconfig/../.gwconfig/encryption.key",
]
ORDINARY_FILES = ["/procedure/key", "/devices/key", "proc/self/environ", "sys/key", ".gwconfig-x"]


def _provider(value: Any, *, as_parameter: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "p",
        "provider_type": "openai",
        "connection": {"api_base": "http://127.0.0.1:9/v1"},
    }
    if as_parameter:
        doc["connection"]["parameters"] = [{"name": "org", "value": value, "sensitive": True}]
    else:
        doc["api_keys"] = [{"name": "default", "value": value}]
    return doc


def _write(root: Path, doc: dict[str, Any]) -> Path:
    (root / "providers.d").mkdir(exist_ok=True)
    path = root / "providers.d" / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _plan(url: str) -> None:
    from gwconfig.db.session import open_database
    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions

    open_database(url, upgrade=True).dispose()
    commands.plan("providers.d", url, PlanOptions())


def _value_line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# --- item 5: references to gwconfig's own secrets and to pseudo files ----------------------------


@pytest.mark.parametrize("as_parameter", [False, True], ids=["api_key", "parameter"])
@pytest.mark.parametrize("name", OWN_VARIABLES)
def test_validate_rejects_gwconfig_variables(
    isolated_cwd: Path, name: str, as_parameter: bool
) -> None:
    path = _write(isolated_cwd, _provider({"env": name}, as_parameter=as_parameter))
    (d,) = validate_path("providers.d")
    assert (d.path, d.line) == ("providers.d/p.yaml", _value_line(path, name))
    assert f"{{env: {name}}} names one of gwconfig's own variables" in d.message


@pytest.mark.parametrize(
    "name", ["gwconfig_sealing_key", "Gwconfig_Encryption_Key", "MY_GWCONFIG_X"]
)
def test_other_variables_are_not_gwconfig_variables(isolated_cwd: Path, name: str) -> None:
    # Variable names are case-sensitive: gwconfig reads only the upper-case GWCONFIG_* names.
    _write(isolated_cwd, _provider({"env": name}))
    assert validate_path("providers.d") == []


@pytest.mark.parametrize("as_parameter", [False, True], ids=["api_key", "parameter"])
@pytest.mark.parametrize("target", PSEUDO_FILES)
def test_validate_rejects_pseudo_files_and_the_state_directory(
    isolated_cwd: Path, target: str, as_parameter: bool
) -> None:
    path = _write(isolated_cwd, _provider({"file": target}, as_parameter=as_parameter))
    (d,) = validate_path("providers.d")
    assert (d.path, d.line) == ("providers.d/p.yaml", _value_line(path, "file:"))
    assert f"secret file {target} is inside " in d.message


@pytest.mark.parametrize("target", ORDINARY_FILES)
def test_similar_paths_are_allowed(isolated_cwd: Path, target: str) -> None:
    _write(isolated_cwd, _provider({"file": target}))
    assert validate_path("providers.d") == []


@pytest.mark.parametrize("name", OWN_VARIABLES)
def test_resolution_refuses_gwconfig_variables(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # The resolver is the last line: references that never went through validate (a hand-edited
    # compiled file, a seed) are refused too, and the value is never returned nor printed.
    monkeypatch.setenv(name, SECRET)
    with pytest.raises(SecretError) as info:
        resolve_secret({"env": name}, SCOPE)
    assert "gwconfig's own variables" in info.value.message
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("target", PSEUDO_FILES)
def test_resolution_refuses_pseudo_files(isolated_cwd: Path, target: str) -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret({"file": target}, SCOPE)
    assert f"secret file {target} is inside " in info.value.message


@pytest.mark.parametrize(
    "pointee", ["/proc/self/environ", "/dev/zero", "/sys", "/proc/self/fd/0", ".gwconfig/x"]
)
def test_resolution_follows_symlinks_into_forbidden_places(
    isolated_cwd: Path, pointee: str
) -> None:
    (isolated_cwd / ".gwconfig").mkdir()
    (isolated_cwd / ".gwconfig" / "x").write_text(SECRET)
    (isolated_cwd / "inner").symlink_to(pointee)
    (isolated_cwd / "outer").symlink_to(isolated_cwd / "inner")
    (isolated_cwd / "dir").symlink_to("/proc/self")
    for target in ("outer", "inner", str(isolated_cwd / "outer")):
        with pytest.raises(SecretError, match=r"resolves to .*, inside "):
            resolve_secret({"file": target}, SCOPE)
    with pytest.raises(SecretError, match=r"resolves to /proc/"):
        resolve_secret({"file": "dir/environ"}, SCOPE)


def test_the_opened_file_is_judged_not_only_the_path(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A symlink swapped in after the path check: the descriptor that was opened is checked too.
    (isolated_cwd / "swapped").symlink_to("/proc/self/environ")
    monkeypatch.setattr(secretrefs.os.path, "realpath", lambda p: str(isolated_cwd / "plain"))
    with pytest.raises(SecretError, match=r"resolves to /proc/\S+/environ, inside /proc"):
        resolve_secret({"file": "swapped"}, SCOPE)


def test_plan_reports_a_symlink_into_proc_at_the_manifest_line(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, fernet_key: str
) -> None:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    (isolated_cwd / "key").symlink_to("/proc/self/environ")
    path = _write(isolated_cwd, _provider({"file": "key"}))
    assert validate_path("providers.d") == []  # the path as written is harmless
    with pytest.raises(ManifestError) as info:
        _plan("sqlite:///gw.db")
    (d,) = info.value.diagnostics
    assert (d.path, d.line) == ("providers.d/p.yaml", _value_line(path, "value:"))
    assert "resolves to /proc/" in d.message


def test_runtime_refuses_gwconfig_variables_from_a_compiled_file(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gwconfig.runtime import ConfigLoader
    from runtime_servers import write_compiled

    monkeypatch.setenv("GWCONFIG_SEALING_KEY", SECRET)
    path = write_compiled(isolated_cwd / "compiled.json", [_provider({"env": "SOME_KEY"})])
    doc = json.loads(path.read_text())
    doc.pop("content_hash")
    doc["providers"][0]["api_keys"][0]["value"] = {"env": "GWCONFIG_SEALING_KEY"}
    doc["content_hash"] = content_hash(doc)
    path.write_text(json.dumps(doc))
    config = ConfigLoader(path).load_config_as_object()
    (key,) = config.providers["p"].api_keys
    assert key.value is None
    assert key.error is not None and "gwconfig's own variables" in key.error
    assert SECRET not in key.error


# --- item 7: {file:} secrets are regular files of at most 64 KiB, opened without blocking ---------


def _special(root: Path, kind: str) -> str:
    """Create a file of ``kind`` under ``root``; returns its reference (relative path)."""
    if kind == "fifo":
        os.mkfifo(root / "fifo")
        return "fifo"
    if kind == "directory":
        (root / "directory").mkdir()
        return "directory"
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(root / "socket"))
        sock.close()
        return "socket"
    if kind == "too large":
        (root / "big").write_bytes(b"k" * (secretrefs.MAX_SECRET_FILE_BYTES + 1))
        return "big"
    if kind == "too large after newline strip":
        (root / "big").write_bytes(b"k" * secretrefs.MAX_SECRET_FILE_BYTES + b"\n")
        return "big"
    if kind == "symlink to /dev/zero":
        (root / "zero").symlink_to("/dev/zero")
        return "zero"
    if kind == "not utf-8":
        (root / "bin").write_bytes(b"\xff\xfe\x00sk")
        return "bin"
    raise AssertionError(kind)


SPECIAL = {
    "fifo": "is a FIFO (named pipe), not a regular file",
    "directory": "is a directory, not a regular file",
    "socket": "cannot open secret file socket",
    "too large": "is larger than 64 KiB",
    "too large after newline strip": "is larger than 64 KiB",
    "symlink to /dev/zero": "resolves to /dev/zero, inside /dev",
    "not utf-8": "is not UTF-8 text",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_file_secrets_that_are_not_small_regular_files_are_refused(
    isolated_cwd: Path, kind: str
) -> None:
    # In process and without a writer on the FIFO: a blocking open would hang this test.
    target = _special(isolated_cwd, kind)
    with pytest.raises(SecretError) as info:
        resolve_secret({"file": target}, SCOPE)
    assert not isinstance(info.value, MissingSecretError)
    assert SPECIAL[kind] in info.value.message
    assert "(secret for openai/default@default)" in info.value.message


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_plan_reports_bad_file_secrets_at_the_manifest_line(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, fernet_key: str, kind: str
) -> None:
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    path = _write(isolated_cwd, _provider({"file": _special(isolated_cwd, kind)}))
    with pytest.raises(ManifestError) as info:
        _plan("sqlite:///gw.db")
    (d,) = info.value.diagnostics
    assert (d.path, d.line) == ("providers.d/p.yaml", _value_line(path, "value:"))
    assert SPECIAL[kind] in d.message


def test_devices_are_refused_even_outside_dev(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The descriptor is checked with fstat, whatever the path policy says: a device node is never
    # read (it may never end).
    monkeypatch.setattr(secretrefs, "FORBIDDEN_ROOTS", ())
    with pytest.raises(SecretError, match="/dev/zero is a character device, not a regular file"):
        resolve_secret({"file": "/dev/zero"}, SCOPE)


def test_a_file_of_exactly_the_limit_is_read(isolated_cwd: Path) -> None:
    value = "k" * secretrefs.MAX_SECRET_FILE_BYTES
    (isolated_cwd / "max").write_text(value)
    assert resolve_secret({"file": "max"}, SCOPE) == value
    (isolated_cwd / "small").write_text(SECRET + "\r\n")
    assert resolve_secret({"file": "small"}, SCOPE) == SECRET


def test_a_missing_file_is_a_missing_secret(isolated_cwd: Path, fernet_key: str) -> None:
    with pytest.raises(MissingSecretError) as info:
        resolve_secret({"file": "absent"}, SCOPE)
    assert info.value.reference == "file:absent"
    (isolated_cwd / "dangling").symlink_to(isolated_cwd / "absent")
    with pytest.raises(MissingSecretError):
        resolve_secret({"file": "dangling"}, SCOPE)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "too large", "symlink to /dev/zero"])
def test_the_runtime_refuses_bad_file_secrets_without_hanging(
    isolated_cwd: Path, kind: str
) -> None:
    from gwconfig.runtime import ConfigLoader
    from runtime_servers import write_compiled

    target = _special(isolated_cwd, kind)
    path = write_compiled(isolated_cwd / "compiled.json", [_provider({"file": target})])
    (key,) = ConfigLoader(path).load_config_as_object().providers["p"].api_keys
    assert key.value is None
    assert key.error is not None and SPECIAL[kind] in key.error
