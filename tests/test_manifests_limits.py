"""Limits of manifest input: file and total sizes, links out of the root, values echoed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gwconfig.cli import cli
from gwconfig.errors import ConfigurationError, Diagnostic, ManifestError, ManifestInputError
from gwconfig.manifests import compile_path, validate_path
from gwconfig.manifests.limits import MIB, ReadProblem, read_limited

MOCK = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: {pid}
provider_type: mock
models:
  - model_id: chat
"""


def write(root: Path, name: str, text: str) -> Path:
    """Write a file under ``root/providers.d``."""
    path = root / "providers.d" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def padded(pid: str, size: int) -> str:
    """A valid provider manifest of exactly ``size`` bytes (a comment fills it up)."""
    text = MOCK.format(pid=pid)
    filler = size - len(text) - 3
    assert filler >= 0
    return text + "# " + "x" * filler + "\n"


def errors(diags: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity == "error"]


# -- the size of one file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "limit", "ok"),
    [
        (2048, "1KiB", False),  # over the limit
        (1024, "1KiB", True),  # exactly at the limit
        (1025, "1024", False),  # one byte over, the limit in bytes
        (2048, "4KiB", True),  # a raised limit
        (3 * 1024, "2k", False),  # units: k = KiB
        (3 * 1024, "1M", True),
    ],
)
@pytest.mark.parametrize("name", ["big.yaml", "big.yml", "big.yaml.j2"])
def test_file_size_limit(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, size: int, limit: str, ok: bool, name: str
) -> None:
    write(isolated_cwd, "small.yaml", MOCK.format(pid="small"))
    write(isolated_cwd, name, padded("big", size))
    monkeypatch.setenv("GWCONFIG_MAX_FILE_SIZE", limit)
    diags = validate_path("providers.d")
    if ok:
        assert diags == []
        return
    (d,) = errors(diags)
    assert (d.path, d.line, d.col) == (f"providers.d/{name}", 1, 1)
    assert d.message.startswith("file is ")
    assert "over the limit of" in d.message
    assert d.hint is not None and "GWCONFIG_MAX_FILE_SIZE" in d.hint


def test_default_file_limit_is_checked_before_reading(isolated_cwd: Path) -> None:
    write(isolated_cwd, "ok.yaml", MOCK.format(pid="ok"))
    with (isolated_cwd / "providers.d" / "huge.yaml").open("wb") as fh:
        fh.truncate(50 * MIB)  # sparse: never read, refused on its size
    (d,) = errors(validate_path("providers.d"))
    assert d.format() == (
        "providers.d/huge.yaml:1:1: error: file is 50 MiB, over the limit of 8 MiB for a "
        "manifest file\n  hint: raise the limit with GWCONFIG_MAX_FILE_SIZE "
        "(e.g. GWCONFIG_MAX_FILE_SIZE=50MiB)"
    )


def test_the_limit_holds_while_reading_a_file_whose_size_lies(tmp_path: Path) -> None:
    status = Path("/proc/self/status")  # a regular file that says it is empty
    if not status.exists() or status.stat().st_size != 0:
        pytest.skip("needs Linux /proc")
    with pytest.raises(ReadProblem, match="grew while being read"):
        read_limited(status, 100)
    assert len(read_limited(status, 1 * MIB)) > 100
    regular = tmp_path / "a.yaml"
    regular.write_bytes(b"a: 1\n")
    assert read_limited(regular, 5) == b"a: 1\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_not_waited_on(isolated_cwd: Path) -> None:
    write(isolated_cwd, "ok.yaml", MOCK.format(pid="ok"))
    os.mkfifo(isolated_cwd / "providers.d" / "pipe.yaml")
    (d,) = errors(validate_path("providers.d"))
    assert (d.path, d.line, d.message) == ("providers.d/pipe.yaml", 1, "not a regular file")


def test_values_file_has_the_same_limit(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated_cwd, "t.yaml.j2", MOCK.format(pid="{{ vars.pid }}"))
    values = isolated_cwd / "environments" / "dev.yaml"
    values.parent.mkdir()
    values.write_text("pid: dev\n# " + "x" * 2000 + "\n")
    monkeypatch.setenv("GWCONFIG_MAX_FILE_SIZE", "1KiB")
    d = validate_path("providers.d", env="dev")[0]
    assert d.path == "environments/dev.yaml" and "over the limit" in d.message
    monkeypatch.setenv("GWCONFIG_MAX_FILE_SIZE", "4KiB")
    assert validate_path("providers.d", env="dev") == []


