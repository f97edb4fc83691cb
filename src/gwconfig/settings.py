"""Settings resolved from options and the environment (see ARCHITECTURE.md, "Settings")."""

from __future__ import annotations

import getpass
import os

import gwconfig.db.columns as col
import gwconfig.db.urls as dburl  # the module itself: no import of the db package
from gwconfig.errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///.gwconfig/gateway.db"
DEFAULT_MANIFEST_PATH = "providers.d"
STATE_DIR = ".gwconfig"


def database_url(explicit: str | None = None) -> str:
    """The database URL: the option, else ``GWCONFIG_DATABASE_URL``, else the embedded SQLite.

    A malformed URL is a :class:`~gwconfig.errors.ConfigurationError` that quotes none of its
    secrets (see :func:`gwconfig.db.urls.check_url`).
    """
    return dburl.check_url(
        explicit or os.environ.get("GWCONFIG_DATABASE_URL") or DEFAULT_DATABASE_URL
    )


def is_embedded_default(url: str) -> bool:
    """True for the embedded default SQLite database (which may create its own key)."""
    return url == DEFAULT_DATABASE_URL


def mask_url(url: str) -> str:
    """The URL with any password (userinfo or query) replaced by ``***`` (safe to print)."""
    return dburl.mask_url(url)


def _fits_column(value: str, what: str, limit: int) -> str:
    """``value``, or a ConfigurationError when it does not fit its ``VARCHAR(limit)`` column."""
    why = col.too_long_chars(value, limit)
    if why is not None:
        raise ConfigurationError(f"{what} is {why}", hint=f"use at most {limit} characters")
    return value


def git_sha(value: str, source: str) -> str:
    """A commit id from ``source`` (``GITHUB_SHA``...), checked against its column."""
    return _fits_column(value, source, col.GIT_SHA)


def actor(explicit: str | None = None) -> str:
    """Who is acting, for audit: option, ``GWCONFIG_ACTOR``, ``GITHUB_ACTOR``, OS user."""
    if explicit:
        return _fits_column(explicit, "the actor", col.ACTOR)
    for var in ("GWCONFIG_ACTOR", "GITHUB_ACTOR"):
        if os.environ.get(var):
            return _fits_column(os.environ[var], var, col.ACTOR)
    try:
        return getpass.getuser()
    except Exception:  # getpass raises various errors when no user can be found
        return "unknown"
