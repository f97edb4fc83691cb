"""Secret references -> plaintext: ``{env: ...}``, ``{file: ...}`` and sealed values.

What a reference may point at is decided by :mod:`gwconfig.secrets.refs`; sealed values are
opened by :mod:`gwconfig.secrets.sealing` (imported only when one is met).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from gwconfig.entities import SealedScope, SecretScope
from gwconfig.errors import SecretError
from gwconfig.secrets.refs import env_reference_problem, read_secret_file


class MissingSecretError(SecretError):
    """A referenced environment variable or file does not exist."""

    def __init__(self, message: str, *, reference: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reference = reference


def describe_reference(ref: Mapping[str, str]) -> str:
    """A printable, non-secret description of a reference, e.g. ``env:OPENAI_API_KEY``."""
    if len(ref) != 1:
        return "invalid secret reference"
    kind, value = next(iter(ref.items()))
    if kind == "sealed":
        return f"sealed:{value[:18]}..."
    return f"{kind}:{value}"


def resolve_secret(ref: Mapping[str, str], scope: SecretScope | SealedScope) -> str:
    """The plaintext behind a secret reference (``env``, ``file`` or ``sealed``) for ``scope``.

    ``scope`` is a :class:`SecretScope` or its sealed form (:attr:`SecretScope.sealed`).
    """
    if isinstance(scope, SecretScope):
        scope = scope.sealed
    if len(ref) != 1:
        raise SecretError(
            "a secret reference needs exactly one of 'env', 'file' or 'sealed'",
        )
    kind, target = next(iter(ref.items()))
    where = f"{scope[0]}/{scope[1]}@{scope[2]}"
    if kind == "env":
        problem = env_reference_problem(target)
        if problem is not None:
            raise SecretError(f"{problem} (secret for {where})")
        value = os.environ.get(target)
        if value is None:
            raise MissingSecretError(
                f"environment variable {target} is not set (secret for {where})",
                reference=f"env:{target}",
                hint=f"export {target}=... before running this command",
            )
        if value == "":
            raise SecretError(f"environment variable {target} is empty (secret for {where})")
        return value
    if kind == "file":
        try:
            return read_secret_file(target, where)
        except FileNotFoundError as exc:
            raise MissingSecretError(
                f"secret file {target} does not exist (secret for {where})",
                reference=f"file:{target}",
            ) from exc
    if kind == "sealed":  # cryptography is imported only for sealed references
        from gwconfig.secrets.sealing import unseal

        return unseal(target, scope)
    raise SecretError(f"unknown secret reference kind {kind!r} (use env, file or sealed)")
