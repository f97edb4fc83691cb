"""The compiler front end: manifest files -> documents -> schema -> checks -> CompiledConfig.

Public entry points: :func:`compile_path` (raises :class:`~gwconfig.errors.ManifestError` with
every diagnostic of the run) and :func:`validate_path` (returns the diagnostics, sorted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gwconfig.errors import Diagnostic, ManifestError

if TYPE_CHECKING:
    from gwconfig.compile import CompiledConfig, SourceRef
    from gwconfig.manifests.validation import Validated

__all__ = ["CompileResult", "Diagnostic", "ManifestError", "compile_path", "run", "validate_path"]


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

    @property
    def ok(self) -> bool:
        """True when no diagnostic is an error."""
        return not any(d.severity == "error" for d in self.diagnostics)


def _has_sealed(validated: Validated) -> bool:
    for p, _ in validated.providers:
        for k in p.api_keys:
            if k.value.sealed is not None:
                return True
        for c in p.connection.parameters:
            if getattr(c.value, "sealed", None) is not None:
                return True
    return False


def _front(
    path: str | Path, env: str | None, *, positions: bool = True
) -> tuple[int, int, Validated, list[Diagnostic]]:
    from gwconfig.manifests.checks import check_gateway, check_providers
    from gwconfig.manifests.loader import load_path
    from gwconfig.manifests.validation import validate_documents

    loaded = load_path(Path(path), env=env, positions=positions)
    diags = list(loaded.diagnostics)
    validated = validate_documents(loaded.documents, diags)
    diags.extend(validated.diagnostics)
    diags.extend(check_providers(validated))
    diags.extend(check_gateway(validated))
    return len(loaded.files), len(loaded.documents), validated, diags


def _build(validated: Validated) -> CompiledConfig:
    from gwconfig.compile import build_config
    from gwconfig.manifests.checks import gateway_sources, provider_sources

    sources: dict[str, SourceRef] = {}
    for p, doc in validated.providers:
        provider_sources(p, doc, sources)
    gateway = validated.gateways[0] if validated.gateways else None
    if gateway is not None:
        gateway_sources(gateway[0], gateway[1], sources)
    return build_config(
        (p for p, _ in validated.providers), gateway[0] if gateway else None, sources
    )


def run(
    path: str | Path = "providers.d", *, env: str | None = None, build: bool = True
) -> CompileResult:
    """Load, validate, cross-check and (when clean and ``build``) compile ``path``."""
    files, documents, validated, diags = _front(path, env)
    clean = not any(d.severity == "error" for d in diags)
    config = _build(validated) if clean and build else None
    return CompileResult(
        config,
        sorted(set(diags)),
        files,
        documents,
        providers=len(validated.providers),
        models=sum(len(p.models) for p, _ in validated.providers),
        routes=sum(len(g.routes) for g, _ in validated.gateways[:1]),
    )


def compile_path(path: str | Path = "providers.d", *, env: str | None = None) -> CompiledConfig:
    """Compile the manifests under ``path``; raise ManifestError carrying ALL diagnostics."""
    result = run(path, env=env)
    if result.config is None or not result.ok:
        raise ManifestError(result.diagnostics)
    return result.config


def _sealed_diagnostics(config: CompiledConfig, root: Path) -> list[Diagnostic]:
    try:
        from gwconfig.sealing import check_sealed_references
    except ModuleNotFoundError as exc:  # the sealing module ships with gwconfig; be tolerant
        if exc.name != "gwconfig.sealing":
            raise
        return []
    base = root if root.is_dir() else root.parent
    return list(check_sealed_references(config, search_dirs=[base]))


def validate_path(path: str | Path = "providers.d", *, env: str | None = None) -> list[Diagnostic]:
    """Every problem of the manifests under ``path`` (sorted), sealed references included."""
    return validate_run(path, env=env).diagnostics


def validate_run(path: str | Path = "providers.d", *, env: str | None = None) -> CompileResult:
    """Like :func:`run` plus the offline check of sealed references; compiles only for that."""
    # Positions are computed only for documents that turn out to need them.
    files, documents, validated, diags = _front(path, env, positions=False)
    clean = not any(d.severity == "error" for d in diags)
    if clean and _has_sealed(validated):
        diags.extend(_sealed_diagnostics(_build(validated), Path(path)))
    return CompileResult(
        None,
        sorted(set(diags)),
        files,
        documents,
        providers=len(validated.providers),
        models=sum(len(p.models) for p, _ in validated.providers),
        routes=sum(len(g.routes) for g, _ in validated.gateways[:1]),
    )
