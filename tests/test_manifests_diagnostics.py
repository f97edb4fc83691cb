"""Diagnostics a new user meets: broken files, indentation mistakes, a wrong path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from gwconfig.cli import cli
from gwconfig.errors import Diagnostic, ManifestError
from gwconfig.manifests import compile_path, validate_path
from gwconfig.manifests.yamlparse.loader import load_yaml
from manifest_texts import MOCK, gateway_routing_to

GATEWAY = gateway_routing_to("mock/mock-chat")


def tree(root: Path, files: dict[str, str | bytes]) -> None:
    d = root / "providers.d"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        path = d / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")


# -- a file that does not load hides nothing, and blames nobody else -----------------------------

BROKEN = {
    "syntax": ("mock.yaml", MOCK.replace("provider_type: mock", "provider_type: [mock")),
    "indentation": (
        "mock.yaml",
        MOCK.replace("provider_type: mock", "provider_type: mock\n  x: 1"),
    ),
    "tabs": ("mock.yaml", MOCK.replace("  - model_id", "\t- model_id")),
    "not-utf8": ("mock.yaml", MOCK.encode() + b"# \xff\n"),
    "nul": ("mock.yaml", MOCK.replace("mock-chat", "mock-\x00chat")),
    "alias-bomb": (
        "mock.yaml",
        MOCK
        + "x: &a [1]\n"
        + "".join(
            f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ),
    "template": ("mock.yaml.j2", MOCK + "{% if %}\n"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_file_that_does_not_load_skips_the_checks_across_files(
    isolated_cwd: Path, kind: str
) -> None:
    name, text = BROKEN[kind]
    tree(isolated_cwd, {"gateway.yaml": GATEWAY, name: text, "zz.yaml": "kind: Provider\n"})
    diags = validate_path("providers.d")
    messages = [d.format() for d in diags]
    assert not any("unknown provider" in m or "unknown route" in m for m in messages), messages
    errors = [d for d in diags if d.severity == "error"]
    assert errors and errors[0].path == f"providers.d/{name}"  # the cause comes first
    assert "providers.d/zz.yaml" in {d.path for d in errors}  # other files are still checked
    note = diags[-1]  # one note, after every error
    assert (note.severity, note.path) == ("note", f"providers.d/{name}")
    assert [d.severity for d in diags].count("note") == 1
    assert "checks across files" in note.message and "skipped" in note.message
    with pytest.raises(ManifestError) as info:
        compile_path("providers.d")
    assert info.value.diagnostics == diags
    result = CliRunner().invoke(cli, ["validate"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == f"{len(errors)} error{'s' * (len(errors) > 1)}"
    assert f"providers.d/{name}:1:1: note: checks across files" in result.stderr


def test_without_broken_files_the_checks_across_files_run(isolated_cwd: Path) -> None:
    tree(isolated_cwd, {"gateway.yaml": GATEWAY, "mock.yaml": MOCK.replace("mock-chat", "x")})
    (d,) = validate_path("providers.d")
    assert d.message == "route 'local-chat' targets unknown model 'mock-chat' of provider 'mock'"


def test_notes_sort_after_errors_and_count_as_nothing() -> None:
    note = Diagnostic("a.yaml", 1, 1, "skipped", severity="note")
    later = Diagnostic("z.yaml", 9, 9, "bad")
    assert sorted([note, later]) == [later, note]
    from gwconfig.manifests.diagnostics import to_github, to_json

    assert '"errors": 1' in to_json([note, later]) and '"warnings": 0' in to_json([note, later])
    assert to_github([note]).startswith("::notice file=a.yaml")


# -- indentation mistakes in words a person uses -------------------------------------------------

INDENTATION = [
    # (text, line, col, message)
    ("a: 1\nb:\n  c: 2\n   d: 3\n", 4, 5, "bad indentation or a stray ':'"),
    ("a: b: c\n", 1, 5, "bad indentation or a stray ':'"),
    ("a: x\n  b: y\n", 2, 4, "bad indentation or a stray ':'"),
    ("a:\n  b: 1\n c: 2\n", 3, 2, "bad indentation or a missing ':'"),
    ("a:\n  - x\n - y\n", 3, 2, "bad indentation or a missing ':'"),
    ("a: 1\n- x\n", 2, 1, "bad indentation or a missing ':'"),
    ("a: 1\nb\nc: 2\n", 2, 1, "a missing ':' after a key (or bad indentation)"),
    ("a:\n  b: 1\n  c 2\n  d: 3\n", 3, 3, "a missing ':' after a key (or bad indentation)"),
]


@pytest.mark.parametrize(("text", "line", "col", "message"), INDENTATION)
def test_indentation_errors_get_a_hint(text: str, line: int, col: int, message: str) -> None:
    _, diags = load_yaml(text, "f.yaml")
    (d,) = diags
    assert (d.line, d.col, d.message) == (line, col, f"invalid YAML: {message}")
    assert d.hint
    for wording in ("mapping values are not allowed", "expected key", "could not find"):
        assert wording not in d.message + d.hint


def test_an_indentation_hint_names_where_the_mapping_starts() -> None:
    _, (d,) = load_yaml("top:\n  a: 1\n  b: 2\n c: 3\n", "f.yaml")
    assert "line 1, column 1" in (d.hint or "")


# -- a wrong path --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "compile", "plan", "apply"])
def test_a_wrong_path_is_named_without_a_position(isolated_cwd: Path, command: str) -> None:
    tree(isolated_cwd, {"mock.yaml": MOCK})
    url = f"sqlite:///{isolated_cwd / 'db.sqlite'}"
    extra = ["--database-url", url] if command in ("plan", "apply") else []
    result = CliRunner().invoke(cli, [command, "provider.d", *extra])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: no such file or directory: provider.d\n  hint: did you mean 'providers.d'?\n"
    )
    assert not (isolated_cwd / "db.sqlite").exists()  # nothing was opened or created
    result = CliRunner().invoke(cli, [command, os.path.join("nowhere", "x.yaml"), *extra])
    assert (result.exit_code, result.stderr) == (
        1,
        "error: no such file or directory: nowhere/x.yaml\n",
    )
