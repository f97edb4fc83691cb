"""gwconfig: declarative GitOps configuration compiler for an LLM gateway.

Seed-compatible names are importable from here; heavy modules load on first access.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ProviderRepository": "gwconfig.seed.repository",
    "ProviderService": "gwconfig.seed.service",
    "Provider": "gwconfig.db.models",
    "ProviderModel": "gwconfig.db.models",
    "ApiKey": "gwconfig.db.models",
    "ConnectionParameter": "gwconfig.db.models",
    "ConfigRevision": "gwconfig.db.models",
    "AuditEvent": "gwconfig.db.models",
    "CompiledConfig": "gwconfig.manifests.compile",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gwconfig' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
