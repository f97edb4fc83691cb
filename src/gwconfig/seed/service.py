"""``ProviderService(db, encryption_key, current_user_id)``: the seed's audited provider service.

Returns plain dicts (seed style) with secrets masked; every write records one
:class:`~gwconfig.db.models.AuditEvent` per entity it touched (actor ``current_user_id``,
``revision_number`` NULL, before/after as canonical entities with secrets masked) in the same
transaction as the write. Such writes are imperative changes: the next ``gwconfig plan`` shows
them as drift. Decrypted secrets come only from :meth:`ProviderService.get_api_key_value`.
A write takes the apply lock first (waiting at most ``lock_timeout`` seconds, see
:mod:`gwconfig.seed.repository`), so it never interleaves with an apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from gwconfig import settings
from gwconfig.canonical import format_timestamp
from gwconfig.db.lock import WRITE_LOCK_TIMEOUT
from gwconfig.db.models import ApiKey, AuditEvent, ConnectionParameter, Provider, ProviderModel
from gwconfig.entities import (
    CONNECTION_PARAMETER,
    KINDS,
    MASK,
    MODEL,
    entity_key,
    mask_entity,
    model_key,
    parse_key,
)
from gwconfig.secrets.keys import EncryptionKeys
from gwconfig.secrets.names import sensitive_header
from gwconfig.seed.checks import check_written
from gwconfig.seed.repository import ProviderRepository
from gwconfig.seed.validation import key_entity, model_entity, param_entity, provider_entity

T = TypeVar("T")
Event = tuple[str, str, str, dict[str, Any] | None, dict[str, Any] | None]


def provider_dict(p: Provider) -> dict[str, Any]:
    """A provider as the seed's service returns it (no children)."""
    body = provider_entity(p)
    body["connection_params"] = connection = dict(body.pop("connection"))
    if isinstance(connection.get("headers"), Mapping):  # a credential stored plain (written
        # before headers were secrets) is never shown
        connection["headers"] = {
            k: MASK if sensitive_header(str(k)) else v for k, v in connection["headers"].items()
        }
    body["created_at"] = format_timestamp(p.created_at)
    body["updated_at"] = format_timestamp(p.updated_at)
    return body


def model_dict(m: ProviderModel) -> dict[str, Any]:
    """A model as a dict (seed fields plus pricing and aliases)."""
    return {"id": m.id, "provider_id": m.provider_id, **model_entity(m)}


def api_key_dict(k: ApiKey) -> dict[str, Any]:
    """An API key with its value masked (use ``get_api_key_value`` to decrypt)."""
    return {
        "id": k.id,
        "provider_id": k.provider_id,
        "name": k.name,
        "environment": k.environment,
        "key_value": MASK,
        "is_encrypted": bool(k.is_encrypted),
        "fingerprint": k.fingerprint,
        "expires_at": format_timestamp(k.expires_at),
        "created_at": format_timestamp(k.created_at),
    }


def parameter_dict(c: ConnectionParameter) -> dict[str, Any]:
    """A connection parameter; a sensitive value is masked."""
    return {
        "id": c.id,
        "provider_id": c.provider_id,
        "param_name": c.param_name,
        "param_value": MASK if c.is_sensitive else c.param_value,
        "is_sensitive": bool(c.is_sensitive),
        "environment": c.environment,
        "fingerprint": c.fingerprint,
    }


def _masked(entity: str, body: dict[str, Any] | None) -> dict[str, Any] | None:
    """``body`` masked (:func:`mask_entity`) as the ``audit_events`` JSON column stores it."""
    masked = mask_entity(entity, body)
    return None if masked is None else dict(masked)


