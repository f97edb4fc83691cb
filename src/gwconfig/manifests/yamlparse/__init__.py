"""Manifest YAML to documents with positions: a fast path and the reference loader.

:mod:`~gwconfig.manifests.yamlparse.fast` (with :mod:`~gwconfig.manifests.yamlparse.scalars`)
parses the plain block-style subset most manifests are written in and gives up on anything else;
:mod:`~gwconfig.manifests.yamlparse.loader` (PyYAML and a strict constructor) takes over then and
reports every error. Both produce the same documents and positions.
"""
