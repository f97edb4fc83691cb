"""Cross-document checks and source positions of every compiled entity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gwconfig.entities import SecretScope, model_key, route_key
from gwconfig.errors import Diagnostic
from gwconfig.manifests.compile import SourceRef
from gwconfig.manifests.consumer import ConsumerManifest
from gwconfig.manifests.consumer_checks import consumer_checks
from gwconfig.manifests.diagnostics import clip, did_you_mean, quoted
from gwconfig.manifests.documents import RawDocument
from gwconfig.manifests.egress import EgressPolicy, api_base_refusal
from gwconfig.manifests.model import (
    KNOWN_PROVIDER_TYPES,
    SECRET_HINT,
    GatewayManifest,
    ProviderManifest,
)
from gwconfig.pricing import priced
from gwconfig.secrets.names import header_param, sensitive_header


def _at(doc: RawDocument, container: Any, key: Any) -> tuple[int, int]:
    return doc.value_line(container, key)


def _where(doc: RawDocument, container: Any, key: Any) -> str:
    return f"{doc.path}:{_at(doc, container, key)[0]}"


def _plugin_types() -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group="gwconfig.providers")}


def _recorded(doc: RawDocument, container: Any, key: Any, *, at_key: bool) -> tuple[int, int]:
    """Like ``doc.value_line`` / ``doc.key_line``, from the positions recorded while parsing.

    Compiling parses with only the positions of entities recorded (see
    :func:`gwconfig.manifests.yamlparse.fast.parse_fast`); reading them here never re-parses a file.
    A position that was not recorded is computed the usual way.
    """
    pos = doc.positions.get((id(container), key))
    if pos is None:
        return doc.key_line(container, key) if at_key else doc.value_line(container, key)
    line, col = (pos[0], pos[1]) if at_key else (pos[2], pos[3])
    if doc.line_map is not None:
        return doc.template_line(line), 1
    return line, col


#: Where one provider's entities were declared: (entity key, line, col), in declaration order.
SourceLines = list[tuple[str, int, int]]


def provider_source_lines(p: ProviderManifest, doc: RawDocument) -> SourceLines:
    """Where the provider, its models, keys and parameters were declared (first one wins)."""
    raw = doc.data
    pid = p.provider_id
    out: SourceLines = [(pid, doc.template_line(doc.line), doc.col)]
    raw_models = raw.get("models") or []
    for i, m in enumerate(p.models):
        out.append((model_key(pid, m.model_id), *_recorded(doc, raw_models, i, at_key=False)))
    raw_keys = raw.get("api_keys") or []
    for i, k in enumerate(p.api_keys):
        line, col = _recorded(doc, raw_keys[i], "value", at_key=True)
        out.append((SecretScope(pid, "key", k.name, k.environment).id, line, col))
    raw_headers = (raw.get("connection") or {}).get("headers") or {}
    for name, value in p.connection.headers.items():
        if not isinstance(value, str):
            line, col = _recorded(doc, raw_headers, name, at_key=True)
            out.append((SecretScope(pid, "param", header_param(name), "default").id, line, col))
    raw_params = (raw.get("connection") or {}).get("parameters") or []
    for i, c in enumerate(p.connection.parameters):
        line, col = _recorded(doc, raw_params[i], "value", at_key=True)
        out.append((SecretScope(pid, "param", c.name, c.environment).id, line, col))
    return out


def add_sources(sources: dict[str, SourceRef], path: str, lines: SourceLines) -> None:
    """Add ``lines`` (of the file ``path``) to ``sources``; the first place of an entity wins."""
    for key, line, col in lines:
        if key not in sources:
            sources[key] = SourceRef(path, line, col)


def provider_sources(p: ProviderManifest, doc: RawDocument, sources: dict[str, SourceRef]) -> None:
    """Record where the provider, its models, keys and parameters were declared."""
    add_sources(sources, doc.path, provider_source_lines(p, doc))


def _check_provider(
    p: ProviderManifest, doc: RawDocument, now: datetime, plugins: list[set[str]]
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    raw = doc.data

    def diag(
        container: Any, key: Any, message: str, hint: str | None = None, severity: str = "error"
    ) -> None:
        line, col = _at(doc, container, key)
        out.append(Diagnostic(doc.path, line, col, message, severity, hint=hint))

    def repeated(seen: dict[Any, int], ident: Any, items: Any, i: int) -> str | None:
        """Where ``ident`` first stood in ``items`` when item ``i`` repeats it; else None (and
        ``ident`` is remembered at ``i``)."""
        if ident in seen:
            return _where(doc, items, seen[ident])
        seen[ident] = i
        return None

    def once_per_environment(
        seen: dict[Any, int], items: Any, i: int, what: str, name: str, environment: str
    ) -> None:
        """An error when item ``i`` of ``items`` repeats a ``name`` in its ``environment``."""
        first = repeated(seen, (name, environment), items, i)
        if first is not None:
            diag(
                items,
                i,
                f"duplicate {what} {quoted(name)} for environment {quoted(environment)} "
                f"(first at {first})",
            )

    if p.provider_type not in KNOWN_PROVIDER_TYPES:
        if not plugins:
            plugins.append(_plugin_types())
        if p.provider_type not in plugins[0]:
            choices = (*KNOWN_PROVIDER_TYPES, *sorted(plugins[0]))
            diag(
                raw,
                "provider_type",
                f"unknown provider_type {quoted(p.provider_type)}",
                did_you_mean(p.provider_type, choices)
                or f"known types: {', '.join(choices)} (plugins add more)",
            )
    raw_models = raw.get("models") or []
    seen_models: dict[str, int] = {}
    for i, m in enumerate(p.models):
        first = repeated(seen_models, m.model_id, raw_models, i)
        if first is not None:
            diag(
                raw_models[i],
                "model_id",
                f"duplicate model_id {quoted(m.model_id)} (first at {first})",
            )
        too_long = m.max_tokens is not None and m.context_window is not None
        if too_long and m.max_tokens > m.context_window:  # type: ignore[operator]
            diag(
                raw_models[i],
                "max_tokens",
                f"max_tokens ({m.max_tokens}) is larger than context_window "
                f"({m.context_window}) of model {quoted(m.model_id)}",
            )
    raw_keys = raw.get("api_keys") or []
    seen_keys: dict[tuple[str, str], int] = {}
    for i, k in enumerate(p.api_keys):
        once_per_environment(seen_keys, raw_keys, i, "API key", k.name, k.environment)
        if k.expires_at is not None:
            expires = k.expires_at if k.expires_at.tzinfo else k.expires_at.replace(tzinfo=UTC)
            if expires <= now:
                diag(
                    raw_keys[i],
                    "expires_at",
                    f"API key {quoted(k.name)} (environment {quoted(k.environment)}) expired on "
                    f"{expires.astimezone(UTC):%Y-%m-%d %H:%M} UTC; the gateway never uses it",
                    hint="rotate the key and update expires_at, or remove the entry",
                    severity="warning",
                )
    raw_headers = (raw.get("connection") or {}).get("headers") or {}
    for name, value in p.connection.headers.items():
        if isinstance(value, str) and sensitive_header(name):
            diag(
                raw_headers,
                name,
                f"header {quoted(name)} carries credentials: a plain value is not allowed",
                hint=f"{SECRET_HINT} (seal it with 'gwconfig seal --provider {p.provider_id} "
                f"--header {name}')",
            )
    raw_params = (raw.get("connection") or {}).get("parameters") or []
    seen_params: dict[tuple[str, str], int] = {}
    for i, c in enumerate(p.connection.parameters):
        once_per_environment(
            seen_params, raw_params, i, "connection parameter", c.name, c.environment
        )
    return out


@dataclass
class ProviderInfo:
    """What cross-document checks need of one valid provider (small enough to send around)."""

    provider_id: str
    enabled: bool
    path: str
    index: int
    order: int
    models: dict[str, bool]
    aliases: list[tuple[str, int, str]]
    api_base: str | None = None
    #: ids of the models without a USD price for input and output tokens
    unpriced: tuple[str, ...] = ()

    @classmethod
    def of(cls, p: ProviderManifest, doc: RawDocument, order: int) -> ProviderInfo:
        """Summarise a validated provider manifest."""
        models: dict[str, bool] = {}
        aliases: list[tuple[str, int, str]] = []
        for i, m in enumerate(p.models):
            models.setdefault(m.model_id, m.enabled)
            if m.aliases:
                aliases.extend((a, i, m.model_id) for a in m.aliases)
        unpriced = tuple(m.model_id for m in p.models if m.pricing is None or not priced(m.pricing))
        base = p.connection.api_base
        return cls(p.provider_id, p.enabled, doc.path, doc.index, order, models, aliases, base,
                   unpriced)  # fmt: skip


#: Finds a document again (path shown, document index) when a cross-check must point into it.
Locator = Callable[[str, int], RawDocument]


def provider_checks(
    p: ProviderManifest, doc: RawDocument, now: datetime, plugins: list[set[str]]
) -> list[Diagnostic]:
    """Checks of one provider on its own: types, duplicates inside it, limits, expiry."""
    return _check_provider(p, doc, now, plugins)


def cross_checks(
    infos: list[ProviderInfo],
    gateways: list[tuple[GatewayManifest, RawDocument]],
    invalid_provider_ids: set[str],
    locate: Locator,
    consumers: list[tuple[ConsumerManifest, RawDocument]] | None = None,
) -> list[Diagnostic]:
    """Checks across documents: unique provider ids and aliases, routes, then consumers."""
    out: list[Diagnostic] = []
    first_seen: dict[str, ProviderInfo] = {}
    aliases: dict[str, str] = {}
    providers: dict[str, ProviderInfo] = {}
    for info in sorted(infos, key=lambda i: (i.order, i.index)):
        if info.provider_id in first_seen:
            other = first_seen[info.provider_id]
            doc, first = locate(info.path, info.index), locate(other.path, other.index)
            line, col = _at(doc, doc.data, "provider_id")
            out.append(
                Diagnostic(
                    doc.path,
                    line,
                    col,
                    f"duplicate provider_id {quoted(info.provider_id)}: also defined at "
                    f"{_where(first, first.data, 'provider_id')}",
                    hint="provider ids are unique across all manifest files",
                )
            )
            continue
        first_seen[info.provider_id] = info
        providers[info.provider_id] = info
        for alias, i, model_id in info.aliases:
            owner = model_key(info.provider_id, model_id)
            if alias in aliases and aliases[alias] != owner:
                doc = locate(info.path, info.index)
                line, col = _at(doc, (doc.data.get("models") or [])[i], "aliases")
                out.append(
                    Diagnostic(
                        doc.path,
                        line,
                        col,
                        f"alias {quoted(alias)} of {clip(owner)} is already an alias of "
                        f"{clip(aliases[alias])}",
                    )
                )
            aliases.setdefault(alias, owner)
    out.extend(_check_gateway(gateways, providers, set(aliases), invalid_provider_ids))
    out.extend(_check_egress(gateways, providers, locate))
    if consumers:
        gateway = gateways[0][0] if gateways else None
        complete = not invalid_provider_ids
        out.extend(consumer_checks(consumers, providers, aliases, gateway, complete))
    return out


def _check_egress(
    gateways: list[tuple[GatewayManifest, RawDocument]],
    providers: dict[str, ProviderInfo],
    locate: Locator,
) -> list[Diagnostic]:
    """Every api_base passes :func:`api_base_refusal` under the Gateway's egress policy."""
    egress = gateways[0][0].egress if gateways else None
    policy = EgressPolicy(egress.allow) if egress is not None else None
    out: list[Diagnostic] = []
    for info in providers.values():
        why = api_base_refusal(info.api_base, policy) if info.api_base else None
        if why is None:
            continue
        doc = locate(info.path, info.index)
        line, col = _at(doc, doc.data.get("connection") or {}, "api_base")
        hint = "add the host to egress.allow in the Gateway manifest" if policy else None
        out.append(
            Diagnostic(doc.path, line, col, f"connection.api_base refused: {why}", hint=hint)
        )
    return out


