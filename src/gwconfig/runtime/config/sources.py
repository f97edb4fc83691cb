"""ConfigLoader: gateway database or compiled JSON file -> :class:`GatewayConfig`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from gwconfig.canonical import content_hash
from gwconfig.db.engines import engine_of as engine_of_source
from gwconfig.entities import SealedScope, SecretResolver, SecretScope
from gwconfig.errors import EncryptionKeyError, GwconfigError, SecretError
from gwconfig.perf.gcpause import gc_paused
from gwconfig.reconcile.state import (
    canonical_models,
    index_model_rows,
    model_from_row,
    read_state,
    read_tables,
    stored_keys,
)
from gwconfig.runtime.config.build import build_gateway_config
from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.runtime.config.remote import (
    Fetched,
    RemoteSource,
    is_http_source,
    origins_of,
    tables_of,
)
from gwconfig.runtime.config.seed_update import update_provider_config
from gwconfig.runtime.config.table import ModelTable
from gwconfig.runtime.errors import ConfigLoadError
from gwconfig.secrets.resolve import resolve_secret
from gwconfig.settings import mask_url

DEFAULT_ENVIRONMENT = "default"


def runtime_environment(explicit: str | None = None) -> str:
    """The API key environment: the argument, else ``GWCONFIG_ENVIRONMENT``, else ``default``."""
    return explicit or os.environ.get("GWCONFIG_ENVIRONMENT") or DEFAULT_ENVIRONMENT


def _is_db_object(source: Any) -> bool:
    return hasattr(source, "get_bind") or hasattr(source, "engine") or hasattr(source, "dialect")


def engine_of(source: Any) -> Any:
    """The SQLAlchemy engine behind a Session, Engine, ``Database`` or database URL."""
    engine = engine_of_source(source)
    if engine is None:
        raise ConfigLoadError(f"not a database: {type(source).__name__}")
    return engine


class ConfigLoader:
    """Loads the gateway configuration (the seed's name).

    ``source`` is a SQLAlchemy Session or Engine, a ``gwconfig.db.session.Database``, a database
    URL, the gateway API's base URL (``https://host/api/v1``: no database credentials, a
    ``runtime`` token as ``token=`` or ``GWCONFIG_API_TOKEN``; see :mod:`.remote`)
    or the path of a compiled JSON file (``gwconfig compile`` output). API keys come out
    decrypted (database or API, ``GWCONFIG_ENCRYPTION_KEY``) or resolved from this process's
    environment and files (compiled file); only the runtime environment's keys are kept.
    ``verify_hash`` re-computes a compiled file's ``content_hash`` and refuses a file edited
    after compilation (off by default: it doubles the load time of a large file).
    """

    def __init__(
        self,
        source: Any,
        *,
        environment: str | None = None,
        encryption_keys: Any = None,
        resolver: SecretResolver | None = None,
        verify_hash: bool = False,
        token: str | None = None,
    ) -> None:
        self.environment = runtime_environment(environment)
        self._keys = encryption_keys
        self._resolver = resolver
        self.verify_hash = verify_hash
        self._engine: Any = None
        self.path: Path | None = None
        self.source = source
        #: the gateway API serving the configuration (an http(s) source), else None
        self.remote: RemoteSource | None = None
        self._fetched: Fetched | None = None  # fetched by current_version, not loaded yet
        self._etag: str | None = None  # of the newest document fetched
        if is_http_source(source):
            self.remote = RemoteSource(source, token)
        elif isinstance(source, Path) or (isinstance(source, str) and "://" not in source):
            self.path = Path(source)
        elif not isinstance(source, str) and not _is_db_object(source):
            raise ConfigLoadError(
                f"ConfigLoader needs a database (Session, Engine, URL) or a compiled JSON file, "
                f"not {type(source).__name__}"
            )

    # -- public -----------------------------------------------------------------------------------

    def describe(self) -> str:
        """A printable description of the source (passwords masked)."""
        if self.path is not None:
            return str(self.path)
        if self.remote is not None:
            return self.remote.url.removesuffix("/config")
        return mask_url(str(self.engine.url.render_as_string(hide_password=False)))

    @property
    def engine(self) -> Any:
        """The database engine (database sources only)."""
        if self._engine is None:
            if self.path is not None or self.remote is not None:
                raise ConfigLoadError(f"{self.describe()} is not a database")
            self._engine = engine_of(self.source)
        return self._engine

    def current_version(self) -> Any:
        """A cheap token that changes when the source changes (file stamp or DB revision)."""
        if self.path is not None:
            try:
                st = self.path.stat()
            except OSError as exc:
                raise ConfigLoadError(f"cannot read {self.path}: {exc.strerror}") from exc
            return ("file", st.st_mtime_ns, st.st_size)
        if self.remote is not None:  # a conditional GET: a new document is kept for the load
            fetched = self.remote.fetch(self._etag)
            if fetched is not None:
                self._fetched, self._etag = fetched, fetched.etag
            return self._etag
        with self.engine.connect() as conn:
            return _db_version(conn)

    def load_config_as_object(self) -> GatewayConfig:
        """Build the immutable, indexed :class:`GatewayConfig` from the source."""
        # tens of thousands of short-lived dicts: the cyclic GC would only slow the load down
        with gc_paused():
            if self.path is not None:
                return self._load_file()
            if self.remote is not None:
                return self._load_remote()
            return self._load_db()

    def load_config(self) -> dict[str, Any]:
        """The canonical configuration dict (secrets as references or fingerprints)."""
        if self.path is not None:
            return self._read_file()[0]
        if self.remote is not None:
            data, _secrets, _key_ids, rows = tables_of(self._fetch().doc)
            providers = [
                {**p, "models": canonical_models(rows.get(p["provider_id"], []))}
                for p in data["providers"]
            ]
            return {**data, "providers": providers}
        with self.engine.connect() as conn:
            return read_state(conn).data

    def update_provider_config(self, provider_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update one provider from a seed-style dict, through the audited service."""
        if self.path is not None or self.remote is not None:
            raise ConfigLoadError(
                "update_provider_config needs a database source; edit the manifests instead"
            )
        return update_provider_config(self, provider_id, config)

    # -- sources ----------------------------------------------------------------------------------

    def _read_file(self) -> tuple[dict[str, Any], str | None, Any]:
        assert self.path is not None
        try:
            st = self.path.stat()
            raw = self.path.read_bytes()
        except OSError as exc:
            raise ConfigLoadError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigLoadError(f"{self.path} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("providers"), list):
            raise ConfigLoadError(f"{self.path} is not a compiled gwconfig configuration")
        if doc.get("format_version") != 1:
            raise ConfigLoadError(
                f"{self.path} has format_version {doc.get('format_version')!r}; this gwconfig "
                "reads format_version 1"
            )
        declared = doc.pop("content_hash", None)
        if self.verify_hash and declared is not None and content_hash(doc) != declared:
            raise ConfigLoadError(
                f"{self.path} was modified after compilation (content_hash does not match)",
                hint="recompile it with 'gwconfig compile'",
            )
        return doc, declared, ("file", st.st_mtime_ns, st.st_size)

    def _load_file(self) -> GatewayConfig:
        data, declared, version = self._read_file()
        resolver = self._resolver if self._resolver is not None else resolve_secret
        chash = declared if declared is not None else partial(content_hash, data)
        return self._build(data, resolver, chash, version, str(self.path))

    def _load_db(self) -> GatewayConfig:
        from sqlalchemy.exc import SQLAlchemyError  # SQLAlchemy: only for a database

        try:
            with self.engine.connect() as conn:
                # the version first: a write committed meanwhile makes the data newer than the
                # version (one more reload later), never the other way round
                version = _db_version(conn)
                state = read_tables(conn, model_rows=True)
                conn.rollback()
        except SQLAlchemyError as exc:
            from gwconfig.db.session import database_error  # SQLAlchemy: only for a database

            url = self.engine.url.render_as_string(hide_password=False)
            raise database_error(exc, url, "reading the configuration from") from exc
        return self.from_tables(
            state.data, state.secrets, state.key_ids or {}, state.model_rows or {}, version,
            self.describe(), origins=state.origins,
        )  # fmt: skip

    def from_tables(
        self,
        data: dict[str, Any],
        secrets: Mapping[SecretScope, str],
        key_ids: Mapping[SecretScope, str | None],
        rows: Mapping[str, list[tuple[Any, ...]]],
        version: Any,
        source: str,
        *,
        origins: Mapping[SecretScope, str | None] | None = None,
    ) -> GatewayConfig:
        """Build the configuration from the gateway tables as :func:`read_tables` reads them
        (with ``model_rows``): secrets stored encrypted, opened with :meth:`encryption_keys`,
        each sent only to the origin it is bound to (``origins``)."""
        keys: Any = None
        if secrets:  # refuse keys that cannot open the stored secrets before building anything
            keys = self.encryption_keys().bind(stored_keys(secrets, key_ids), single=False)

        def decrypt(ref: Mapping[str, Any], scope: SealedScope) -> str:
            pid, name, env = scope
            token = secrets.get(SecretScope.from_sealed(scope))
            if token is None:
                raise SecretError(f"no stored value for {pid}/{name}@{env}")
            return str(keys.decrypt(token))

        # the state hash (as read_state computes it) only when someone asks for content_hash
        chash = partial(_state_hash, data, rows)
        return self._build(data, decrypt, chash, version, source, _model_tables(rows), origins)

    # -- over HTTP -------------------------------------------------------------------------------

    def _fetch(self) -> Fetched:
        """The document held since the last :meth:`current_version`, else a fresh one."""
        assert self.remote is not None
        fetched, self._fetched = self._fetched, None
        if fetched is None:
            fetched = self._require(self.remote.fetch())
        self._etag = fetched.etag
        return fetched

    def _require(self, fetched: Fetched | None) -> Fetched:
        if fetched is None:  # 304 to an unconditional GET: a broken server or proxy
            raise ConfigLoadError(f"{self.describe()} sent no configuration")
        return fetched

    def _load_remote(self, fetched: Fetched | None = None) -> GatewayConfig:
        fetched = fetched or self._fetch()
        self._etag = fetched.etag
        data, secrets, key_ids, rows = tables_of(fetched.doc)
        return self.from_tables(
            data, secrets, key_ids, rows, fetched.etag, self.describe(),
            origins=origins_of(fetched.doc),
        )  # fmt: skip

    async def wait_for_new(self, version: Any, wait: float) -> GatewayConfig | None:
        """Long-poll the gateway API: the configuration once it is no longer ``version`` (an
        ETag), or None after ``wait`` seconds without a change (HTTP sources only)."""
        import asyncio

        if self.remote is None:
            raise ConfigLoadError(f"{self.describe()} is not an HTTP source")
        fetched = await self.remote.afetch(version if isinstance(version, str) else None, wait)
        if fetched is None:
            return None
        return await asyncio.to_thread(self._load_paused, fetched)

    def _load_paused(self, fetched: Fetched) -> GatewayConfig:
        with gc_paused():
            return self._load_remote(fetched)

    def encryption_keys(self) -> Any:
        """The keys that decrypt the database's secrets (given, or from the environment)."""
        from gwconfig.secrets.keys import (  # cryptography: only with stored secrets
            EncryptionKeys,
            load_encryption_keys,
        )

        if self._keys is None and self.remote is not None:
            from gwconfig.secrets.keys import ENV_VAR  # cryptography: only with stored secrets

            raw = os.environ.get(ENV_VAR, "").strip()
            if not raw:
                raise EncryptionKeyError(
                    f"no encryption key to open the secrets served by {self.describe()}",
                    hint=f"set {ENV_VAR} to the gateway database's key",
                )
            self._keys = EncryptionKeys(raw, source=ENV_VAR)
        elif self._keys is None:
            url = self.engine.url.render_as_string(hide_password=False)
            self._keys = load_encryption_keys(url)
        elif isinstance(self._keys, str):
            self._keys = EncryptionKeys(self._keys, source="ConfigLoader(encryption_keys=...)")
        return self._keys

    def _build(
        self,
        data: Mapping[str, Any],
        resolver: SecretResolver,
        chash: str | Callable[[], str],
        version: Any,
        source: str,
        model_tables: Mapping[str, ModelTable] | None = None,
        origins: Mapping[SecretScope, str | None] | None = None,
    ) -> GatewayConfig:
        try:
            config = build_gateway_config(
                data,
                self.environment,
                resolver,
                content_hash=chash,
                version=version,
                source=source,
                model_tables=model_tables,
                origins=origins,
            )
        except GwconfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigLoadError(
                f"{source} is not a valid gwconfig configuration ({type(exc).__name__}: {exc})"
            ) from exc
        object.__setattr__(config, "loader", self)
        return config


def _model_tables(model_rows: Mapping[str, list[tuple[Any, ...]]]) -> dict[str, ModelTable]:
    """Lazy model tables over raw ``provider_models`` rows (canonical dicts made on first use)."""
    tables = {}
    for pid, rows in model_rows.items():
        entries, disabled, aliased = index_model_rows(rows)
        tables[pid] = ModelTable(entries, model_from_row, disabled=disabled, aliased=aliased)
    return tables


def _state_hash(data: Mapping[str, Any], model_rows: Mapping[str, list[Any]]) -> str:
    """``read_state``'s state hash of tables read with ``model_rows=True``."""
    providers = [
        {**p, "models": canonical_models(model_rows.get(p["provider_id"], []))}
        for p in data["providers"]
    ]
    return content_hash({**data, "providers": providers})


def _db_version(conn: Any) -> tuple[Any, ...]:
    from sqlalchemy import String, cast, func, select  # SQLAlchemy: only for a database

    from gwconfig.db.models import (  # SQLAlchemy: only for a database
        ConfigGeneration,
        ConfigRevision,
        Provider,
        ProviderModel,
    )

    rev = ConfigRevision.__table__.c
    prov = Provider.__table__.c
    gen = ConfigGeneration.__table__.c
    row = conn.execute(
        select(
            select(func.max(rev.number)).scalar_subquery(),
            select(func.max(prov.updated_at)).scalar_subquery(),
            select(func.count()).select_from(Provider.__table__).scalar_subquery(),
            select(func.count()).select_from(ProviderModel.__table__).scalar_subquery(),
            # the configuration generation (bumped by every announced write, see db.notify)
            select(gen.epoch + "." + cast(gen.generation, String)).scalar_subquery(),
        )
    ).one()
    return ("db", *tuple(str(v) if v is not None else None for v in row))
