"""Manifests -> CompiledConfig (pure): defaults filled, canonical order, content hash.

Secret references stay references: compile never resolves a secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gwconfig.canonical import (
    FORMAT_VERSION,
    LATER_SETTINGS,
    canonical_json,
    content_hash,
    pretty_json,
)
from gwconfig.entities.records import (
    ApiKeyBody,
    ConsumerBody,
    ModelBody,
    ParameterBody,
    ProviderBody,
    RouteBody,
)
from gwconfig.manifests.consumer import ConsumerManifest
from gwconfig.manifests.model import (
    ApiKeySpec,
    ConnectionParameterSpec,
    GatewayManifest,
    ModelSpec,
    Pricing,
    ProviderManifest,
    Route,
    SecretRef,
)
from gwconfig.secrets.names import header_param


@dataclass(frozen=True)
class SourceRef:
    """Where an entity was declared: file path and 1-based line (not part of the hash)."""

    path: str
    line: int
    col: int = 1


@dataclass(frozen=True)
class CompiledConfig:
    """The canonical configuration (see :mod:`gwconfig.canonical`) and its content hash.

    ``sources`` maps entity keys (``provider_id``, ``provider_id/model_id``,
    ``provider_id/key:name@environment``, ``provider_id/param:name@environment``,
    ``route:name``, ``consumer:name``) to where they were declared; it never affects the hash.
    """

    data: Mapping[str, Any]
    content_hash: str
    sources: Mapping[str, SourceRef] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """The compiled document: canonical data plus the top-level ``content_hash``."""
        return {**self.data, "content_hash": self.content_hash}

    def to_json_bytes(self) -> bytes:
        """Pretty, deterministic JSON of :meth:`to_json_dict`."""
        return pretty_json(self.to_json_dict())

    def canonical_bytes(self) -> bytes:
        """Compact canonical JSON of the data (what the hash is computed over)."""
        return canonical_json(self.data)


def _secret(ref: SecretRef) -> dict[str, str]:
    return ref.to_json()


def canonical_parameter(p: ConnectionParameterSpec) -> dict[str, Any]:
    """The canonical dict of one connection parameter (a secret stays a reference)."""
    value: Any = _secret(p.value) if isinstance(p.value, SecretRef) else p.value
    return ParameterBody(
        name=p.name, environment=p.environment, sensitive=p.is_sensitive, value=value
    ).body()


def canonical_api_key(k: ApiKeySpec) -> dict[str, Any]:
    """The canonical dict of one API key (its value stays a reference)."""
    return ApiKeyBody(
        name=k.name, environment=k.environment, value=_secret(k.value), expires_at=k.expires_at
    ).body()


def _pricing(p: Pricing) -> dict[str, Any]:
    f = p.__dict__  # the fields of a pydantic model, read without attribute lookups
    return {
        "currency": f["currency"],
        "input_per_1m": f["input_per_1m"],
        "output_per_1m": f["output_per_1m"],
        "cached_input_per_1m": f["cached_input_per_1m"],
    }


def _model(m: ModelSpec) -> dict[str, Any]:
    # Called once per model (tens of thousands): fields straight from the model's __dict__.
    f = m.__dict__
    name, pricing, caps, aliases = f["display_name"], f["pricing"], f["capabilities"], f["aliases"]
    return ModelBody(
        model_id=f["model_id"],
        display_name=name if name is not None else f["model_id"],
        model_type=f["model_type"],
        context_window=f["context_window"],
        max_tokens=f["max_tokens"],
        enabled=f["enabled"],
        capabilities=sorted(set(caps)) if caps else [],
        parameters=dict(f["parameters"]),
        pricing=_pricing(pricing) if pricing is not None else None,
        aliases=sorted(set(aliases)) if aliases else [],
    ).body()


def canonical_provider(p: ProviderManifest) -> dict[str, Any]:
    """The canonical dict of one provider manifest."""
    settings = p.request_settings.model_dump()
    settings["retry_on_status"] = list(settings["retry_on_status"])
    for name, default in LATER_SETTINGS:
        if settings[name] == default:  # left out: earlier configurations keep their hash
            del settings[name]
    plain = {k: v for k, v in p.connection.headers.items() if isinstance(v, str)}
    connection = {
        "api_base": p.connection.api_base,
        "api_version": p.connection.api_version,
        "headers": dict(sorted(plain.items())),
    }
    # a secret header is the sensitive parameter header:NAME (encrypted, fingerprinted, sealed)
    secret_headers = [
        ParameterBody(
            name=header_param(k), environment="default", sensitive=True, value=_secret(v)
        ).body()
        for k, v in p.connection.headers.items()
        if isinstance(v, SecretRef)
    ]
    return {
        **ProviderBody(
            provider_id=p.provider_id,
            provider_type=p.provider_type,
            display_name=p.display_name if p.display_name is not None else p.provider_id,
            description=p.description,
            enabled=p.enabled,
            tags=sorted(set(p.tags)),
            deletion_protection=p.deletion_protection,
            connection=connection,
            request_settings=settings,
        ).body(),
        "connection_parameters": sorted(
            [*(canonical_parameter(x) for x in p.connection.parameters), *secret_headers],
            key=lambda d: (d["name"], d["environment"]),
        ),
        "api_keys": sorted(
            (canonical_api_key(x) for x in p.api_keys),
            key=lambda d: (d["name"], d["environment"]),
        ),
        "models": sorted((_model(m) for m in p.models), key=lambda d: d["model_id"]),
    }


def canonical_route(r: Route) -> dict[str, Any]:
    """The canonical dict of one route."""
    targets = [
        {"provider_id": t.provider_id, "model_id": t.model_id, "weight": t.weight}
        for t in r.targets
    ]
    return RouteBody(
        name=r.name,
        description=r.description,
        strategy=r.strategy,
        targets=targets,
        fallbacks=list(r.fallbacks),
    ).body()


def canonical_consumer(c: ConsumerManifest) -> dict[str, Any]:
    """The canonical dict of one consumer (``limits`` holds only the limits set)."""
    limits = {k: v for k, v in (("rpm", c.limits.rpm), ("tpm", c.limits.tpm)) if v is not None}
    budget = c.budget
    return ConsumerBody(
        name=c.name,
        description=c.description,
        models=list(c.models),
        limits=limits,
        budget={"usd": budget.usd, "period": budget.period} if budget is not None else None,
        tags=sorted(set(c.tags)),
    ).body()


def build_config(
    providers: Iterable[ProviderManifest],
    gateway: GatewayManifest | None,
    sources: Mapping[str, SourceRef] | None = None,
    consumers: Iterable[ConsumerManifest] = (),
) -> CompiledConfig:
    """Assemble validated manifests into a :class:`CompiledConfig` (no cross-checks here)."""
    return assemble_config((canonical_provider(p) for p in providers), gateway, sources, consumers)


def assemble_config(
    providers: Iterable[dict[str, Any]],
    gateway: GatewayManifest | None,
    sources: Mapping[str, SourceRef] | None = None,
    consumers: Iterable[ConsumerManifest] = (),
) -> CompiledConfig:
    """Like :func:`build_config`, from providers already in canonical form (any order)."""
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "providers": sorted(providers, key=lambda d: d["provider_id"]),
        "gateway": {
            "default_route": gateway.default_route if gateway else None,
            "routes": sorted(
                (canonical_route(r) for r in (gateway.routes if gateway else ())),
                key=lambda d: d["name"],
            ),
        },
    }
    if gateway is not None and gateway.egress is not None:  # only when set: hashes stay
        data["gateway"]["egress"] = {"allow": sorted(set(gateway.egress.allow))}
    if gateway is not None and gateway.shared_state is not None:
        data["gateway"]["shared_state"] = gateway.shared_state.canonical()
    listed = sorted((canonical_consumer(c) for c in consumers), key=lambda d: d["name"])
    if listed:  # only when there are consumers: configurations without keep their hash
        data["consumers"] = listed
    return CompiledConfig(data=data, content_hash=content_hash(data), sources=dict(sources or {}))
