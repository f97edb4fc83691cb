"""Checks of the ``kind: Consumer`` documents against the providers and the Gateway's routes.

Names are unique; each entry of ``models`` names a route or an alias, or is a
``provider_id/model_id`` pattern matching at least one model (or a pattern matching a route
name); a consumer with a budget may call only models that have a USD price for input and
output tokens (the error names those that have none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Protocol

from gwconfig.errors import Diagnostic
from gwconfig.manifests.consumer import ConsumerManifest
from gwconfig.manifests.diagnostics import clip, did_you_mean, quoted
from gwconfig.manifests.documents import RawDocument
from gwconfig.manifests.model import GatewayManifest

#: at most this many unpriced models are named in one error
NAMED_MODELS = 5
_GLOB = frozenset("*?[")


class Provided(Protocol):
    """What the checks read of a provider (:class:`gwconfig.manifests.checks.ProviderInfo`)."""

    provider_id: str
    models: dict[str, bool]
    unpriced: tuple[str, ...]


def is_pattern(entry: str) -> bool:
    """True when a ``models`` entry is a shell-style pattern (``*``, ``?`` or ``[``)."""
    return not _GLOB.isdisjoint(entry)


def _route_targets(gw: GatewayManifest | None) -> dict[str, set[str]]:
    """Route name -> every ``provider/model`` it may reach, through its fallbacks too."""
    if gw is None:
        return {}
    direct = {r.name: {t.model for t in r.targets} for r in gw.routes}
    falls = {r.name: [f for f in r.fallbacks if f in direct] for r in gw.routes}
    out: dict[str, set[str]] = {}
    for name in direct:
        seen, todo, reach = {name}, [name], set()
        while todo:
            here = todo.pop()
            reach |= direct[here]
            for nxt in falls[here]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        out[name] = reach
    return out


def _where(doc: RawDocument, container: Any, key: Any) -> tuple[int, int]:
    return doc.value_line(container, key)


def consumer_checks(
    consumers: Iterable[tuple[ConsumerManifest, RawDocument]],
    providers: Mapping[str, Provided],
    aliases: Mapping[str, str],
    gateway: GatewayManifest | None,
    complete: bool,
) -> list[Diagnostic]:
    """Every problem of the consumers; ``complete`` is False when some provider document was
    invalid (a name matching nothing may then be that provider's: not reported)."""
    out: list[Diagnostic] = []
    routes = _route_targets(gateway)
    keys = {f"{pid}/{m}": None for pid, info in providers.items() for m in info.models}
    unpriced = {f"{pid}/{m}" for pid, info in providers.items() for m in info.unpriced}
    first: dict[str, RawDocument] = {}
    for c, doc in consumers:
        raw = doc.data
        if c.name in first:
            other = first[c.name]
            line, col = _where(doc, raw, "name")
            where = f"{other.path}:{_where(other, other.data, 'name')[0]}"
            out.append(
                Diagnostic(doc.path, line, col, f"duplicate consumer {quoted(c.name)} (first at "
                           f"{where})", hint="consumer names are unique across all files")
            )  # fmt: skip
            continue
        first[c.name] = doc
        reach: set[str] = set()
        raw_models = raw.get("models") or []
        for i, entry in enumerate(c.models):
            found = _reach(entry, routes, aliases, keys)
            reach |= found
            if found or not complete:
                continue
            line, col = _where(doc, raw_models, i)
            out.append(Diagnostic(doc.path, line, col, _nothing(c.name, entry), hint=_hint(
                entry, routes, aliases, keys)))  # fmt: skip
        missing = sorted(reach & unpriced)
        if c.budget is not None and missing:
            named = ", ".join(clip(m) for m in missing[:NAMED_MODELS])
            more = len(missing) - NAMED_MODELS
            named += f" and {more} more" if more > 0 else ""
            line, col = _where(doc, raw, "budget")
            out.append(
                Diagnostic(
                    doc.path, line, col,
                    f"consumer {quoted(c.name)} has a budget but may call models without "
                    f"pricing: {named}",
                    hint="give those models pricing (input_per_1m and output_per_1m, in USD) or "
                    "leave them out of the consumer's models",
                )
            )  # fmt: skip
    return out


def _reach(
    entry: str, routes: Mapping[str, set[str]], aliases: Mapping[str, str], keys: dict[str, None]
) -> set[str]:
    """The ``provider/model`` keys ``entry`` lets a consumer call (empty: it names nothing)."""
    if not is_pattern(entry):
        if entry in routes:
            return set(routes[entry]) or {entry}
        if entry in aliases:
            return {aliases[entry]}
        return {entry} if "/" in entry and entry in keys else set()
    found = {k for k in keys if fnmatchcase(k, entry)}
    for name, targets in routes.items():
        if fnmatchcase(name, entry):
            found |= targets or {name}
    return found


def _nothing(name: str, entry: str) -> str:
    if is_pattern(entry):
        return f"consumer {quoted(name)}: model pattern {quoted(entry)} matches no model or route"
    if "/" in entry:
        return f"consumer {quoted(name)} names unknown model {quoted(entry)}"
    return f"consumer {quoted(name)} names unknown route or alias {quoted(entry)}"


def _hint(
    entry: str, routes: Mapping[str, set[str]], aliases: Mapping[str, str], keys: dict[str, None]
) -> str:
    close = None if is_pattern(entry) else did_you_mean(entry, [*routes, *aliases, *keys])
    return close or "name a route, an alias, or provider_id/model_id (patterns: openai/*)"
