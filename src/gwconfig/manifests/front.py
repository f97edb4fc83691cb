"""The front end's entry points: :func:`run`, :func:`compile_path`, :func:`validate_run`.

Imported from :mod:`gwconfig.manifests` (the package imports this module on first use).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gwconfig.entities import consumer_key
from gwconfig.errors import Diagnostic, ManifestError
from gwconfig.manifests.checks import add_sources, gateway_sources
from gwconfig.manifests.compile import CompiledConfig, SourceRef, assemble_config
from gwconfig.manifests.pipeline import FrontResult, run_front
from gwconfig.perf.gcpause import gc_paused


@dataclass(frozen=True)
class CompileResult:
    """The outcome of one front-end run: the config (when built and clean), every diagnostic."""

    config: CompiledConfig | None
    diagnostics: list[Diagnostic]
    files: int
    documents: int
    providers: int = 0
    models: int = 0
    routes: int = 0
    consumers: int = 0

    @property
    def ok(self) -> bool:
        """True when no diagnostic is an error."""
        return not any(d.severity == "error" for d in self.diagnostics)


def _build(front: FrontResult) -> CompiledConfig:
    sources: dict[str, SourceRef] = {}
    for _, _, path, _, lines in front.compiled:
        add_sources(sources, path, lines)
    gateway = front.gateways[0] if front.gateways else None
    if gateway is not None:
        gateway_sources(gateway[0], gateway[1], sources)
    for c, doc in front.consumers:
        sources.setdefault(consumer_key(c.name), SourceRef(doc.path, doc.template_line(doc.line)))
    providers = [canonical for _, _, _, canonical, _ in front.compiled]
    consumers = [c for c, _ in front.consumers]
    return assemble_config(providers, gateway[0] if gateway else None, sources, consumers)


def _result(front: FrontResult, config: CompiledConfig | None) -> CompileResult:
    return CompileResult(
        config,
        front.diagnostics,
        front.files,
        front.documents,
        providers=len(front.infos),
        models=sum(len(i.models) for i in front.infos),
        routes=sum(len(g.routes) for g, _ in front.gateways[:1]),
        consumers=len({c.name for c, _ in front.consumers}),
    )


def run(
    path: str | Path = "providers.d",
    *,
    env: str | None = None,
    build: bool = True,
    alongside: Callable[[], None] | None = None,
) -> CompileResult:
    """Load, validate, cross-check and (when clean and ``build``) compile ``path``.

    Large inputs are shared with a second process, like :func:`validate_run`; each process
    brings back its valid providers already in canonical form. ``alongside``: see
    :func:`compile_path`.
    """
    with gc_paused():  # the documents and manifests are gone before the collector runs again
        return _run(Path(path), env, build, alongside)


def _run(
    root: Path, env: str | None, build: bool, alongside: Callable[[], None] | None
) -> CompileResult:
    front = run_front(
        root,
        env=env,
        positions=False,
        keep=False,
        parallel=True,
        build=build,
        alongside=alongside,
    )
    return _result(front, _build(front) if front.clean and build else None)


def compile_path(
    path: str | Path = "providers.d",
    *,
    env: str | None = None,
    alongside: Callable[[], None] | None = None,
) -> CompiledConfig:
    """Compile the manifests under ``path``; raise ManifestError carrying ALL diagnostics.

    ``alongside`` is other work of the caller's (``plan`` opens the database), run once, in
    this process, while a forked child parses; the child then takes a larger share of the
    files. It must not raise (keep its exception for later); without a second process it runs
    before parsing.
    """
    result = run(path, env=env, alongside=alongside)
    if result.config is None or not result.ok:
        raise ManifestError(result.diagnostics)
    return result.config


def _sealed_diagnostics(config: CompiledConfig, root: Path) -> list[Diagnostic]:
    try:  # cryptography is imported only for manifests that hold sealed references
        from gwconfig.secrets.sealing import check_sealed_references
    except ModuleNotFoundError as exc:  # the sealing module ships with gwconfig; be tolerant
        if exc.name != "gwconfig.secrets.sealing":
            raise
        return []
    base = root if root.is_dir() else root.parent
    return list(check_sealed_references(config, search_dirs=[base]))


def validate_path(path: str | Path = "providers.d", *, env: str | None = None) -> list[Diagnostic]:
    """Every problem of the manifests under ``path`` (sorted), sealed references included."""
    return validate_run(path, env=env).diagnostics


def validate_run(path: str | Path = "providers.d", *, env: str | None = None) -> CompileResult:
    """Like :func:`run` plus the offline check of sealed references; compiles only for that.

    Positions are computed only for documents that need them, and large inputs are shared with
    a second process (see :mod:`gwconfig.manifests.pipeline`).
    """
    front = run_front(Path(path), env=env, positions=False, keep=False, parallel=True)
    if not (front.clean and front.has_sealed):
        return _result(front, None)
    full = run(path, env=env)
    if full.config is None:
        return full
    extra = _sealed_diagnostics(full.config, Path(path))
    diags = sorted(set(full.diagnostics) | set(extra))
    return CompileResult(
        None, diags, full.files, full.documents, full.providers, full.models, full.routes,
        full.consumers,
    )  # fmt: skip
