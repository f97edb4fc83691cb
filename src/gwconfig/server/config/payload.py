"""The runtime configuration document of ``GET /api/v1/config`` (no FastAPI import).

What a runtime reads from the gateway tables, as :func:`gwconfig.reconcile.state.read_tables`
reads it with ``model_rows``, in one JSON document::

    {"format": "gwconfig-runtime-config", "format_version": 1,
     "generation": "<epoch>.<n>", "revision": <last revision number or null>,
     "config": <canonical configuration, providers without their models>,
     "models": {"<provider_id>": [[<provider_models row>], ...]},
     "secrets": [["<pid>/key:<name>@<env>", "<Fernet ciphertext>", "<key id or null>"], ...],
     "origins": {"<pid>/key:<name>@<env>": "<origin the secret is bound to>", ...}}

Secrets are the stored ciphertexts: the runtime opens them with ``GWCONFIG_ENCRYPTION_KEY``
as when it reads the database (:mod:`gwconfig.runtime.config.remote`), and sends each only to
the origin in ``origins`` (secrets without one are bound to their provider's current origin).
The document of a generation is built once per process and kept, with its gzip form, until the
next generation.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from typing import Any

import orjson

from gwconfig.db.notify import ConfigGeneration, read_generation
from gwconfig.db.session import translate_errors
from gwconfig.reconcile.state import read_tables
from gwconfig.runtime.config.remote import FORMAT, FORMAT_VERSION

#: smallest document worth compressing (bytes)
_GZIP_FROM = 1024


@dataclass(frozen=True)
class Payload:
    """One generation's document, its gzip form, and the revision it holds."""

    generation: ConfigGeneration | None
    revision: int | None
    body: bytes
    gzipped: bytes | None

    @property
    def etag(self) -> str:
        """The document's strong ETag (the generation's)."""
        return self.generation.etag if self.generation is not None else '"none.0"'


def read_payload(engine: Any) -> Payload:
    """Read the generation, then the tables, in one read transaction, into a :class:`Payload`.

    Reading the generation first means the document is never older than its ETag says (a
    write committed in between makes it newer, and its own announcement follows).
    """

    url = engine.url.render_as_string(hide_password=False)
    with translate_errors(url, "reading the configuration from"), engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        generation = read_generation(conn)
        tables = read_tables(conn, model_rows=True)
        conn.rollback()
    key_ids = tables.key_ids or {}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generation": generation.token if generation is not None else None,
        "revision": tables.last_revision,
        "config": tables.data,
        "models": tables.model_rows or {},
        "secrets": [
            [scope.id, token, key_ids.get(scope)] for scope, token in tables.secrets.items()
        ],
        "origins": {scope.id: origin for scope, origin in (tables.origins or {}).items() if origin},
    }
    body = orjson.dumps(doc)
    gzipped = gzip.compress(body, compresslevel=5, mtime=0) if len(body) >= _GZIP_FROM else None
    return Payload(generation, tables.last_revision, body, gzipped)


class PayloadCache:
    """The newest document read, rebuilt only when the generation moves (one reader at a time)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._payload: Payload | None = None
        self._lock = threading.Lock()

    @property
    def latest(self) -> Payload | None:
        """The last document built (None before the first request)."""
        return self._payload

    def get(self, generation: ConfigGeneration | None) -> Payload:
        """The document of ``generation`` or newer (blocking: call it from a thread)."""
        payload = self._payload
        if payload is not None and _not_older(payload.generation, generation):
            return payload
        with self._lock:  # many requests for a new generation: one of them reads it
            payload = self._payload
            if payload is None or not _not_older(payload.generation, generation):
                payload = self._payload = read_payload(self.engine)
            return payload


def _not_older(have: ConfigGeneration | None, want: ConfigGeneration | None) -> bool:
    if want is None:
        return have is None
    return have is not None and have.epoch == want.epoch and have.number >= want.number
