"""``ConfigLoader.update_provider_config``: the seed's provider dict, applied through the service.

Accepts the migration guide's shape (section 2.2)::

    {"provider_id": "openai", "provider_type": "openai", "display_name": "OpenAI",
     "enabled": True, "api_base": "https://api.openai.com/v1",
     "models": {"gpt-4-turbo-preview": {"display_name": "GPT-4 Turbo", "max_tokens": 4096}},
     "api_key": "..."}          # optional; a string or {"key_value": ..., "environment": ...}

and writes it with :class:`gwconfig.seed.service.ProviderService`, so every change is audited. It
is an imperative change: the next ``gwconfig plan`` shows it as drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gwconfig.errors import ValidationFailed

PROVIDER_FIELDS = (
    "provider_type",
    "display_name",
    "description",
    "enabled",
    "request_settings",
    "tags",
    "deletion_protection",
)
CONNECTION_FIELDS = ("api_base", "api_version", "headers")
_ACCEPTED = {"provider_id", "models", "api_key", "connection_params", *PROVIDER_FIELDS}
_ACCEPTED.update(CONNECTION_FIELDS)


def normalise(provider_id: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Split a seed config dict into provider fields, connection, models and API key."""
    if not isinstance(config, Mapping):
        raise ValidationFailed(f"provider config for {provider_id!r} must be a mapping")
    if config.get("provider_id", provider_id) != provider_id:
        raise ValidationFailed(
            f"provider_id {config.get('provider_id')!r} in the config does not match "
            f"{provider_id!r}"
        )
    unknown = sorted(set(config) - _ACCEPTED)
    if unknown:
        raise ValidationFailed(
            f"unknown field(s) in the config for {provider_id!r}: {', '.join(unknown)}",
            hint="accepted: " + ", ".join(sorted(_ACCEPTED)),
        )
    connection = dict(config.get("connection_params") or {})
    for name in CONNECTION_FIELDS:
        if name in config:
            connection[name] = config[name]
    raw_models = config.get("models") or {}
    if isinstance(raw_models, Mapping):
        models = [{"model_id": mid, **dict(spec or {})} for mid, spec in raw_models.items()]
    else:
        models = [dict(m) for m in raw_models]
    api_key = config.get("api_key")
    if isinstance(api_key, str):
        api_key = {"key_value": api_key}
    return {
        "fields": {k: config[k] for k in PROVIDER_FIELDS if k in config},
        "connection": connection,
        "models": models,
        "api_key": dict(api_key) if api_key is not None else None,
    }


def update_provider_config(
    loader: Any, provider_id: str, config: Mapping[str, Any], current_user_id: Any = None
) -> dict[str, Any]:
    """Create or update ``provider_id`` from a seed config dict (audited); returns the provider."""
    from sqlalchemy.orm import Session

    from gwconfig.seed.service import ProviderService  # SQLAlchemy: only for a database

    spec = normalise(provider_id, config)
    with Session(loader.engine) as session:
        service = ProviderService(session, loader.encryption_keys(), current_user_id)
        existing = service.get_provider(provider_id)
        if existing is None:
            data: dict[str, Any] = {
                "provider_id": provider_id,
                **spec["fields"],
                "connection_params": spec["connection"],
                "models": spec["models"],
            }
            if spec["api_key"] is not None:
                data["api_key"] = spec["api_key"]
            return service.create_provider(data)
        changes = {k: v for k, v in spec["fields"].items() if existing.get(k) != v}
        if spec["connection"]:
            merged = {**existing["connection_params"], **spec["connection"]}
            if merged != existing["connection_params"]:
                changes["connection_params"] = merged
        if changes:
            service.update_provider(provider_id, changes)
        _update_models(service, provider_id, spec["models"])
        if spec["api_key"] is not None:
            _update_key(service, provider_id, spec["api_key"])
        return service.get_provider(provider_id) or {}


def _update_models(service: Any, provider_id: str, models: list[dict[str, Any]]) -> None:
    current = {m["model_id"]: m for m in service.get_models_by_provider_id(provider_id)}
    for model in models:
        mid = model["model_id"]
        have = current.get(mid)
        if have is None:
            service.create_model({"provider_id": provider_id, **model})
            continue
        if all(have.get(k) == v for k, v in model.items()):
            continue
        update = getattr(service, "update_model", None)
        if update is None:
            raise ValidationFailed(
                f"model {provider_id}/{mid} already exists with other values, and the audited "
                "service cannot change existing models",
                hint="change the model in providers.d/ and run 'gwconfig apply'",
            )
        update(provider_id, mid, {k: v for k, v in model.items() if k != "model_id"})


def _update_key(service: Any, provider_id: str, api_key: dict[str, Any]) -> None:
    name = api_key.get("name", "default")
    environment = api_key.get("environment", "default")
    for key in service.get_api_keys_by_provider_id(provider_id):
        if key["name"] == name and key["environment"] == environment:
            plain = api_key.get("key_value")
            if isinstance(plain, str) and key["fingerprint"] == service.repository.keys.fingerprint(
                plain
            ):
                return
            raise ValidationFailed(
                f"provider {provider_id!r} already has API key {name!r}@{environment!r}; the "
                "audited service does not replace keys",
                hint="rotate it in providers.d/ and run 'gwconfig apply'",
            )
    service.create_api_key({"provider_id": provider_id, **api_key})
