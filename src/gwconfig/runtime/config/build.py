"""Canonical configuration dict -> :class:`GatewayConfig`, with secrets opened lazily."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

import orjson

from gwconfig.canonical import parse_timestamp
from gwconfig.entities import SealedScope, SecretResolver, SecretScope
from gwconfig.errors import GwconfigError
from gwconfig.runtime.config.consumers import ConsumerPolicy
from gwconfig.runtime.config.gateway import (
    ApiKey,
    GatewayConfig,
    ProviderConfig,
    RequestSettings,
    RouteConfig,
)
from gwconfig.runtime.config.shared_state import SharedStatePolicy
from gwconfig.runtime.config.table import ModelTable
from gwconfig.runtime.scrub import Secrets
from gwconfig.secrets.names import param_header, sensitive_header
from gwconfig.secrets.origin import connection_origin, mismatch_message

#: the origin each stored secret is bound to (None: the provider's current origin)
Origins = Mapping[SecretScope, str | None]


def _pick_environment(entries: list[dict[str, Any]], environment: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["environment"] in (environment, "default")]


#: request_settings JSON (sorted keys) -> RequestSettings; most providers share a few settings
_SETTINGS: dict[bytes, RequestSettings] = {}


def _request_settings(data: Mapping[str, Any]) -> RequestSettings:
    """:meth:`RequestSettings.from_dict`, memoised on the settings' canonical JSON (immutable)."""
    key = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    settings = _SETTINGS.get(key)
    if settings is None:
        if len(_SETTINGS) >= 512:
            _SETTINGS.clear()
        settings = _SETTINGS[key] = RequestSettings.from_dict(data)
    return settings


def _resolve(resolver: SecretResolver, ref: Any, scope: SealedScope) -> tuple[Any, Any]:
    try:
        return resolver(ref, scope), None
    except GwconfigError as exc:  # keep loading: only requests to this provider will fail
        return None, str(exc)


def build_provider(
    p: Mapping[str, Any],
    environment: str,
    resolver: SecretResolver,
    models: ModelTable | None = None,
    origins: Origins | None = None,
) -> ProviderConfig:
    """A :class:`ProviderConfig` from one canonical provider dict, secrets resolved.

    ``models`` replaces the table built from ``p["models"]`` (the database loader's lazy rows);
    ``origins``: the origin each stored secret is bound to (the database loader's).
    """
    pid = p["provider_id"]
    bound = origins or {}
    conn = p.get("connection") or {}
    here = connection_origin(p["provider_type"], conn) if bound else ""
    origin_errors: list[str] = []
    keys = sorted(
        _pick_environment(p.get("api_keys", []), environment),
        key=lambda k: (k["environment"] != environment, k["name"] != "default", k["name"]),
    )
    api_keys = []
    for k in keys:
        expires = parse_timestamp(k.get("expires_at"))
        scope = (pid, k["name"], k["environment"])
        origin = bound.get(SecretScope(pid, "key", *scope[1:]))
        if origin is not None and origin != here:  # never opened: never sent
            what = f"API key '{k['name']}@{k['environment']}'"
            origin_errors.append(mismatch_message(pid, what, origin, here))
            continue
        api_keys.append(
            ApiKey(
                k["name"],
                k["environment"],
                expires_at=expires.timestamp() if expires else None,
                opener=partial(resolver, k["value"], scope),
            )
        )
    params: dict[str, Any] = {}
    param_errors: dict[str, str] = {}
    # "default" first so that the exact environment overrides it
    for cp in sorted(
        _pick_environment(p.get("connection_parameters", []), environment),
        key=lambda c: c["environment"] != "default",
    ):
        name = cp["name"]
        if cp.get("sensitive"):
            origin = bound.get(SecretScope(pid, "param", name, cp["environment"]))
            if origin is not None and origin != here:
                what = f"connection parameter '{name}@{cp['environment']}'"
                origin_errors.append(mismatch_message(pid, what, origin, here))
                params.pop(name, None)
                continue
            value, error = _resolve(
                resolver, cp["value"], (pid, f"param:{name}", cp["environment"])
            )
            if error is not None:
                param_errors[name] = error
                params.pop(name, None)
                continue
        else:
            value = cp["value"]
        param_errors.pop(name, None)
        params[name] = value
    headers = dict(conn.get("headers") or {})
    for name in list(params):
        header = param_header(name)
        if header is not None:  # a secret header: opened here, sent with every request
            headers[header] = str(params.pop(name))
    if models is None:
        models = ModelTable({m["model_id"]: m for m in p.get("models", [])})
    return ProviderConfig(
        provider_id=pid,
        provider_type=p["provider_type"],
        display_name=p.get("display_name") or pid,
        enabled=p.get("enabled", True),
        api_base=conn.get("api_base"),
        api_version=conn.get("api_version"),
        headers=MappingProxyType(headers),
        settings=_request_settings(p.get("request_settings") or {}),
        api_keys=tuple(api_keys),
        params=MappingProxyType(params),
        param_errors=MappingProxyType(param_errors),
        models=models,
        tags=tuple(p.get("tags", ())),
        key_environments=tuple(sorted({k["environment"] for k in p.get("api_keys", ())})),
        secrets=_secrets(p, resolver, api_keys, headers),
        origin_errors=tuple(origin_errors),
    )


