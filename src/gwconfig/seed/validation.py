"""Seed dict shapes <-> canonical entities, validated by the manifest schema.

The seed-compatible repository accepts plain dicts (``create_provider({... "connection_params":
{...}, "models": [...], "api_key": {"key_value": ..., "is_encrypted": True}})``). They are turned
into a :class:`~gwconfig.manifests.model.ProviderManifest` so validation, defaults and canonical
form are
exactly those of ``gwconfig compile``. Plaintext secrets never enter the manifest: a placeholder
reference stands in, and the plaintext travels beside it to the row builders (which encrypt it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gwconfig.db.models import ApiKey, ConnectionParameter, Provider, ProviderModel
from gwconfig.entities import MODEL, SecretScope
from gwconfig.entities.records import ApiKeyBody, ModelBody, ParameterBody, ProviderBody
from gwconfig.errors import ValidationFailed
from gwconfig.manifests.compile import canonical_api_key as canonical_key
from gwconfig.manifests.compile import canonical_parameter as canonical_param
from gwconfig.manifests.in_memory import Problem, check_providers
from gwconfig.manifests.limits import (
    DEPTH_MESSAGE,
    MARIADB_JSON_DEPTH,
    MODEL_PARAMETERS_DEPTH,
    too_deep,
)
from gwconfig.manifests.model import (
    ApiKeySpec,
    ConnectionParameterSpec,
    ModelSpec,
    ProviderManifest,
)
from gwconfig.secrets.names import header_param, sensitive_header

#: Stands in for a plaintext secret while the manifest schema validates the rest.
SEED_PLACEHOLDER = {"env": "SEED_VALUE_PLACEHOLDER"}  # never resolved: not a GWCONFIG_ name
CONNECTION_FIELDS = ("api_base", "api_version", "headers")
#: Provider fields a seed dict may set on the provider row itself (its children aside).
PROVIDER_LEVEL = (
    "provider_type",
    "display_name",
    "description",
    "enabled",
    "connection_params",
    "request_settings",
    "tags",
    "deletion_protection",
)
_PROVIDER_FIELDS = {
    "provider_id",
    *PROVIDER_LEVEL,
    "models",
    "api_key",
    "api_keys",
    "connection_parameters",
}
_NONE_MEANS_DEFAULT = ("enabled", "tags", "deletion_protection", "request_settings", "models")
_KEY_FIELDS = {"provider_id", "key_value", "is_encrypted", "name", "environment", "expires_at"}
_PARAM_FIELDS = {"provider_id", "param_name", "param_value", "is_sensitive", "environment"}

#: secret scope (the seed dict's provider id) -> plaintext
Plaintexts = dict[SecretScope, str]

_M = TypeVar("_M", bound=BaseModel)


def validated(model: type[_M], doc: Mapping[str, Any], what: str) -> _M:
    """``doc`` validated as ``model``, or a :func:`validation_failed` naming ``what``."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise validation_failed(what, exc) from None