def _check_gateway(
    gateways: list[tuple[GatewayManifest, RawDocument]],
    providers: dict[str, ProviderInfo],
    aliases: set[str],
    invalid_provider_ids: set[str],
) -> list[Diagnostic]:
    """At most one Gateway; routes point at enabled models; fallbacks exist and never loop."""
    out: list[Diagnostic] = []
    if not gateways:
        return out
    gw, doc = gateways[0]
    for _, extra in gateways[1:]:
        out.append(
            Diagnostic(
                extra.path,
                extra.template_line(extra.line),
                extra.col,
                f"a second Gateway document (the first is at {doc.path}:"
                f"{doc.template_line(doc.line)})",
                hint="keep all routes in one kind: Gateway document",
            )
        )
    raw_routes = doc.data.get("routes") or []
    names: dict[str, int] = {}

    def diag(
        container: Any, key: Any, message: str, hint: str | None = None, severity: str = "error"
    ) -> None:
        line, col = _at(doc, container, key)
        out.append(Diagnostic(doc.path, line, col, message, severity, hint=hint))

    for i, route in enumerate(gw.routes):
        raw = raw_routes[i]
        if route.name in names:
            diag(
                raw,
                "name",
                f"duplicate route {quoted(route.name)} (first at "
                f"{_where(doc, raw_routes, names[route.name])})",
            )
        else:
            names[route.name] = i
        if route.name in aliases:
            diag(raw, "name", f"route {quoted(route.name)} has the same name as a model alias")
        raw_targets = raw.get("targets") or []
        for j, target in enumerate(route.targets):
            if target.provider_id in invalid_provider_ids:
                continue  # that provider's own errors are reported already
            if target.provider_id not in providers:
                diag(
                    raw_targets[j],
                    "model",
                    f"route {quoted(route.name)} targets unknown provider "
                    f"{quoted(target.provider_id)}",
                    did_you_mean(target.provider_id, providers),
                )
            elif (found := providers[target.provider_id].models.get(target.model_id)) is None:
                known = list(providers[target.provider_id].models)
                diag(
                    raw_targets[j],
                    "model",
                    f"route {quoted(route.name)} targets unknown model "
                    f"{quoted(target.model_id)} of provider {quoted(target.provider_id)}",
                    did_you_mean(target.model_id, known),
                )
            elif not providers[target.provider_id].enabled or not found:
                what = "provider" if not providers[target.provider_id].enabled else "model"
                diag(
                    raw_targets[j],
                    "model",
                    f"route {quoted(route.name)} targets {clip(target.model)}, "
                    f"whose {what} is disabled",
                    hint="enable it or remove the target",
                )
    for i, route in enumerate(gw.routes):
        for j, name in enumerate(route.fallbacks):
            if name not in names:
                diag(
                    raw_routes[i].get("fallbacks") or [],
                    j,
                    f"route {quoted(route.name)} falls back to unknown route {quoted(name)}",
                    did_you_mean(name, names),
                )
    out.extend(_cycles(gw, doc, raw_routes, names))
    if gw.default_route is not None and gw.default_route not in names:
        diag(
            doc.data,
            "default_route",
            f"default_route {quoted(gw.default_route)} is not a route",
            did_you_mean(gw.default_route, names),
        )
    return out


def _cycles(
    gw: GatewayManifest, doc: RawDocument, raw_routes: list[Any], names: dict[str, int]
) -> list[Diagnostic]:
    graph = {r.name: [f for f in r.fallbacks if f in names] for r in gw.routes}
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()
    out: list[Diagnostic] = []

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        stack.append(name)
        for nxt in graph.get(name, []):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    raw = raw_routes[names[nxt]]
                    line, col = _at(doc, raw, "fallbacks" if "fallbacks" in raw else "name")
                    out.append(
                        Diagnostic(
                            doc.path,
                            line,
                            col,
                            "fallback cycle: " + " -> ".join(clip(n) for n in cycle),
                            hint="a route must not fall back to itself, directly or not",
                        )
                    )
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    return out


def gateway_sources(gw: GatewayManifest, doc: RawDocument, sources: dict[str, SourceRef]) -> None:
    """Record where each route was declared."""
    raw_routes = doc.data.get("routes") or []
    for i, route in enumerate(gw.routes):
        line, col = _recorded(doc, raw_routes, i, at_key=False)
        sources.setdefault(route_key(route.name), SourceRef(doc.path, line, col))