def _secrets(
    p: Mapping[str, Any],
    resolver: SecretResolver,
    api_keys: list[ApiKey],
    headers: Mapping[str, str],
) -> Secrets:
    """Openers of every secret of ``p``, in every environment (opened only to scrub output)."""
    pid = p["provider_id"]
    mine = {(k.name, k.environment): k for k in api_keys}
    openers: list[Callable[[], str | None]] = []
    for k in p.get("api_keys", ()):
        key = mine.get((k["name"], k["environment"]))
        if key is not None:  # already opened for requests, or will be: do not open it twice
            openers.append(partial(getattr, key, "value"))
        else:
            openers.append(partial(resolver, k["value"], (pid, k["name"], k["environment"])))
    for cp in p.get("connection_parameters", ()):
        if cp.get("sensitive"):
            scope = (pid, f"param:{cp['name']}", cp["environment"])
            openers.append(partial(resolver, cp["value"], scope))
    for name, value in headers.items():
        if sensitive_header(name):
            openers.append(partial(str, value))
    return Secrets(openers)


def build_gateway_config(
    data: Mapping[str, Any],
    environment: str,
    resolver: SecretResolver,
    *,
    content_hash: str | Callable[[], str] | None = None,
    version: Any = None,
    source: str | None = None,
    model_tables: Mapping[str, ModelTable] | None = None,
    origins: Origins | None = None,
) -> GatewayConfig:
    """A :class:`GatewayConfig` from canonical data; ``resolver`` opens each secret reference.

    ``content_hash`` may be a zero-argument callable: it is then computed on first access.
    ``model_tables`` (provider_id -> table) replaces the providers' ``models`` lists;
    ``origins`` (secret -> bound origin) comes with secrets read from the database.
    """
    if model_tables is None:
        providers = {
            p["provider_id"]: build_provider(p, environment, resolver, None, origins)
            for p in data.get("providers", [])
        }
    else:
        empty = ModelTable({})
        providers = {
            p["provider_id"]: build_provider(
                p, environment, resolver, model_tables.get(p["provider_id"], empty), origins
            )
            for p in data.get("providers", [])
        }
    gateway = data.get("gateway") or {}
    routes = {
        r["name"]: RouteConfig(
            name=r["name"],
            strategy=r.get("strategy", "fallback"),
            targets=tuple(
                (t["provider_id"], t["model_id"], t.get("weight", 1)) for t in r["targets"]
            ),
            fallbacks=tuple(r.get("fallbacks", ())),
            description=r.get("description"),
        )
        for r in gateway.get("routes", [])
    }
    config = GatewayConfig(
        providers=MappingProxyType(providers),
        routes=MappingProxyType(routes),
        default_route=gateway.get("default_route"),
        environment=environment,
        shared_state=SharedStatePolicy.from_canonical(gateway.get("shared_state")),
        _content_hash=content_hash,
        version=version,
        source=source,
    )
    if data.get("consumers"):  # the alias index is the config's: built, then the consumers
        policies = consumer_policies(data["consumers"], config.aliases)
        object.__setattr__(config, "consumers", MappingProxyType(policies))
    return config


def consumer_policies(
    consumers: Iterable[Mapping[str, Any]], aliases: Mapping[str, list[tuple[str, str]]]
) -> dict[str, ConsumerPolicy]:
    """Each canonical consumer as a :class:`ConsumerPolicy`.

    Model patterns are matched against what a name resolves to (a route name, or the
    ``provider_id/model_id`` of its target: :mod:`gwconfig.runtime.permits`), so an alias among
    a consumer's models also stands for the models it names.
    """
    out: dict[str, ConsumerPolicy] = {}
    for c in consumers:
        models = list(c.get("models") or ())
        for entry in list(models):
            models += [f"{pid}/{mid}" for pid, mid in aliases.get(entry, ())]
        limits, budget = c.get("limits") or {}, c.get("budget") or {}
        out[c["name"]] = ConsumerPolicy(
            name=c["name"],
            models=tuple(dict.fromkeys(models)),
            rpm=limits.get("rpm"),
            tpm=limits.get("tpm"),
            budget_usd=budget.get("usd"),
            budget_period=budget.get("period"),
            tags=tuple(c.get("tags") or ()),
            description=c.get("description") or "",
        )
    return out
