"""What every request handler of ``gwconfig serve`` shares: :class:`ServeSettings` and
:class:`ServerState` (``app.state.gw``). Routers import this module, never ``app``."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from gwconfig.db.lock import WRITE_LOCK_TIMEOUT
from gwconfig.db.session import translate_errors
from gwconfig.errors import ConfigurationError
from gwconfig.reconcile.state import last_revision
from gwconfig.secrets.keys import load_encryption_keys
from gwconfig.server.rest.cache import ProviderCache
from gwconfig.shared.redis_backend import parse_url

if TYPE_CHECKING:
    from gwconfig.db.session import Database
    from gwconfig.secrets.keys import EncryptionKeys
    from gwconfig.server.auth import TokenAuthenticator
    from gwconfig.server.openai.limits import LimitGuard
    from gwconfig.server.openai.runtime import GatewayRuntime

#: environment variables of :meth:`ServeSettings.from_env` (the factory ``app_from_env``, for
#: a process manager other than ``serve``; ``serve`` hands its workers the settings themselves)
ENV_READ_ONLY = "GWCONFIG_SERVE_READ_ONLY"
ENV_MAX_BODY = "GWCONFIG_SERVE_MAX_BODY_BYTES"
ENV_TOKEN_CACHE = "GWCONFIG_SERVE_TOKEN_CACHE_SECONDS"
ENV_TOKEN_STALE = "GWCONFIG_SERVE_TOKEN_STALE_SECONDS"
ENV_PUBLIC_DOCS = "GWCONFIG_SERVE_PUBLIC_DOCS"
ENV_LOCK_TIMEOUT = "GWCONFIG_SERVE_LOCK_TIMEOUT"
ENV_WORKERS = "GWCONFIG_SERVE_WORKERS"
ENV_ACCESS_LOG = "GWCONFIG_SERVE_ACCESS_LOG"
#: the Redis every replica shares its limits, budgets and cooldowns through
ENV_REDIS_URL = "GWCONFIG_REDIS_URL"
ENV_REDIS_TIMEOUT = "GWCONFIG_REDIS_TIMEOUT_MS"
#: the longest one Redis call may take by default, and the most one may set (ms)
DEFAULT_REDIS_TIMEOUT_MS = 50.0
MAX_REDIS_TIMEOUT_MS = 10_000.0
#: where the workers' metrics are added up (prometheus_client's multiprocess mode)
ENV_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: the largest body limit one may set (64 MiB)
MAX_BODY_LIMIT = 64 * 1024 * 1024
#: how long a connection may take to send a request head (seconds), and the most one may set
DEFAULT_HEADER_TIMEOUT = 10.0
MAX_HEADER_TIMEOUT = 600.0
#: open connections per worker, and the most one may set
DEFAULT_MAX_CONNECTIONS = 1000
MAX_CONNECTIONS_LIMIT = 100_000
#: how long a token's last good lookup may serve while the database is down, and the most
DEFAULT_TOKEN_STALE = 900.0
MAX_TOKEN_STALE = 7 * 24 * 3600.0


@dataclass(frozen=True)
class ServeSettings:
    """How ``gwconfig serve`` runs (one value for the whole process)."""

    #: the gateway database (None: ``GWCONFIG_DATABASE_URL`` or the embedded SQLite)
    database_url: str | None = None
    #: every write answers 405 (providers are managed by manifests)
    read_only: bool = False
    #: request bodies over this many bytes are refused with 413
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: how long a token lookup is reused (the delay before a revocation takes effect)
    token_cache_seconds: float = 1.0
    #: while the database is unreachable, a token keeps working this long after its last
    #: good lookup (unknown tokens get 503)
    token_stale_seconds: float = DEFAULT_TOKEN_STALE
    #: ``/docs``, ``/redoc`` and ``/openapi.json`` answer without a token
    public_docs: bool = False
    #: a connection whose request head is not complete this many seconds after it opened (or
    #: after its previous answer) is closed; the listener's setting, not the app's
    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT
    #: open connections per worker; past them requests get 503 (the listener's setting)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: how long a write of the REST API waits for a running apply before it is refused (503)
    lock_timeout: float = WRITE_LOCK_TIMEOUT
    #: how many worker processes share the per-token request limits
    workers: int = 1
    #: the JSON access log on standard error
    access_log: bool = True
    #: the Redis the limits, budgets and cooldowns are shared through (None: per process)
    redis_url: str | None = None
    #: the longest one Redis call may take (then the call counts as failed), milliseconds
    redis_timeout_ms: float = DEFAULT_REDIS_TIMEOUT_MS

    def __post_init__(self) -> None:
        if not 1 <= self.max_body_bytes <= MAX_BODY_LIMIT:
            raise ConfigurationError(f"the request body limit must be 1 to {MAX_BODY_LIMIT} bytes")
        if not 0 <= self.token_cache_seconds <= 60:
            raise ConfigurationError("the token cache must be 0 to 60 seconds")
        if not 0 <= self.token_stale_seconds <= MAX_TOKEN_STALE:
            raise ConfigurationError(
                f"the token staleness bound must be 0 to {MAX_TOKEN_STALE:g} seconds"
            )
        if not 0 < self.header_timeout_seconds <= MAX_HEADER_TIMEOUT:
            raise ConfigurationError(
                f"the header timeout must be over 0 and at most {MAX_HEADER_TIMEOUT:g} seconds"
            )
        if not 1 <= self.max_connections <= MAX_CONNECTIONS_LIMIT:
            raise ConfigurationError(
                f"the connection limit must be 1 to {MAX_CONNECTIONS_LIMIT} per worker"
            )
        if not 0 <= self.lock_timeout <= 600:
            raise ConfigurationError("the write lock timeout must be 0 to 600 seconds")
        if self.redis_url is not None:
            parse_url(self.redis_url)  # the scheme checked now, never the password shown
        if not 0 < self.redis_timeout_ms <= MAX_REDIS_TIMEOUT_MS:
            raise ConfigurationError(
                f"the Redis timeout must be over 0 and at most {MAX_REDIS_TIMEOUT_MS:g} ms"
            )

    def to_env(self) -> dict[str, str]:
        """The environment variables :meth:`from_env` reads back (for a process manager that
        starts ``app_from_env``).

        The listener's settings (header timeout, connection limit) are not among them: they are
        settings of ``serve``'s listener (see ``gwconfig.server.connections``).
        """
        env = {
            ENV_READ_ONLY: "1" if self.read_only else "0",
            ENV_MAX_BODY: str(self.max_body_bytes),
            ENV_TOKEN_CACHE: str(self.token_cache_seconds),
            ENV_TOKEN_STALE: str(self.token_stale_seconds),
            ENV_PUBLIC_DOCS: "1" if self.public_docs else "0",
            ENV_LOCK_TIMEOUT: str(self.lock_timeout),
            ENV_WORKERS: str(self.workers),
            ENV_ACCESS_LOG: "1" if self.access_log else "0",
        }
        if self.database_url is not None:
            env["GWCONFIG_DATABASE_URL"] = self.database_url
        if self.redis_url is not None:
            env[ENV_REDIS_URL] = self.redis_url
        env[ENV_REDIS_TIMEOUT] = str(self.redis_timeout_ms)
        return env

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Settings from the environment (see :meth:`to_env`)."""
        try:
            workers = max(int(os.environ.get(ENV_WORKERS, "1")), 1)
        except ValueError:
            workers = 1
        try:
            return cls(
                database_url=os.environ.get("GWCONFIG_DATABASE_URL") or None,
                read_only=os.environ.get(ENV_READ_ONLY, "0") in ("1", "true", "yes"),
                max_body_bytes=int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY_BYTES)),
                token_cache_seconds=float(os.environ.get(ENV_TOKEN_CACHE, "1.0")),
                token_stale_seconds=float(
                    os.environ.get(ENV_TOKEN_STALE, str(DEFAULT_TOKEN_STALE))
                ),
                public_docs=os.environ.get(ENV_PUBLIC_DOCS, "0") in ("1", "true", "yes"),
                lock_timeout=float(os.environ.get(ENV_LOCK_TIMEOUT, WRITE_LOCK_TIMEOUT)),
                workers=workers,
                access_log=os.environ.get(ENV_ACCESS_LOG, "1") != "0",
                redis_url=os.environ.get(ENV_REDIS_URL) or None,
                redis_timeout_ms=float(
                    os.environ.get(ENV_REDIS_TIMEOUT, str(DEFAULT_REDIS_TIMEOUT_MS))
                ),
            )
        except ValueError:
            raise ConfigurationError(
                f"{ENV_MAX_BODY}, {ENV_TOKEN_CACHE}, {ENV_TOKEN_STALE}, {ENV_LOCK_TIMEOUT} and "
                f"{ENV_REDIS_TIMEOUT} must be numbers"
            ) from None


