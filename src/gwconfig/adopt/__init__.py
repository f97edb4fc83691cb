"""Adopting existing configuration: the manifest writer shared by ``gwconfig dump`` and ``import``.

See :mod:`gwconfig.adopt.writer` (render canonical data to manifests, secrets sealed or as
``{env: NAME}`` references) and :mod:`gwconfig.adopt.tree` (write only what changed).
"""

from __future__ import annotations

from gwconfig.adopt.tree import WriteReport, write_tree
from gwconfig.adopt.writer import Rendered, SecretOutput, render_manifests, secret_output

__all__ = [
    "Rendered",
    "SecretOutput",
    "WriteReport",
    "render_manifests",
    "secret_output",
    "write_tree",
]