def seed_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A manifest field's location as the seed dict names it (``connection.parameters.0`` ->
    ``connection_parameters.0``, ``connection.api_base`` -> ``connection_params.api_base``)."""
    if loc[:1] != ("connection",):
        return loc
    if loc[1:2] == ("parameters",):
        return ("connection_parameters", *loc[2:])
    return ("connection_params", *loc[1:])


def validation_failed(what: str, exc: ValidationError) -> ValidationFailed:
    """A :class:`ValidationFailed` listing every problem as ``field.path: message`` (no values)."""
    problems = []
    fields: list[tuple[tuple[str | int, ...], str]] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = seed_loc(tuple(err["loc"]))
        loc = ".".join(str(part) for part in where)
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{loc}: {msg}" if loc else msg)
        fields.append((where, msg))
    failed = ValidationFailed(f"invalid {what}: " + "; ".join(problems) + "; nothing was written")
    failed.errors = tuple(fields)
    return failed


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationFailed(f"invalid {what}: expected a dict, got {type(value).__name__}")
    return value


def _unknown(data: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(str(k) for k in set(data) - allowed)
    if unknown:
        raise ValidationFailed(
            f"invalid {what}: unknown field(s) {', '.join(unknown)}",
            hint="allowed: " + ", ".join(sorted(allowed)),
        )


def _plaintext(value: Any, field: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"invalid {what}: {field} must be a non-empty string")
    return value


def _key_input(data: Any, what: str) -> tuple[dict[str, Any], str]:
    data = _mapping(data, what)
    _unknown(data, _KEY_FIELDS, what)
    plain = _plaintext(data.get("key_value"), "key_value", what)
    doc: dict[str, Any] = {"value": SEED_PLACEHOLDER}
    for field in ("name", "environment", "expires_at"):
        if data.get(field) is not None:
            doc[field] = data[field]
    return doc, plain


def _param_input(data: Any, what: str) -> tuple[dict[str, Any], str | None]:
    data = _mapping(data, what)
    _unknown(data, _PARAM_FIELDS, what)
    if "param_name" not in data or "param_value" not in data:
        raise ValidationFailed(f"invalid {what}: param_name and param_value are required")
    sensitive = data.get("is_sensitive", False)
    if not isinstance(sensitive, bool):
        raise ValidationFailed(f"invalid {what}: is_sensitive must be true or false")
    doc: dict[str, Any] = {"name": data["param_name"], "sensitive": sensitive}
    if data.get("environment") is not None:
        doc["environment"] = data["environment"]
    if sensitive:
        doc["value"] = SEED_PLACEHOLDER
        return doc, _plaintext(data["param_value"], "param_value", what)
    doc["value"] = data["param_value"]
    return doc, None


#: model fields whose default is None: there a None is the value, not "use the default"
_NONE_IS_A_VALUE = frozenset(f.name for f in MODEL.specs if f.default is None)


def model_input(data: Any, what: str, provider_id: Any = None) -> dict[str, Any]:
    """A seed model dict as a ``ModelSpec`` document (``provider_id`` checked and dropped).

    Seed conveniences: ``capabilities`` may be a dict of flags (true ones are kept) and a None
    value means "use the default".
    """
    data = dict(_mapping(data, what))
    pid = data.pop("provider_id", provider_id)
    if provider_id is not None and pid != provider_id:
        raise ValidationFailed(
            f"invalid {what}: provider_id {pid!r} does not match {provider_id!r}"
        )
    caps = data.get("capabilities")
    if isinstance(caps, Mapping):
        data["capabilities"] = sorted(str(k) for k, v in caps.items() if v)
    return {k: v for k, v in data.items() if v is not None or k in _NONE_IS_A_VALUE}


def provider_manifest(data: Any) -> tuple[ProviderManifest, Plaintexts]:
    """Validate a seed ``create_provider`` dict; return the manifest and its plaintext secrets."""
    data = _mapping(data, "provider")
    label = f"provider {data.get('provider_id')!r}"
    pid = str(data.get("provider_id"))
    _unknown(data, _PROVIDER_FIELDS, label)
    connection_in = _mapping(data.get("connection_params") or {}, f"{label} connection_params")
    connection: dict[str, Any] = {
        k: connection_in[k] for k in CONNECTION_FIELDS if connection_in.get(k) is not None
    }
    params: list[dict[str, Any]] = [
        {"name": name, "value": value}
        for name, value in connection_in.items()
        if name not in CONNECTION_FIELDS
    ]
    plaintexts: Plaintexts = {}
    headers = connection.get("headers")
    if isinstance(headers, Mapping):  # a credential header is write-only: a secret, like a key
        connection["headers"] = dict(headers)
        for name, value in headers.items():
            if isinstance(name, str) and sensitive_header(name):
                scope = SecretScope(pid, "param", header_param(name), "default")
                plaintexts[scope] = _plaintext(value, f"connection_params.headers.{name}", label)
                connection["headers"][name] = SEED_PLACEHOLDER
    for item in data.get("connection_parameters") or ():
        doc, plain = _param_input(item, f"{label} connection parameter")
        params.append(doc)
        if plain is not None:
            env = doc.get("environment", "default")
            plaintexts[SecretScope(pid, "param", doc["name"], env)] = plain
    if params:
        connection["parameters"] = params
    keys: list[dict[str, Any]] = []
    key_items = list(data.get("api_keys") or ())
    if data.get("api_key") is not None:
        key_items.insert(0, data["api_key"])
    for item in key_items:
        doc, plain = _key_input(item, f"{label} api_key")
        keys.append(doc)
        name, env = doc.get("name", "default"), doc.get("environment", "default")
        plaintexts[SecretScope(pid, "key", name, env)] = plain
    doc = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        **{
            k: v
            for k, v in data.items()
            if k not in ("connection_params", "api_key", "api_keys", "connection_parameters")
            and not (v is None and k in _NONE_MEANS_DEFAULT)
        },
        "connection": connection,
        "api_keys": keys,
    }
    if isinstance(data.get("models"), list | tuple):
        doc["models"] = [
            model_input(m, f"{label} model", data.get("provider_id")) for m in data["models"]
        ]
    manifest = validated(ProviderManifest, doc, label)
    refused(check_providers([doc]), label)  # what one provider can get wrong on its own
    return manifest, plaintexts


def refused(problems: list[Problem], what: str) -> None:
    """Raise :class:`ValidationFailed` for ``problems`` of ``validate``'s checks (if any)."""
    if problems:
        failed = ValidationFailed(
            f"invalid {what}: "
            + "; ".join(
                ".".join(map(str, seed_loc(p.loc))) + f": {p.message}" for p in problems[:20]
            )
            + "; nothing was written"
        )
        failed.errors = tuple((seed_loc(p.loc), p.message) for p in problems)
        raise failed