class ServerState:
    """The open database, the token checker and the settings of one server process."""

    def __init__(
        self, settings: ServeSettings, database: Database, tokens: TokenAuthenticator
    ) -> None:
        self.settings = settings
        self.database = database
        self.tokens = tokens
        #: rendered ``GET /providers/{id}`` answers (the watcher is attached on first use)
        self.provider_cache = ProviderCache()
        self._keys: EncryptionKeys | None = None
        self._keys_lock = threading.Lock()
        #: the LLM runtime of ``/v1/chat/completions`` (set by ``create_app``)
        self.runtime: GatewayRuntime | None = None
        #: the limits of ``/v1`` (set by ``create_app``)
        self.limits: LimitGuard | None = None

    @property
    def encryption_keys(self) -> EncryptionKeys:
        """The encryption keys, loaded on first use (reads need none; a missing key fails
        only the requests that write or open secrets)."""
        if self._keys is None:
            with self._keys_lock:
                if self._keys is None:
                    self._keys = load_encryption_keys(self.database.url)
        return self._keys

    def revision(self) -> int | None:
        """The number of the newest configuration revision (None before the first apply)."""

        with translate_errors(self.database.url, "reading"), self.database.connect() as conn:
            return last_revision(conn)

    def close(self) -> None:
        """Write pending token uses and close the database connections."""
        self.tokens.close()
        self.database.dispose()


def server_state(of: HTTPConnection | Starlette) -> ServerState:
    """The :class:`ServerState` of an app, or of the app serving a request: the one way every
    handler and middleware reaches it (``create_app`` keeps it in ``app.state.gw``)."""
    app = of.app if isinstance(of, HTTPConnection) else of
    state: ServerState = app.state.gw
    return state