class ProviderService:
    """Seed-compatible, audited provider management (see the module docstring)."""

    def __init__(
        self,
        db: Session,
        encryption_key: str | EncryptionKeys | None = None,
        current_user_id: Any = None,
        *,
        rebind_secrets: bool = False,
        lock_timeout: float = WRITE_LOCK_TIMEOUT,
    ) -> None:
        self.db = db
        self.repository = ProviderRepository(
            db,
            encryption_key,
            autocommit=False,
            rebind_secrets=rebind_secrets,
            lock_timeout=lock_timeout,
        )
        self.actor = str(current_user_id) if current_user_id is not None else settings.actor()

    # -- plumbing -----------------------------------------------------------------------------

    def _audited(self, what: str, op: Callable[[], tuple[T, list[Event]]]) -> T:
        """Run ``op``, check what it leaves (:func:`~gwconfig.seed.checks.check_written`) and
        record its events; one commit for all, rollback on any error."""
        with self.repository.writing(what, commit=True):
            result, events = op()
            if events:
                self.db.flush()
                touched = {parse_key(e, key)[0] or "" for e, key, *_ in events}
                models = {parse_key(e, key)[1][0] for e, key, *_ in events if KINDS[e] is MODEL}
                only = next(iter(models)) if len(events) == 1 and len(models) == 1 else None
                check_written(self.db, touched, what, only)
            for entity, key, action, before, after in events:
                self.db.add(
                    AuditEvent(
                        revision_number=None,
                        actor=self.actor[:255],
                        entity_type=entity,
                        entity_key=key[:512],
                        action=action,
                        before=_masked(entity, before),
                        after=_masked(entity, after),
                    )
                )
        return result

    def _children(self, pid: str) -> list[tuple[str, str, dict[str, Any]]]:
        repo = self.repository
        out = [
            ("connection_parameter", entity_key("connection_parameter", pid, b), b)
            for b in map(param_entity, repo.get_connection_parameters_by_provider_id(pid))
        ]
        out += [
            ("api_key", entity_key("api_key", pid, b), b)
            for b in map(key_entity, repo.get_api_keys_by_provider_id(pid))
        ]
        out += [
            ("model", entity_key("model", pid, b), b)
            for b in map(model_entity, repo.get_models_by_provider_id(pid))
        ]
        return out

    # -- providers ----------------------------------------------------------------------------

    def get_all_providers(self) -> list[dict[str, Any]]:
        """Every provider (without children), ordered by provider_id."""
        return [provider_dict(p) for p in self.repository.get_all_providers()]

    def get_provider(self, provider_id: str) -> dict[str, Any] | None:
        """One provider with its models, API keys (masked) and parameters, or None."""
        p = self.repository.get_provider(provider_id)
        if p is None:
            return None
        return {
            **provider_dict(p),
            "models": self.get_models_by_provider_id(provider_id),
            "api_keys": self.get_api_keys_by_provider_id(provider_id),
            "connection_parameters": self.get_connection_parameters_by_provider_id(provider_id),
        }

    def create_provider(self, provider_data: Mapping[str, Any]) -> dict[str, Any]:
        """Create a provider with nested models, ``api_key`` and parameters (audited)."""

        def op() -> tuple[Provider, list[Event]]:
            p = self.repository.create_provider(provider_data)
            pid = p.provider_id
            events: list[Event] = [("provider", pid, "create", None, provider_entity(p))]
            events += [(e, k, "create", None, b) for e, k, b in self._children(pid)]
            return p, events

        p = self._audited("cannot create provider", op)
        return self.get_provider(p.provider_id) or {}

    def update_provider(self, provider_id: str, provider_data: Mapping[str, Any]) -> dict[str, Any]:
        """Change provider-level fields (partial update, audited)."""

        def op() -> tuple[Provider, list[Event]]:
            current = self.repository.require_provider(provider_id)
            before = provider_entity(current)
            params_before = {
                k: b for e, k, b in self._children(provider_id) if KINDS[e] is CONNECTION_PARAMETER
            }
            p = self.repository.update_provider(provider_id, provider_data)
            after = provider_entity(p)
            events: list[Event] = []
            if after != before:
                events.append(("provider", provider_id, "update", before, after))
            for e, k, b in self._children(provider_id):
                if KINDS[e] is CONNECTION_PARAMETER and params_before.get(k) != b:
                    action = "update" if k in params_before else "create"
                    events.append((e, k, action, params_before.get(k), b))
            return p, events

        self._audited(f"cannot update provider {provider_id!r}", op)
        return self.get_provider(provider_id) or {}

    def delete_provider(self, provider_id: str, *, force: bool = False) -> bool:
        """Delete a provider and its children (audited); False if it does not exist."""

        def op() -> tuple[bool, list[Event]]:
            p = self.repository.get_provider(provider_id)
            if p is None:
                return False, []
            events: list[Event] = [
                (e, k, "delete", b, None) for e, k, b in self._children(provider_id)
            ]
            events.append(("provider", provider_id, "delete", provider_entity(p), None))
            return self.repository.delete_provider(provider_id, force=force), events

        return self._audited(f"cannot delete provider {provider_id!r}", op)

    # -- children -----------------------------------------------------------------------------

    def get_models_by_provider_id(self, provider_id: str) -> list[dict[str, Any]]:
        """The provider's models as dicts."""
        return [model_dict(m) for m in self.repository.get_models_by_provider_id(provider_id)]

    def create_model(self, model_data: Mapping[str, Any]) -> dict[str, Any]:
        """Create a model for ``model_data["provider_id"]`` (audited)."""

        def op() -> tuple[ProviderModel, list[Event]]:
            m = self.repository.create_model(model_data)
            return m, [
                ("model", model_key(m.provider_id, m.model_id), "create", None, model_entity(m))
            ]

        return model_dict(self._audited("cannot create model", op))

    def update_model(
        self, provider_id: str, model_id: str, model_data: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Change a model's fields (partial update, audited when it changes)."""

        def op() -> tuple[ProviderModel, list[Event]]:
            before = model_entity(self.repository.require_model(provider_id, model_id))
            m = self.repository.update_model(provider_id, model_id, model_data)
            after = model_entity(m)
            key = model_key(provider_id, model_id)
            return m, ([] if after == before else [("model", key, "update", before, after)])

        return model_dict(self._audited(f"cannot update model {model_id!r}", op))

    def delete_model(self, provider_id: str, model_id: str) -> bool:
        """Delete a model (audited); False if it does not exist."""
        return self._delete_child("model", self.repository.get_model(provider_id, model_id))

    def _delete_child(
        self, entity: str, row: ProviderModel | ApiKey | ConnectionParameter | None
    ) -> bool:
        if row is None:
            return False
        body = {
            "model": model_entity,
            "api_key": key_entity,
            "connection_parameter": param_entity,
        }[entity](row)  # type: ignore[operator]
        key = entity_key(entity, row.provider_id, body)

        def op() -> tuple[bool, list[Event]]:
            self.repository.delete_child(row, f"{entity} {key!r}")
            return True, [(entity, key, "delete", body, None)]

        return self._audited(f"cannot delete {entity} {key!r}", op)

    def get_api_keys_by_provider_id(self, provider_id: str) -> list[dict[str, Any]]:
        """The provider's API keys, values masked."""
        return [api_key_dict(k) for k in self.repository.get_api_keys_by_provider_id(provider_id)]

    def create_api_key(self, api_key_data: Mapping[str, Any]) -> dict[str, Any]:
        """Store an API key encrypted (audited; the audit row never holds the value)."""

        def op() -> tuple[ApiKey, list[Event]]:
            k = self.repository.create_api_key(api_key_data)
            body = key_entity(k)
            return k, [
                ("api_key", entity_key("api_key", k.provider_id, body), "create", None, body)
            ]

        return api_key_dict(self._audited("cannot create API key", op))

    def delete_api_key(
        self, provider_id: str, name: str = "default", environment: str = "default"
    ) -> bool:
        """Delete an API key (audited); False if it does not exist."""
        key = self.repository.get_api_key(provider_id, name, environment)
        return self._delete_child("api_key", key)

    def get_api_key_value(
        self, provider_id: str, name: str = "default", environment: str = "default"
    ) -> str:
        """The decrypted API key: the one explicit way to read it back."""
        return self.repository.get_api_key_value(provider_id, name, environment)

    def get_connection_parameters_by_provider_id(self, provider_id: str) -> list[dict[str, Any]]:
        """The provider's connection parameters, sensitive values masked."""
        params = self.repository.get_connection_parameters_by_provider_id(provider_id)
        return [parameter_dict(c) for c in params]

    def set_connection_parameter(self, param_data: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a connection parameter (audited when it changes)."""

        def op() -> tuple[ConnectionParameter, list[Event]]:
            pid = param_data.get("provider_id") if isinstance(param_data, Mapping) else None
            before = {
                k: b
                for e, k, b in (self._children(pid) if isinstance(pid, str) else [])
                if KINDS[e] is CONNECTION_PARAMETER
            }
            c = self.repository.set_connection_parameter(param_data)
            after = param_entity(c)
            key = entity_key("connection_parameter", c.provider_id, after)
            if before.get(key) == after:
                return c, []
            action = "update" if key in before else "create"
            return c, [("connection_parameter", key, action, before.get(key), after)]

        return parameter_dict(self._audited("cannot set connection parameter", op))

    def get_connection_parameter_value(
        self, provider_id: str, param_name: str, environment: str = "default"
    ) -> Any:
        """A parameter's value, decrypted when sensitive (explicit secret read)."""
        return self.repository.get_connection_parameter_value(provider_id, param_name, environment)

    def delete_connection_parameter(
        self, provider_id: str, param_name: str, environment: str = "default"
    ) -> bool:
        """Delete a connection parameter (audited); False if it does not exist."""
        param = self.repository.get_connection_parameter(provider_id, param_name, environment)
        return self._delete_child("connection_parameter", param)
