"""Loading manifests: YAML hazards and schema errors become located diagnostics."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gwconfig.errors import Diagnostic, ManifestError, ManifestInputError
from gwconfig.manifests import compile_path, validate_path
from gwconfig.manifests.diagnostics import to_github

PROVIDER = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: openai
provider_type: openai
api_keys:
  - value: {env: OPENAI_API_KEY}
models:
  - model_id: gpt-4o
    context_window: 128000
    max_tokens: 16384
"""


def write(root: Path, name: str, text: str | bytes) -> Path:
    """Write a manifest file under ``root/providers.d``."""
    path = root / "providers.d" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def only(diags: list[Diagnostic]) -> Diagnostic:
    """The single diagnostic of a run."""
    assert len(diags) == 1, [d.format() for d in diags]
    return diags[0]


def test_clean_manifest_has_no_diagnostics(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER)
    assert validate_path("providers.d") == []


def test_unknown_field_names_line_and_suggests(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER.replace("max_tokens", "max_token"))
    d = only(validate_path("providers.d"))
    assert (d.path, d.line, d.col) == ("providers.d/openai.yaml", 10, 5)
    assert d.message == "unknown field 'max_token' in 'models'"
    assert d.hint == "did you mean 'max_tokens'?"
    assert d.format().startswith("providers.d/openai.yaml:10:5: error: unknown field")


def test_plain_secret_is_an_error_that_says_how(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER.replace("{env: OPENAI_API_KEY}", "sk-abc123"))
    d = only(validate_path("providers.d"))
    assert (d.line, d.col) == (6, 12)
    assert "plain value is not allowed" in d.message
    assert "sk-abc123" not in d.message
    assert d.hint is not None and "{env: VARIABLE_NAME}" in d.hint


def test_sensitive_parameter_must_be_a_reference(isolated_cwd: Path) -> None:
    text = PROVIDER + "connection:\n  parameters:\n    - name: token\n      value: abc\n"
    text += "      sensitive: true\n"
    write(isolated_cwd, "openai.yaml", text)
    d = only(validate_path("providers.d"))
    assert d.line == 13
    assert "parameter 'token' is sensitive" in d.message


def test_wrong_type_is_mapped_to_the_value(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER.replace("128000", "lots"))
    d = only(validate_path("providers.d"))
    assert (d.line, d.col) == (9, 21)
    assert d.message.startswith("models.context_window: ")


def test_missing_required_field(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER.replace("provider_type: openai\n", ""))
    d = only(validate_path("providers.d"))
    assert d.message == "missing required field 'provider_type'"
    assert d.line == 1


def test_duplicate_key(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER + "provider_type: anthropic\n")
    d = only(validate_path("providers.d"))
    assert (d.line, d.col) == (11, 1)
    assert d.message == "duplicate key 'provider_type' (first defined on line 4)"


def test_yaml11_boolean_where_a_string_is_meant(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER.replace("model_id: gpt-4o", "model_id: no"))
    d = only(validate_path("providers.d"))
    assert (d.line, d.col) == (8, 15)
    assert d.message == "'no' is read as the boolean false (YAML 1.1)"
    assert d.hint is not None and "quotes" in d.hint


def test_yaml11_boolean_where_a_boolean_is_meant(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER + "enabled: on\n")
    d = only(validate_path("providers.d"))
    assert (d.line, d.message) == (11, "'on' is read as the boolean true (YAML 1.1)")


