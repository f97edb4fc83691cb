"""validate shares per-file work with a forked child on large inputs: same answers as alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gwconfig.errors import ManifestError
from gwconfig.manifests import compile_path, pipeline, run, validate_path
from gwconfig.manifests.checks import gateway_sources, provider_sources
from gwconfig.manifests.compile import SourceRef


def provider(pid: str, models: list[str], extra: str = "") -> str:
    """A provider manifest."""
    text = f"apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: {pid}\nprovider_type: openai\n"
    text += "models:\n" + "".join(f"  - model_id: {m}\n    aliases: [{m}-alias]\n" for m in models)
    return text + extra


def corpus(root: Path, *, broken: bool = False) -> None:
    """Many files with problems spread over them, some needing positions in other files.

    ``broken`` adds a file that does not parse (the checks across files are then skipped).
    """
    d = root / "providers.d"
    d.mkdir()
    if broken:
        (d / "yaml-error.yaml").write_text("a: [1\n")
    for i in range(24):
        (d / f"p{i:02d}.yaml").write_text(provider(f"p{i}", [f"m{i}", f"n{i}"]))
    (d / "dup-id.yaml").write_text(provider("p3", ["x"]))
    (d / "dup-alias.yaml").write_text(provider("q", ["m5"]))
    (d / "bad.yaml").write_text(provider("r", ["y"], extra="colour: blue\n"))
    (d / "yaml-trap.yaml").write_text("a: 1\na: 2\n")
    (d / "gateway.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Gateway\nroutes:\n"
        "  - name: a\n    targets: [{model: p1/m1}, {model: p2/nope}, {model: zz/m}]\n"
        "    fallbacks: [a]\n"
    )


def fork_always(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the pipeline hand work to a child whatever its size; one entry a child started."""
    forks: list[int] = []
    original = pipeline._in_child

    def spy(work):  # type: ignore[no-untyped-def]
        forks.append(1)
        return original(work)

    monkeypatch.setattr(pipeline, "_in_child", spy)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "_can_fork", lambda: True)
    return forks


@pytest.mark.parametrize("broken", [False, True])
def test_parallel_validate_equals_single_process(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    corpus(isolated_cwd, broken=broken)
    expected = run("providers.d").diagnostics
    assert len(expected) >= (3 if broken else 6)
    forks = fork_always(monkeypatch)
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

    fork_always(monkeypatch)
    monkeypatch.setattr(pipeline, "_in_child", lambda work: Broken())
    assert validate_path("providers.d") == expected


def clean_corpus(root: Path) -> None:
    """Valid manifests of every flavour: fast path, reference loader, template, flow items."""
    d = root / "providers.d"
    d.mkdir()
    for i in range(12):
        keys = (
            f"api_keys:\n  - name: default\n    value:\n      env: KEY_{i}\n"
            "  - {name: other, environment: prod, value: {env: OTHER}}\n"
        )
        params = "connection:\n  parameters:\n    - name: org\n      value: {env: ORG}\n"
        (d / f"p{i:02d}.yaml").write_text(provider(f"p{i}", [f"m{i}", f"n{i}"], keys + params))
    (d / "anchors.yaml").write_text(
        provider("anch", ["a1", "a2"], "api_keys:\n  - name: k\n    value: &v {env: A}\n")
    )
    (d / "tmpl.yaml.j2").write_text(provider("tmpl", ["{{ 't' ~ 1 }}", "t2"]))
    (d / "gateway.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Gateway\ndefault_route: a\nroutes:\n"
        "  - name: a\n    targets: [{model: p1/m1}, {model: p2/n2}]\n    fallbacks: [b]\n"
        "  - {name: b, targets: [{model: tmpl/t1}]}\n"
    )


def test_parallel_compile_equals_single_process(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_corpus(isolated_cwd)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 10**12)
    alone = compile_path("providers.d")
    assert "tmpl/t1" in alone.sources and "anch/key:k@default" in alone.sources
    # Sources equal what documents parsed with every position give.
    front = pipeline.run_front(
        Path("providers.d"), env=None, positions=True, keep=True, parallel=False
    )
    expected: dict[str, SourceRef] = {}
    for p, doc in front.providers:
        provider_sources(p, doc, expected)
    gateway_sources(*front.gateways[0], expected)
    assert list(alone.sources.items()) == list(expected.items())
    forks = fork_always(monkeypatch)
    shared = compile_path("providers.d")
    assert forks == [1]
    assert shared.to_json_bytes() == alone.to_json_bytes()
    assert shared.content_hash == alone.content_hash
    assert list(shared.sources.items()) == list(alone.sources.items())


@pytest.mark.parametrize("broken", [False, True])
def test_parallel_compile_reports_what_a_single_process_reports(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    corpus(isolated_cwd, broken=broken)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 10**12)
    with pytest.raises(ManifestError) as alone:
        compile_path("providers.d")
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "_can_fork", lambda: True)
    with pytest.raises(ManifestError) as shared:
        compile_path("providers.d")
    assert shared.value.diagnostics == alone.value.diagnostics
    assert len(alone.value.diagnostics) >= (3 if broken else 6)


