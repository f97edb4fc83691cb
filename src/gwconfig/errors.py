"""The gwconfig error tree.

Every error a user can cause derives from :class:`GwconfigError`. The CLI translates them into
messages and exit codes in one place (``gwconfig.cli``); anything else escaping is a bug.
Messages never contain secret values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import total_ordering


class GwconfigError(Exception):
    """Root of every error gwconfig raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


@total_ordering
@dataclass(frozen=True)
class Diagnostic:
    """One problem found in the manifests, located at ``path:line:col`` (1-based).

    ``severity`` is ``error``, ``warning`` or ``note``. Diagnostics sort by file, line and
    column, notes (about the run as a whole) after everything else. Line 0 means the problem is
    about the path as a whole (a directory with no manifests): it is shown without a position.
    """

    path: str
    line: int
    col: int
    message: str
    severity: str = "error"
    hint: str | None = field(default=None, compare=False)

    def _key(self) -> tuple[bool, str, int, int, str, str]:
        return (
            self.severity == "note",
            self.path,
            self.line,
            self.col,
            self.message,
            self.severity,
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return self._key() < other._key()

    def format(self) -> str:
        """Render as ``path:line:col: severity: message`` plus an optional hint line."""
        where = f"{self.path}:{self.line}:{self.col}" if self.line > 0 else self.path
        text = f"{where}: {self.severity}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ManifestError(GwconfigError):
    """One or more problems in the manifests; carries every diagnostic of the run."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic) -> None:
        diags = [diagnostics] if isinstance(diagnostics, Diagnostic) else list(diagnostics)
        self.diagnostics: list[Diagnostic] = sorted(diags)
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(first.format() if first else "invalid manifests")

    @property
    def path(self) -> str | None:
        """Path of the first diagnostic."""
        return self.diagnostics[0].path if self.diagnostics else None

    @property
    def line(self) -> int | None:
        """Line of the first diagnostic."""
        return self.diagnostics[0].line if self.diagnostics else None

    @property
    def col(self) -> int | None:
        """Column of the first diagnostic."""
        return self.diagnostics[0].col if self.diagnostics else None


class ManifestInputError(GwconfigError):
    """The manifest input as a whole cannot be read: no such path, or too large in total."""


class ConfigurationError(GwconfigError):
    """A setting (URL, key, environment variable) is missing or wrong."""


class MissingExtraError(ConfigurationError):
    """A command needs an optional extra (``pip install 'gwconfig[extra]'``) that is not
    installed: a usage error, exit code 2 like click's."""

    exit_code = 2


class SecretError(GwconfigError):
    """A secret reference cannot be resolved, decrypted or opened."""


class EncryptionKeyError(SecretError):
    """The encryption key is missing, malformed or does not open the stored data."""


class SealingError(SecretError):
    """A sealed value is malformed, tampered with, for another scope, or for another key."""


class DatabaseError(GwconfigError):
    """The gateway database refused an operation or is unreachable."""


class DatabaseUnavailable(DatabaseError):
    """The gateway database cannot be reached (connection refused or lost, database gone).

    ``gwconfig serve`` answers it with 503 and keeps its data plane running (docs/serving.md,
    "When the database is down").
    """


class SchemaVersionError(DatabaseError):
    """The database schema is older (needs ``gwconfig db upgrade``) or newer than this gwconfig."""


class IntegrityViolation(DatabaseError):
    """A uniqueness, foreign key or NOT NULL constraint was violated; nothing was written."""


class NotFoundError(GwconfigError):
    """A requested entity (provider, model, key, revision) does not exist."""


class ValidationFailed(GwconfigError):
    """Input to the repository/service API is invalid; nothing was written.

    ``errors`` lists the field errors as ``(location, message)`` pairs when they are known
    (the REST API returns them as a problem's ``errors``); never a value.
    """

    errors: tuple[tuple[tuple[str | int, ...], str], ...] = ()


class PlanError(GwconfigError):
    """A plan cannot be made or is refused (e.g. unsafe deletes, unknown secrets)."""


class StalePlanError(PlanError):
    """The database changed since the saved plan was made."""


class LockError(GwconfigError):
    """The apply lock could not be taken before the timeout."""


class AuthError(GwconfigError):
    """A request's bearer token is missing or not valid (401), or its scope does not cover
    what it asks (403); ``message`` is safe to show."""

    def __init__(self, status: int, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.missing = missing

    @property
    def headers(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` challenge (RFC 6750) for this failure."""
        if self.missing:
            return {"WWW-Authenticate": 'Bearer realm="gwconfig"'}
        error = "insufficient_scope" if self.status == 403 else "invalid_token"
        return {"WWW-Authenticate": f'Bearer realm="gwconfig", error="{error}"'}


class RuntimeGatewayError(GwconfigError):
    """Base class for errors raised by the runtime while routing a request."""