def test_alias_bomb_is_refused_quickly(isolated_cwd: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    write(isolated_cwd, "bomb.yaml", "\n".join(lines) + "\n")
    d = only(validate_path("providers.d"))
    assert "alias bomb" in d.message
    assert d.path == "providers.d/bomb.yaml"


def test_recursive_alias(isolated_cwd: Path) -> None:
    write(isolated_cwd, "loop.yaml", "a: &a [1, *a]\n")
    d = only(validate_path("providers.d"))
    assert "recursive" in d.message


def test_tab_indentation(isolated_cwd: Path) -> None:
    write(isolated_cwd, "openai.yaml", PROVIDER.replace("  - model_id", "\t- model_id"))
    d = only(validate_path("providers.d"))
    assert (d.line, d.col, d.message) == (8, 1, "tab character in indentation")


def test_non_utf8_file(isolated_cwd: Path) -> None:
    write(isolated_cwd, "latin1.yaml", b"apiVersion: gwconfig/v1\ndescription: caf\xe9\n")
    d = only(validate_path("providers.d"))
    assert (d.line, d.col) == (2, 17)
    assert d.message == "file is not valid UTF-8 (byte 0xe9)"


def test_empty_file(isolated_cwd: Path) -> None:
    write(isolated_cwd, "empty.yaml", "# nothing here\n")
    d = only(validate_path("providers.d"))
    assert (d.path, d.line, d.message) == (
        "providers.d/empty.yaml",
        1,
        "file contains no documents",
    )


def test_empty_document_between_separators(isolated_cwd: Path) -> None:
    write(
        isolated_cwd,
        "openai.yaml",
        PROVIDER + "---\n---\n" + PROVIDER.replace("provider_id: openai", "provider_id: o2"),
    )
    d = only(validate_path("providers.d"))
    assert (d.line, d.message) == (12, "document is empty")


def test_document_that_is_not_a_mapping(isolated_cwd: Path) -> None:
    write(isolated_cwd, "list.yaml", "- a\n- b\n")
    d = only(validate_path("providers.d"))
    assert d.message.startswith("a manifest document must be a mapping")
    assert "got a list" in d.message


def test_unknown_kind_and_api_version(isolated_cwd: Path) -> None:
    write(isolated_cwd, "a.yaml", PROVIDER.replace("kind: Provider", "kind: Providr"))
    write(isolated_cwd, "b.yaml", PROVIDER.replace("gwconfig/v1", "gwconfig/v2"))
    a, b = validate_path("providers.d")
    assert (a.path, a.line, a.message, a.hint) == (
        "providers.d/a.yaml",
        2,
        "unknown kind 'Providr'",
        "did you mean 'Provider'?",
    )
    assert (b.path, b.line, b.message) == (
        "providers.d/b.yaml",
        1,
        "unsupported apiVersion 'gwconfig/v2'",
    )


def test_invalid_yaml_syntax(isolated_cwd: Path) -> None:
    write(isolated_cwd, "broken.yaml", "a: [1, 2\nb: 3\n")
    d = only(validate_path("providers.d"))
    assert d.message.startswith("invalid YAML: ")
    assert d.line == 2


def test_every_problem_is_reported_sorted(isolated_cwd: Path) -> None:
    write(isolated_cwd, "b.yaml", PROVIDER.replace("max_tokens", "max_token"))
    write(isolated_cwd, "a.yaml", PROVIDER.replace("provider_id: openai", "provider_id: a\nx: 1"))
    diags = validate_path("providers.d")
    assert [(d.path, d.line) for d in diags] == [
        ("providers.d/a.yaml", 4),
        ("providers.d/b.yaml", 10),
    ]
    with pytest.raises(ManifestError) as info:
        compile_path("providers.d")
    assert info.value.diagnostics == diags


def test_missing_path_and_empty_directory(isolated_cwd: Path) -> None:
    with pytest.raises(ManifestInputError, match=r"^no such file or directory: nowhere$"):
        validate_path("nowhere")
    (isolated_cwd / "empty").mkdir()
    empty = only(validate_path("empty"))
    assert empty.message == "no manifest files found"
    # about the directory as a whole: no made-up position in any format
    assert empty.format().startswith("empty: error: no manifest files found")
    assert to_github([empty]).startswith("::error file=empty,title=")


def test_unknown_provider_type_suggests(isolated_cwd: Path) -> None:
    write(
        isolated_cwd,
        "openai.yaml",
        PROVIDER.replace("provider_type: openai", "provider_type: opneai"),
    )
    d = only(validate_path("providers.d"))
    assert (d.line, d.col, d.message) == (4, 16, "unknown provider_type 'opneai'")
    assert d.hint == "did you mean 'openai'?"


def test_single_file_path(isolated_cwd: Path) -> None:
    path = write(isolated_cwd, "openai.yaml", PROVIDER)
    config = compile_path(path)
    assert [p["provider_id"] for p in config.data["providers"]] == ["openai"]


def test_numbers_json_cannot_hold(isolated_cwd: Path) -> None:
    text = PROVIDER.replace("128000", "99999999999999999999999") + "    parameters: {t: .inf}\n"
    write(isolated_cwd, "openai.yaml", text)
    a, b = validate_path("providers.d")
    assert (a.line, a.message) == (
        9,
        "the number 99999999999999999999999 is out of range (64-bit integers)",
    )
    assert (b.line, b.message) == (11, "'.inf' is not a finite number")


def test_unquoted_dates_stay_text(isolated_cwd: Path) -> None:
    text = PROVIDER + "    parameters:\n      deprecation_date: 2026-12-01\n"
    write(isolated_cwd, "openai.yaml", text)
    model = compile_path("providers.d").data["providers"][0]["models"][0]
    assert model["parameters"] == {"deprecation_date": "2026-12-01"}


def test_yaml11_base60_and_octal_numbers(isolated_cwd: Path) -> None:
    text = PROVIDER + "    parameters: {window: 12:30, mode: 0755}\n"
    write(isolated_cwd, "openai.yaml", text)
    a, b = validate_path("providers.d")
    assert (a.line, a.col, a.message) == (
        11,
        26,
        "'12:30' is read as the number 750 (base 60, YAML 1.1)",
    )
    assert b.message == "'0755' is read as the number 493 (octal, YAML 1.1)"