def test_a_child_that_dies_midway_leaves_its_share_to_this_process(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_corpus(isolated_cwd)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 10**12)
    alone = compile_path("providers.d")
    parent = os.getpid()
    original = pipeline._SharedQueue.take
    died_r, died_w = os.pipe()  # the child writes one byte just before it dies

    def take(self: pipeline._SharedQueue):  # type: ignore[no-untyped-def]
        for n, item in enumerate(original(self)):
            if os.getpid() != parent and n == 3:
                os.write(died_w, b"x")
                os._exit(1)  # the child took some batches and dies with them
            yield item

    def wait_for_the_child_to_die() -> None:
        # This process takes nothing from the queue before the child has died with its share.
        os.close(died_w)
        signals.append(os.read(died_r, 1))
        os.close(died_r)

    signals: list[bytes] = []
    monkeypatch.setattr(pipeline._SharedQueue, "take", take)
    monkeypatch.setattr(pipeline, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(pipeline, "_can_fork", lambda: True)
    shared = compile_path("providers.d", alongside=wait_for_the_child_to_die)
    assert signals == [b"x"]  # the child did die midway
    assert shared.to_json_bytes() == alone.to_json_bytes()
    assert list(shared.sources.items()) == list(alone.sources.items())


@pytest.mark.parametrize("fork", [True, False])
def test_alongside_runs_once_in_this_process(
    isolated_cwd: Path, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    clean_corpus(isolated_cwd)
    alone = compile_path("providers.d")
    monkeypatch.setattr(pipeline, "_can_fork", lambda: fork)
    calls: list[int] = []
    shared = compile_path("providers.d", alongside=lambda: calls.append(os.getpid()))
    assert calls == [os.getpid()]
    assert shared.to_json_bytes() == alone.to_json_bytes()
    calls.clear()
    (isolated_cwd / "providers.d" / "bad.yaml").write_text("kind: Provider\nprovider_id: [\n")
    with pytest.raises(ManifestError):
        compile_path("providers.d", alongside=lambda: calls.append(os.getpid()))
    assert calls == [os.getpid()]


def test_shared_queue_gives_every_item_to_exactly_one_process() -> None:
    import pickle

    from gwconfig.perf.forking import fork_call

    items = [(i, Path(f"f{i}.yaml"), f"f{i}.yaml") for i in range(3000)]  # > MAX_BATCHES
    sizes = [(i * 7919) % 1000 for i in range(3000)]
    queue = pipeline._SharedQueue(items, sizes)
    assert len(queue.batches) == pipeline._SharedQueue.MAX_BATCHES
    assert sizes[queue.batches[0][0][0]] == max(sizes)  # the biggest file is taken first
    # Each process takes its first batch in turn (child, then parent), each told by the other
    # through a pipe; then both drain the queue at once. No timing decides who gets what.
    child_took_r, child_took_w = os.pipe()
    parent_took_r, parent_took_w = os.pipe()

    def child() -> bytes:
        os.close(parent_took_w)
        batches = queue.take()
        taken = [next(batches)[0]]  # reads exactly one batch number
        os.write(child_took_w, b"x")
        assert os.read(parent_took_r, 1) == b"x"
        taken.extend(item[0] for item in batches)
        return pickle.dumps(taken)

    pending = fork_call(child)
    os.close(child_took_w)  # a child that dies makes the read below return b"", not hang
    os.close(parent_took_r)
    assert os.read(child_took_r, 1) == b"x"
    batches = queue.take()
    mine = [next(batches)[0]]
    os.write(parent_took_w, b"x")
    mine.extend(item[0] for item in batches)
    queue.close()
    os.close(parent_took_w)
    os.close(child_took_r)
    payload = pending.result()
    assert payload is not None
    theirs = pickle.loads(payload)
    assert mine and theirs
    assert sorted(mine + theirs) == list(range(3000))