def test_total_size_limit(isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(4):
        write(isolated_cwd, f"p{i}.yaml", padded(f"p{i}", 1024))
    monkeypatch.setenv("GWCONFIG_MAX_TOTAL_SIZE", "3KiB")
    with pytest.raises(ManifestInputError, match="4 KiB together, over the limit of 3 KiB") as info:
        validate_path("providers.d")
    assert info.value.hint is not None and "GWCONFIG_MAX_TOTAL_SIZE" in info.value.hint
    monkeypatch.setenv("GWCONFIG_MAX_TOTAL_SIZE", "4KiB")
    assert validate_path("providers.d") == []


@pytest.mark.parametrize("value", ["lots", "-1", "0", "8 TB", "1.5M"])
@pytest.mark.parametrize("var", ["GWCONFIG_MAX_FILE_SIZE", "GWCONFIG_MAX_TOTAL_SIZE"])
def test_a_bad_limit_is_a_clear_error(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    write(isolated_cwd, "ok.yaml", MOCK.format(pid="ok"))
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=f"{var}=.* is not a size"):
        validate_path("providers.d")


def test_every_command_that_reads_manifests_shares_the_limit(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gwconfig.reconcile import commands
    from gwconfig.reconcile.plan import PlanOptions

    write(isolated_cwd, "big.yaml", padded("big", 2048))
    monkeypatch.setenv("GWCONFIG_MAX_FILE_SIZE", "1KiB")
    for args in (["validate"], ["compile"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        assert "providers.d/big.yaml:1:1: error: file is 2 KiB, over the limit" in result.stderr
    with pytest.raises(ManifestError, match="over the limit"):  # what plan and apply run first
        commands.plan("providers.d", "sqlite:///nowhere/db.sqlite", PlanOptions())
    monkeypatch.setenv("GWCONFIG_MAX_FILE_SIZE", "2KiB")
    assert compile_path("providers.d").data["providers"]


# -- symbolic links ------------------------------------------------------------------------------


def _outside(tmp: Path) -> Path:
    out = tmp / "elsewhere"
    out.mkdir(exist_ok=True)
    (out / "other.yaml").write_text(MOCK.format(pid="other"))
    return out


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("passwd.yaml", lambda tmp: Path("/etc/passwd")),
        ("other.yaml", lambda tmp: _outside(tmp) / "other.yaml"),
        ("relative.yaml", lambda tmp: Path("../elsewhere/other.yaml")),
        ("dir", lambda tmp: _outside(tmp)),
        ("nested/deeper", lambda tmp: _outside(tmp)),
        ("dangling.yaml", lambda tmp: tmp / "missing.yaml"),
    ],
)
def test_links_pointing_outside_are_errors(isolated_cwd: Path, name: str, target) -> None:  # type: ignore[no-untyped-def]
    write(isolated_cwd, "ok.yaml", MOCK.format(pid="ok"))
    _outside(isolated_cwd)
    link = isolated_cwd / "providers.d" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target(isolated_cwd))
    diags = validate_path("providers.d")
    (d,) = errors(diags)
    assert (d.path, d.line) == (f"providers.d/{name}", 1)
    assert (
        d.message.startswith("symbolic link to ") and "outside the manifest directory" in d.message
    )
    assert "root:" not in d.format() and "other" not in d.message.split(" to ")[0]
    with pytest.raises(ManifestError):
        compile_path("providers.d")


def test_links_inside_the_root_are_fine(isolated_cwd: Path) -> None:
    write(isolated_cwd, "real/a.yaml", MOCK.format(pid="a"))
    write(isolated_cwd, "templates/b.txt", MOCK.format(pid="b"))
    d = isolated_cwd / "providers.d"
    (d / "b.yaml").symlink_to("templates/b.txt")  # a link to a file inside: read
    (d / "again").symlink_to("real")  # a link to a directory inside: its target is read once
    assert validate_path("providers.d") == []
    config = compile_path("providers.d")
    assert sorted(p["provider_id"] for p in config.data["providers"]) == ["a", "b"]


def test_a_root_given_as_a_link_is_followed(isolated_cwd: Path) -> None:
    real = _outside(isolated_cwd)
    (isolated_cwd / "providers.d").symlink_to(real)
    assert validate_path("providers.d") == []
    single = isolated_cwd / "one.yaml"
    single.symlink_to(real / "other.yaml")
    assert validate_path("one.yaml") == []


# -- values a message repeats --------------------------------------------------------------------

LONG = "Q" * 5000
HEADER = "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: p\nprovider_type: mock\n"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"{LONG}\n", id="document-is-a-string"),
        pytest.param(f"'{LONG}\n\n  second line'\n", id="document-is-a-multiline-string"),
        pytest.param(f"apiVersion: gwconfig/v1\nkind: {LONG}\n", id="unknown-kind"),
        pytest.param(f"apiVersion: {LONG}\nkind: Provider\n", id="api-version"),
        pytest.param(f"{HEADER}{LONG}: 1\n", id="unknown-field"),
        pytest.param(f"{HEADER}{LONG[:90]}Z{LONG}: 1\n", id="unknown-field-near-a-field"),
        pytest.param(f"{HEADER}models:\n  - model_id: m\n    model_type: {LONG}\n", id="enum"),
        pytest.param(f"{HEADER}models:\n  - model_id: m\n    context_window: {LONG}\n", id="int"),
        pytest.param(f"{HEADER}models:\n  - model_id: m\n    enabled: {LONG}\n", id="bool"),
        pytest.param(f"{HEADER}tags: {LONG}\n", id="list"),
        pytest.param(HEADER.replace("p\n", f"{LONG}!\n", 1), id="pattern"),
        pytest.param(HEADER.replace("mock", LONG), id="provider-type"),
        pytest.param(f"{HEADER}api_keys:\n  - value: {LONG}\n", id="plain-secret"),
        pytest.param(
            f"{HEADER}connection:\n  headers:\n    ? {LONG.lower()}\n    : [1]\n", id="map-key"
        ),
        pytest.param(
            f"{HEADER}x: 1\nx: {LONG}\n? {LONG}\n: 1\n? {LONG}\n: 2\n", id="duplicate-key"
        ),
        pytest.param(f"{HEADER}x: !{LONG} 1\n", id="tag"),
        pytest.param(f"{HEADER}x: {'9' * 5000}\n", id="huge-integer"),
        pytest.param(f"{HEADER}x: 0{'7' * 5000}\n", id="huge-octal"),
        pytest.param(f"{HEADER}x: {'1:' * 3000}1\n", id="huge-base-60"),
        pytest.param(
            "apiVersion: gwconfig/v1\nkind: Gateway\nroutes:\n"
            f"  - name: {LONG}\n    targets: [{{model: {LONG}/{LONG}}}]\n"
            f"    fallbacks: [{LONG}]\ndefault_route: {LONG}x\n",
            id="gateway",
        ),
    ],
)
def test_messages_never_repeat_a_long_value(isolated_cwd: Path, text: str) -> None:
    write(isolated_cwd, "long.yaml", text)
    write(isolated_cwd, "ok.yaml", MOCK.format(pid="ok"))
    diags = validate_path("providers.d")
    assert errors(diags)
    for d in diags:
        shown = d.format()
        assert len(shown) < 700, shown
        for c in "Qq97":
            assert c * 101 not in shown
        assert "\n" not in d.message
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert max(len(line) for line in result.stderr.splitlines()) < 500


def test_a_link_to_a_system_file_shows_none_of_it(isolated_cwd: Path) -> None:
    if not Path("/etc/passwd").exists() or sys.platform == "win32":
        pytest.skip("needs /etc/passwd")
    # the root itself may be anything the user names: a file read as YAML is clipped
    (isolated_cwd / "passwd.yaml").symlink_to("/etc/passwd")
    diags = validate_path("passwd.yaml")
    assert diags
    for d in diags:
        assert len(d.format()) < 400
        assert "nobody" not in d.format()  # a line near the end of the file
