"""The checks of ``validate`` on manifest documents built in memory, for the writers of the
gateway database (the REST API and the seed service, :mod:`gwconfig.seed.checks`) and for
``import``, so that none of them stores or writes what ``validate`` would reject.

A document built from data has no file positions: :class:`Located` gives every value a position
of its own (its "line") and keeps the field path of each, so a diagnostic of the very checks
``validate`` runs (nesting depth, the schema and NUL characters of
:func:`~gwconfig.manifests.validation.validate_documents`,
:func:`~gwconfig.manifests.checks.provider_checks` and
:func:`~gwconfig.manifests.checks.cross_checks`) names the field it is about.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gwconfig.errors import Diagnostic
from gwconfig.manifests.checks import ProviderInfo, cross_checks, provider_checks
from gwconfig.manifests.documents import Positions, RawDocument
from gwconfig.manifests.limits import DEPTH_MESSAGE, too_deep
from gwconfig.manifests.validation import validate_documents
from gwconfig.pricing import priced

GATEWAY = "gateway"
#: the label of a consumer's document (``consumer:NAME``)
CONSUMER_PREFIX = "consumer:"
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """An error of the checks: the document (its label), the field's path in it, the message."""

    document: str
    loc: Loc
    message: str


class Located:
    """A document built in memory, each value at a line of its own that maps to its path."""

    def __init__(self, label: str, data: dict[str, Any]) -> None:
        self.paths: dict[int, Loc] = {}
        positions: Positions = {}
        line = 2
        stack: list[tuple[Any, Loc]] = [(data, ())]
        while stack:
            node, path = stack.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                positions[(id(node), key)] = (line, 1, line, 1)
                self.paths[line] = (*path, key)
                line += 1
                if isinstance(value, dict | list):
                    stack.append((value, (*path, key)))
        self.doc = RawDocument(label, 1, data, 1, 1, positions)

    def problem(self, d: Diagnostic) -> Problem:
        """The diagnostic ``d`` (about this document) as a :class:`Problem`."""
        return Problem(self.doc.path, self.paths.get(d.line, ()), d.message)


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def check_providers(
    docs: Sequence[dict[str, Any]],
    *,
    others: Sequence[ProviderInfo] = (),
    gateway: dict[str, Any] | None = None,
    deleted: Collection[str] = (),
    consumers: Sequence[dict[str, Any]] = (),
) -> list[Problem]:
    """The errors ``validate`` finds in the Provider documents ``docs`` (labelled by provider
    id), in the context of the rest of the configuration: ``others`` (the other providers,
    summarised) and the ``gateway`` document. Errors of the context that ``docs`` (or the
    providers ``deleted``) do not cause (a route's fallbacks, the default route) are left out;
    warnings too.
    """
    now = datetime.now(UTC)
    plugins: list[set[str]] = []
    problems: list[Problem] = []
    located: dict[str, Located] = {}
    infos = list(others)
    invalid: set[str] = set()
    ours: set[str] = set(deleted)
    aliases: set[str] = set()
    for data in docs:
        pid = str(data.get("provider_id"))
        ours.add(pid)
        mem = Located(pid, data)
        located[pid] = mem
        deep = too_deep(data)
        if deep is not None:  # refused before anything walks it further
            problems.append(Problem(pid, deep, DEPTH_MESSAGE))
            invalid.add(pid)
            continue
        validated = validate_documents([mem.doc])
        diags = list(validated.diagnostics)
        invalid |= validated.invalid_provider_ids
        for p, doc in validated.providers:
            diags += provider_checks(p, doc, now, plugins)
            info = ProviderInfo.of(p, doc, 1)  # after the others: conflicts are reported here
            infos.append(info)
            aliases.update(a for a, _, _ in info.aliases)
        problems += [mem.problem(d) for d in diags if d.severity == "error"]
    gateways = []
    if gateway is not None:
        gw = Located(GATEWAY, gateway)
        located[GATEWAY] = gw
        gateways = validate_documents([gw.doc]).gateways
    kept = []
    for data in consumers:  # labelled consumer:NAME; a write that breaks one is refused
        mem = Located(CONSUMER_PREFIX + str(data.get("name")), data)
        located[mem.doc.path] = mem
        kept += validate_documents([mem.doc]).consumers
    empty = RawDocument("", 0, {}, 1, 1)

    def locate(path: str, _index: int) -> RawDocument:
        return located[path].doc if path in located else empty

    for d in cross_checks(infos, gateways, invalid, locate, kept):
        if d.severity != "error" or d.path not in located:
            continue
        problem = located[d.path].problem(d)
        if d.path != GATEWAY or _caused_by(problem.loc, gateway or {}, ours, aliases):
            problems.append(problem)
    return problems


def _caused_by(loc: Loc, gateway: Mapping[str, Any], ours: set[str], aliases: set[str]) -> bool:
    """Whether the Gateway's error at ``loc`` is about a provider of ``ours``: a route's target
    on one of them, or a route named like one of their models' ``aliases``."""
    if len(loc) >= 3 and loc[-1] == "model" and loc[-3] == "targets":
        return str(_value_at(gateway, loc)).split("/", 1)[0] in ours
    if loc and loc[-1] == "name":
        return _value_at(gateway, loc) in aliases
    return False


def provider_info(canon: Mapping[str, Any], order: int = 0) -> ProviderInfo:
    """What the cross-checks need of a provider in canonical form (without validating it)."""
    models: dict[str, bool] = {}
    aliases: list[tuple[str, int, str]] = []
    for i, m in enumerate(canon["models"]):
        models.setdefault(m["model_id"], bool(m["enabled"]))
        aliases.extend((a, i, m["model_id"]) for a in m["aliases"] or ())
    unpriced = tuple(m["model_id"] for m in canon["models"] if not priced(m))
    return ProviderInfo(
        canon["provider_id"], bool(canon["enabled"]), "", 0, order, models, aliases, None, unpriced
    )
