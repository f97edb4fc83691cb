"""``ProviderRepository(db, encryption_key)``: seed-compatible data access to the gateway tables.

Accepts the seed's dict shapes (``create_provider`` with nested ``connection_params``, ``models``
and ``api_key: {key_value, is_encrypted}``), validates them with the manifest schema and stores
exactly what ``gwconfig compile`` + apply would store (same defaults, same canonical form), so
the next ``plan`` shows such writes as drift, never as noise. Secrets are encrypted before they
reach a row; only :meth:`ProviderRepository.get_api_key_value` (and its parameter twin) decrypt.

Every write is all-or-nothing: on any error the session is rolled back and a
:class:`~gwconfig.errors.GwconfigError` is raised. With ``autocommit=True`` (the default, as the
seed's repository) each successful write commits; :class:`gwconfig.seed.service.ProviderService`
turns it off to commit the change together with its audit events.

Every write first takes the apply lock in its transaction (:func:`gwconfig.db.lock.
hold_in_transaction`, waiting at most ``lock_timeout`` seconds): a write never lands between an
apply's read of the state and its write, where the apply would overwrite it unrecorded. When an
apply holds the lock longer, the write is refused with :class:`~gwconfig.errors.LockError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from gwconfig.db.lock import WRITE_LOCK_TIMEOUT, hold_in_transaction
from gwconfig.db.models import ApiKey, ConnectionParameter, Provider, ProviderModel
from gwconfig.db.notify import announce
from gwconfig.db.rows import api_key_row, model_row, parameter_row, provider_row
from gwconfig.db.urls import error_detail
from gwconfig.entities import SecretScope
from gwconfig.errors import (
    DatabaseError,
    GwconfigError,
    IntegrityViolation,
    NotFoundError,
    ValidationFailed,
)
from gwconfig.manifests.compile import _model as canonical_model
from gwconfig.manifests.compile import canonical_provider
from gwconfig.reconcile.stored_keys import read_stored_keys
from gwconfig.secrets.keys import EncryptionKeys, load_encryption_keys
from gwconfig.secrets.origin import connection_origin
from gwconfig.seed.origins import check_api_base, keep_bindings, origin_now, secret_origin
from gwconfig.seed.validation import (
    PROVIDER_LEVEL,
    SEED_PLACEHOLDER,
    key_spec,
    model_entity,
    model_input,
    param_spec,
    provider_manifest,
    validated_model,
)

T = TypeVar("T")


def coerce_keys(encryption_key: str | EncryptionKeys | None, session: Session) -> EncryptionKeys:
    """Keys from a Fernet key string (comma-separated, newest first), keys, or the settings."""
    if isinstance(encryption_key, EncryptionKeys):
        return encryption_key
    if encryption_key:
        return EncryptionKeys(encryption_key, source="encryption_key")
    url = session.get_bind().engine.url
    return load_encryption_keys(url.render_as_string(hide_password=False))


class ProviderRepository:
    """Seed-compatible data access (returns ORM objects); see the module docstring."""

    def __init__(
        self,
        db: Session,
        encryption_key: str | EncryptionKeys | None = None,
        *,
        autocommit: bool = True,
        rebind_secrets: bool = False,
        lock_timeout: float = WRITE_LOCK_TIMEOUT,
    ) -> None:
        self.db = db
        self.rebind_secrets = rebind_secrets  # an admin's: see gwconfig.seed.origins
        self.lock_timeout = lock_timeout
        self._given = coerce_keys(encryption_key, db)
        #: the keys bound to the database's key (see :meth:`EncryptionKeys.bind`); rebound
        #: before every write, so a long-lived repository follows a ``keys rotate``
        self.keys = self._bind(single=False)
        self.autocommit = autocommit
        self._writing = False  # inside writing(): nested writes announce once, at the end

    @property
    def _mariadb(self) -> bool:
        return bool(getattr(self.db.get_bind().dialect, "is_mariadb", False))

    def _bind(self, *, single: bool) -> EncryptionKeys:
        """The given keys checked against the stored secrets' key ids (refused if they differ)."""
        try:
            stored = read_stored_keys(self.db)
        except SQLAlchemyError as exc:
            self.db.rollback()
            raise DatabaseError(f"reading the stored key ids failed: {self._detail(exc)}") from None
        return self._given.bind(stored, single=single)

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def writing(self, what: str, *, commit: bool | None = None) -> Iterator[None]:
        """Run a write: flush, commit (default: if autocommit); on any error roll back, raise.

        The apply lock is taken first (see the module docstring), then the keys are checked
        against the stored secrets: a key set that cannot open them (or a database whose
        secrets are under several keys) is refused before anything is written.
        """
        outermost = not self._writing
        try:
            if outermost:
                hold_in_transaction(self.db.connection(), self.lock_timeout)
            self.keys = self._bind(single=True)
            self._writing = True
            yield
            self.db.flush()
            if outermost:  # last: runtimes learn of the write when (and if) it commits
                announce(self.db)
            if self.autocommit if commit is None else commit:
                self.db.commit()
        except IntegrityError as exc:
            self.db.rollback()
            detail = self._detail(exc)
            raise IntegrityViolation(
                f"{what}: violates a database constraint ({detail}); nothing was written"
            ) from None
        except GwconfigError:
            self.db.rollback()
            raise
        except SQLAlchemyError as exc:
            self.db.rollback()
            detail = self._detail(exc)
            raise DatabaseError(f"{what} failed: {detail}; nothing was written") from None
        except BaseException:
            self.db.rollback()
            raise
        finally:
            if outermost:
                self._writing = False

    def _detail(self, exc: SQLAlchemyError) -> str:
        url = self.db.get_bind().engine.url.render_as_string(hide_password=False)
        return error_detail(getattr(exc, "orig", None) or exc, url)

    def _write(self, what: str, fn: Callable[[], T]) -> T:
        with self.writing(what):
            return fn()

    # -- providers ----------------------------------------------------------------------------

    def get_all_providers(self) -> list[Provider]:
        """Every provider, ordered by provider_id."""
        return list(self.db.scalars(select(Provider).order_by(Provider.provider_id)))

    def get_provider(self, provider_id: str) -> Provider | None:
        """The provider ``provider_id`` or None."""
        return self.db.get(Provider, provider_id)

    def require_provider(self, provider_id: str) -> Provider:
        """The provider ``provider_id``; :class:`NotFoundError` if absent."""
        provider = self.get_provider(provider_id) if isinstance(provider_id, str) else None
        if provider is None:
            raise NotFoundError(f"provider {provider_id!r} does not exist")
        return provider

    def create_provider(self, provider_data: Mapping[str, Any]) -> Provider:
        """Create a provider with its nested models, API key(s) and connection parameters."""
        manifest, secrets = provider_manifest(provider_data)
        canon = canonical_provider(manifest)
        pid = canon["provider_id"]
        what = f"cannot create provider {pid!r}"
        check_api_base(self.db, canon, f"provider {pid!r}")

        def run() -> Provider:
            if self.db.get(Provider, pid) is not None:
                raise IntegrityViolation(f"{what}: it already exists; nothing was written")
            provider = Provider(**provider_row(canon))
            self.db.add(provider)
            self.db.flush()
            self._add_children(canon, secrets)
            return provider

        return self._write(what, run)

    def _add_children(self, canon: Mapping[str, Any], secrets: Mapping[SecretScope, str]) -> None:
        pid = canon["provider_id"]
        origin = connection_origin(canon["provider_type"], canon["connection"])
        for prm in canon["connection_parameters"]:
            plain = secrets.get(SecretScope.of("connection_parameter", pid, prm))
            self.db.add(ConnectionParameter(**parameter_row(pid, prm, self.keys, plain, origin)))
        for k in canon["api_keys"]:
            plain = secrets[SecretScope.of("api_key", pid, k)]
            self.db.add(ApiKey(**api_key_row(pid, k, plain, self.keys, origin)))
        for m in canon["models"]:
            self.db.add(ProviderModel(**model_row(pid, m)))

    def update_provider(self, provider_id: str, provider_data: Mapping[str, Any]) -> Provider:
        """Change provider-level fields (partial update); extra connection params are upserted.

        ``connection_params`` and ``request_settings`` are merged key by key into the stored
        ones (give a key with None to reset it to its default).
        """
        provider = self.require_provider(provider_id)
        unknown = sorted(set(provider_data) - set(PROVIDER_LEVEL) - {"provider_id"})
        if unknown:
            raise ValidationFailed(
                f"invalid provider update for {provider_id!r}: unknown or child field(s) "
                + ", ".join(unknown),
                hint="update_provider changes provider fields only; use create_model, "
                "create_api_key or set_connection_parameter for children",
            )
        if provider_data.get("provider_id", provider_id) != provider_id:
            raise ValidationFailed("provider_id cannot be changed; create a new provider")
        current: dict[str, Any] = {
            "provider_id": provider.provider_id,
            "provider_type": provider.provider_type,
            "display_name": provider.display_name,
            "description": provider.description,
            "enabled": provider.enabled,
            "connection_params": dict(provider.connection_params),
            "request_settings": dict(provider.request_settings),
            "tags": list(provider.tags),
            "deletion_protection": provider.deletion_protection,
        }
        merged = {**current, **provider_data}
        for field in ("connection_params", "request_settings"):  # partial dicts update in place
            if isinstance(provider_data.get(field), Mapping):
                both = {**current[field], **provider_data[field]}
                merged[field] = {k: v for k, v in both.items() if v is not None}
        manifest, secrets = provider_manifest(merged)
        canon = canonical_provider(manifest)
        check_api_base(self.db, canon, f"provider update for {provider_id!r}")
        row = provider_row(canon)

        def run() -> Provider:
            before = origin_now(provider)
            for column, value in row.items():
                if getattr(provider, column) != value:
                    setattr(provider, column, value)
            keep_bindings(self.db, provider, before)
            for prm in canon["connection_parameters"]:  # a credential header's is a secret
                scope = SecretScope.of("connection_parameter", provider_id, prm)
                self._upsert_param(provider_id, prm, secrets.get(scope))
            return provider

        return self._write(f"cannot update provider {provider_id!r}", run)

    def delete_provider(self, provider_id: str, *, force: bool = False) -> bool:
        """Delete a provider and its children; refused under deletion_protection unless forced."""
        provider = self.get_provider(provider_id)
        if provider is None:
            return False
        if provider.deletion_protection and not force:
            raise ValidationFailed(
                f"provider {provider_id!r} has deletion_protection; nothing was deleted",
                hint="set deletion_protection to false first (update_provider)",
            )

        def run() -> bool:
            self.db.delete(provider)
            return True

        return self._write(f"cannot delete provider {provider_id!r}", run)

    # -- models -------------------------------------------------------------------------------

    def get_models_by_provider_id(self, provider_id: str) -> list[ProviderModel]:
        """The provider's models, ordered by model_id."""
        stmt = select(ProviderModel).where(ProviderModel.provider_id == provider_id)
        return sorted(self.db.scalars(stmt), key=lambda m: m.model_id)

    def create_model(self, model_data: Mapping[str, Any]) -> ProviderModel:
        """Create a model; ``model_data`` carries ``provider_id`` and the model fields."""
        given = model_data.get("provider_id") if isinstance(model_data, Mapping) else None
        pid = self.require_provider(given).provider_id  # type: ignore[arg-type]
        data = model_input(model_data, f"model for provider {pid!r}", pid)
        spec = validated_model(data, f"model for provider {pid!r}", mariadb=self._mariadb)
        canon = canonical_model(spec)

        def run() -> ProviderModel:
            model = ProviderModel(**model_row(pid, canon))
            self.db.add(model)
            return model

        return self._write(f"cannot create model {canon['model_id']!r} of {pid!r}", run)

    def get_model(self, provider_id: str, model_id: str) -> ProviderModel | None:
        """The model ``(provider_id, model_id)`` or None."""
        stmt = select(ProviderModel).where(
            ProviderModel.provider_id == provider_id, ProviderModel.model_id == model_id
        )
        return self.db.scalars(stmt).first()

    def require_model(self, provider_id: str, model_id: str) -> ProviderModel:
        """The model ``(provider_id, model_id)``; :class:`NotFoundError` if absent."""
        model = self.get_model(provider_id, model_id)
        if model is None:
            raise NotFoundError(f"provider {provider_id!r} has no model {model_id!r}")
        return model

    def update_model(
        self, provider_id: str, model_id: str, model_data: Mapping[str, Any]
    ) -> ProviderModel:
        """Change a model's fields (partial update; ``model_id`` cannot change)."""
        model = self.require_model(provider_id, model_id)
        what = f"model {model_id!r} of {provider_id!r}"
        data = model_input(model_data, f"update of {what}", provider_id)
        if data.get("model_id", model_id) != model_id:
            raise ValidationFailed(f"invalid update of {what}: model_id cannot be changed")
        merged = {**model_entity(model), **data}
        spec = validated_model(merged, f"update of {what}", mariadb=self._mariadb)
        row = model_row(provider_id, canonical_model(spec))

        def run() -> ProviderModel:
            for column, value in row.items():
                if getattr(model, column) != value:
                    setattr(model, column, value)
            return model

        return self._write(f"cannot update {what}", run)

    def delete_child(self, row: ProviderModel | ApiKey | ConnectionParameter, what: str) -> None:
        """Delete one model, API key or connection parameter row."""
        self._write(f"cannot delete {what}", lambda: self.db.delete(row))

    # -- API keys -----------------------------------------------------------------------------

    def get_api_keys_by_provider_id(self, provider_id: str) -> list[ApiKey]:
        """The provider's API keys (ciphertext only), ordered by (name, environment)."""
        stmt = select(ApiKey).where(ApiKey.provider_id == provider_id)
        return sorted(self.db.scalars(stmt), key=lambda k: (k.name, k.environment))

    def create_api_key(self, api_key_data: Mapping[str, Any]) -> ApiKey:
        """Store an API key, encrypted: ``{provider_id, key_value, environment, expires_at}``."""
        data = dict(api_key_data)
        pid = (provider := self.require_provider(data.pop("provider_id", None))).provider_id
        canon, plain = key_spec(data, f"API key for provider {pid!r}")

        def run() -> ApiKey:
            origin = secret_origin(provider, rebind=self.rebind_secrets)
            key = ApiKey(**api_key_row(pid, canon, plain, self.keys, origin))
            self.db.add(key)
            return key

        scope = f"{canon['name']}@{canon['environment']}"
        return self._write(f"cannot create API key {scope!r} of {pid!r}", run)

    def get_api_key(
        self, provider_id: str, name: str = "default", environment: str = "default"
    ) -> ApiKey | None:
        """The ApiKey row for ``(provider_id, name, environment)`` or None."""
        stmt = select(ApiKey).where(
            ApiKey.provider_id == provider_id,
            ApiKey.name == name,
            ApiKey.environment == environment,
        )
        return self.db.scalars(stmt).first()

    def get_api_key_value(
        self, provider_id: str, name: str = "default", environment: str = "default"
    ) -> str:
        """The decrypted API key (the one explicit way to read a secret back)."""
        key = self.get_api_key(provider_id, name, environment)
        if key is None:
            raise NotFoundError(f"no API key {name!r}@{environment!r} for provider {provider_id!r}")
        return self.keys.decrypt(key.key_value)

    # -- connection parameters ----------------------------------------------------------------

    def get_connection_parameters_by_provider_id(
        self, provider_id: str
    ) -> list[ConnectionParameter]:
        """The provider's connection parameters, ordered by (param_name, environment)."""
        stmt = select(ConnectionParameter).where(ConnectionParameter.provider_id == provider_id)
        return sorted(self.db.scalars(stmt), key=lambda c: (c.param_name, c.environment))

    def set_connection_parameter(self, param_data: Mapping[str, Any]) -> ConnectionParameter:
        """Create or replace ``{provider_id, param_name, param_value, is_sensitive, ...}``."""
        data = dict(param_data)
        pid = (provider := self.require_provider(data.pop("provider_id", None))).provider_id
        canon, plain = param_spec(data, f"connection parameter for provider {pid!r}")
        scope = f"{canon['name']}@{canon['environment']}"

        def run() -> ConnectionParameter:
            sensitive = canon["sensitive"]
            origin = secret_origin(provider, rebind=self.rebind_secrets) if sensitive else None
            return self._upsert_param(pid, canon, plain, origin)

        return self._write(f"cannot set connection parameter {scope!r} of {pid!r}", run)

    def _upsert_param(
        self, pid: str, canon: Mapping[str, Any], plain: str | None, origin: str | None = None
    ) -> ConnectionParameter:
        row = parameter_row(pid, canon, self.keys, plain, origin)
        stmt = select(ConnectionParameter).where(
            ConnectionParameter.provider_id == pid,
            ConnectionParameter.param_name == canon["name"],
            ConnectionParameter.environment == canon["environment"],
        )
        existing = self.db.scalars(stmt).first()
        if existing is None:
            existing = ConnectionParameter(**row)
            self.db.add(existing)
            return existing
        same_secret = (
            existing.is_sensitive
            and canon["sensitive"]
            and existing.fingerprint == row["fingerprint"]
        )
        for column, value in row.items():
            if column in ("param_value", "fingerprint") and same_secret:
                continue  # unchanged secret: keep the stored ciphertext
            if getattr(existing, column) != value:
                setattr(existing, column, value)
        return existing

    def get_connection_parameter(
        self, provider_id: str, param_name: str, environment: str = "default"
    ) -> ConnectionParameter | None:
        """The ConnectionParameter row for ``(provider_id, param_name, environment)`` or None."""
        stmt = select(ConnectionParameter).where(
            ConnectionParameter.provider_id == provider_id,
            ConnectionParameter.param_name == param_name,
            ConnectionParameter.environment == environment,
        )
        return self.db.scalars(stmt).first()

    def get_connection_parameter_value(
        self, provider_id: str, param_name: str, environment: str = "default"
    ) -> Any:
        """A parameter's value, decrypted when sensitive (explicit secret read)."""
        param = self.get_connection_parameter(provider_id, param_name, environment)
        if param is None:
            raise NotFoundError(
                f"no connection parameter {param_name!r}@{environment!r} for {provider_id!r}"
            )
        return self.keys.decrypt(param.param_value) if param.is_sensitive else param.param_value


__all__ = ["SEED_PLACEHOLDER", "ProviderRepository", "coerce_keys"]