def key_spec(data: Mapping[str, Any], what: str) -> tuple[dict[str, Any], str]:
    """Validate a seed ``create_api_key`` dict: (canonical key with placeholder, plaintext)."""
    doc, plain = _key_input(data, what)
    spec = validated(ApiKeySpec, doc, what)
    return canonical_key(spec), plain


def param_spec(data: Mapping[str, Any], what: str) -> tuple[dict[str, Any], str | None]:
    """Validate a seed ``set_connection_parameter`` dict: (canonical parameter, plaintext)."""
    doc, plain = _param_input(data, what)
    spec = validated(ConnectionParameterSpec, doc, what)
    return canonical_param(spec), plain


# -- ORM rows -> canonical entity bodies (as read_state / diff see them) -----------------------


def provider_entity(p: Provider) -> dict[str, Any]:
    """The canonical provider body without its children."""
    return ProviderBody(
        provider_id=p.provider_id,
        provider_type=p.provider_type,
        display_name=p.display_name,
        description=p.description,
        enabled=p.enabled,
        tags=list(p.tags),
        deletion_protection=p.deletion_protection,
        connection=dict(p.connection_params),
        request_settings=dict(p.request_settings),
    ).body()


def model_entity(m: ProviderModel) -> dict[str, Any]:
    """The canonical model body."""
    pricing = dict(m.pricing) if m.pricing is not None else None
    return ModelBody(
        model_id=m.model_id,
        display_name=m.display_name,
        model_type=m.model_type,
        context_window=m.context_window,
        max_tokens=m.max_tokens,
        enabled=m.enabled,
        capabilities=list(m.capabilities),
        parameters=dict(m.parameters),
        pricing=pricing,
        aliases=list(m.aliases),
    ).body()


def key_entity(k: ApiKey) -> dict[str, Any]:
    """The canonical key body; the value is the stored fingerprint."""
    value = {"fingerprint": k.fingerprint}
    return ApiKeyBody(
        name=k.name, environment=k.environment, value=value, expires_at=k.expires_at
    ).body()


def param_entity(c: ConnectionParameter) -> dict[str, Any]:
    """The canonical parameter body; a sensitive value is the stored fingerprint."""
    return ParameterBody.stored(
        name=c.param_name,
        environment=c.environment,
        sensitive=c.is_sensitive,
        value=c.param_value,
        fingerprint=c.fingerprint,
    ).body()


def validated_model(data: Mapping[str, Any], what: str, *, mariadb: bool = False) -> ModelSpec:
    """``data`` validated as a :class:`ModelSpec` (ValidationFailed naming ``what``); its
    ``parameters`` nest no deeper than a manifest's data may (:data:`MAX_DEPTH`), nor, on
    MariaDB (``mariadb``), than its JSON columns hold."""
    parameters = data.get("parameters")
    message, deep = DEPTH_MESSAGE, too_deep(parameters, MODEL_PARAMETERS_DEPTH)
    if deep is None and mariadb:  # its JSON columns hold less: the audit row's, the model in
        # an object, is the deepest (the scalars are no level of MariaDB's)
        message = f"data nested deeper than MariaDB stores ({MARIADB_JSON_DEPTH} levels of JSON)"
        deep = too_deep(parameters, 2, MARIADB_JSON_DEPTH + 1)
    if deep is not None:
        loc = ("parameters", *deep)
        failed = ValidationFailed(
            f"invalid {what}: {'.'.join(map(str, loc[:8]))}...: {message}; nothing was written"
        )
        failed.errors = ((loc, message),)
        raise failed
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(what, exc) from None
