"""validate shares per-file work with a forked child on large inputs: same answers as alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwconfig.manifests import pipeline, run, validate_path


def provider(pid: str, models: list[str], extra: str = "") -> str:
    """A provider manifest."""
    text = f"apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: {pid}\nprovider_type: openai\n"
    text += "models:\n" + "".join(f"  - model_id: {m}\n    aliases: [{m}-alias]\n" for m in models)
    return text + extra


def corpus(root: Path) -> None:
    """Many files with problems spread over them, some needing positions in other files."""
    d = root / "providers.d"
    d.mkdir()
    for i in range(24):
        (d / f"p{i:02d}.yaml").write_text(provider(f"p{i}", [f"m{i}", f"n{i}"]))
    (d / "dup-id.yaml").write_text(provider("p3", ["x"]))
    (d / "dup-alias.yaml").write_text(provider("q", ["m5"]))
    (d / "bad.yaml").write_text(provider("r", ["y"], extra="colour: blue\n"))
    (d / "yaml-error.yaml").write_text("a: [1\n")
    (d / "gateway.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Gateway\nroutes:\n"
        "  - name: a\n    targets: [{model: p1/m1}, {model: p2/nope}, {model: zz/m}]\n"
        "    fallbacks: [a]\n"
    )


def test_parallel_validate_equals_single_process(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus(isolated_cwd)
    expected = run("providers.d").diagnostics
    assert len(expected) >= 6
    forks: list[int] = []
    original = pipeline._in_child

    def spy(work):  # type: ignore[no-untyped-def]
        forks.append(1)
        return original(work)

    monkeypatch.setattr(pipeline, "_in_child", spy)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "_can_fork", lambda: True)
    assert validate_path("providers.d") == expected
    assert forks == [1]
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 10**12)
    assert validate_path("providers.d") == expected


def test_failed_child_falls_back_to_this_process(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus(isolated_cwd)
    expected = run("providers.d").diagnostics

    class Broken:
        def result(self) -> None:
            return None

    monkeypatch.setattr(pipeline, "_in_child", lambda work: Broken())
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "_can_fork", lambda: True)
    assert validate_path("providers.d") == expected
