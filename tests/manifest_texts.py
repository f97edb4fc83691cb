"""Manifests as YAML text, for the tests of the loader and its diagnostics (lines matter there).

``provider``/``gateway`` build documents, :func:`write` puts one under ``providers.d/``,
:func:`messages` reduces diagnostics to (path, line, message); :data:`MOCK` is a minimal
valid provider and :func:`gateway_routing_to` a Gateway with one route.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from gwconfig.errors import Diagnostic


def provider(pid: str, *models: str, extra: str = "") -> str:
    """A valid provider manifest with the given model ids."""
    text = f"""\
apiVersion: gwconfig/v1
kind: Provider
provider_id: {pid}
provider_type: openai
models:
"""
    for m in models:
        text += f"  - model_id: {m}\n"
    return text + extra


def gateway(routes: str, default: str | None = None) -> str:
    """A Gateway document with the given routes block."""
    head = "apiVersion: gwconfig/v1\nkind: Gateway\n"
    if default:
        head += f"default_route: {default}\n"
    return head + "routes:\n" + textwrap.indent(textwrap.dedent(routes), "  ")


def write(root: Path, name: str, text: str) -> None:
    """Write ``providers.d/name``."""
    path = root / "providers.d" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def messages(diags: list[Diagnostic]) -> list[tuple[str, int, str]]:
    """(path, line, message) of each diagnostic."""
    return [(d.path, d.line, d.message) for d in diags]


MOCK = """\
apiVersion: gwconfig/v1
kind: Provider
provider_id: mock
provider_type: mock
models:
  - model_id: mock-chat
"""


def gateway_routing_to(model: str) -> str:
    """A Gateway manifest whose one route, ``local-chat`` (the default), targets ``model``."""
    return (
        "apiVersion: gwconfig/v1\nkind: Gateway\ndefault_route: local-chat\nroutes:\n"
        f"  - name: local-chat\n    targets: [{{model: {model}}}]\n"
    )
