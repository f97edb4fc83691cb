"""The compiler front end: manifest files -> documents -> schema -> checks -> CompiledConfig.

Public entry points: :func:`compile_path` (raises :class:`~gwconfig.errors.ManifestError` with
every diagnostic of the run), :func:`validate_path` (returns the diagnostics, sorted),
:func:`validate_run` and :func:`run` (a :class:`CompileResult`). They live in
:mod:`gwconfig.manifests.front`, imported on first use: the commands and servers that import one
light module of the package (limits, egress, diagnostics) do not pay for building the pydantic
manifest models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gwconfig.errors import Diagnostic, ManifestError

if TYPE_CHECKING:
    from gwconfig.manifests.front import (
        CompileResult,
        compile_path,
        run,
        validate_path,
        validate_run,
    )

__all__ = [
    "CompileResult",
    "Diagnostic",
    "ManifestError",
    "compile_path",
    "run",
    "validate_path",
    "validate_run",
]

_FRONT = {"CompileResult", "compile_path", "run", "validate_path", "validate_run"}


def __getattr__(name: str) -> Any:
    if name in _FRONT:
        from gwconfig.manifests import front

        return getattr(front, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
