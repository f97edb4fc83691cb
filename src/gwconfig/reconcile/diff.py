"""Desired x actual canonical configurations -> ordered, typed changes (pure, no I/O).

Both sides use the canonical shape of :mod:`gwconfig.canonical`; secret values are already
replaced by ``{"fingerprint": ...}`` (or ``{"unknown": reason}`` when the reference could not be
resolved at plan time), so nothing here ever sees a plaintext secret.

Entities, their keys (the same keys as ``CompiledConfig.sources``) and the order of their
changes come from the registry, :mod:`gwconfig.entities`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, NamedTuple

# re-exported: callers of the diff read these as ``gwconfig.reconcile.diff`` names
from gwconfig.entities import CHILDREN as CHILDREN
from gwconfig.entities import (
    CONSUMER,
    DEFAULT_ROUTE,
    EGRESS_POLICY,
    EGRESS_POLICY_KEY,
    KEY_FUNCTIONS,
    KINDS,
    PROVIDER,
    ROUTE,
    EntityKind,
    EntityType,
    is_secret_field,
    phase,
)
from gwconfig.entities import DEFAULT_ROUTE_KEY as DEFAULT_ROUTE_KEY
from gwconfig.entities import ENTITY_TYPES as ENTITY_TYPES
from gwconfig.entities import entity_label as entity_label
from gwconfig.entities import mask_entity as mask_entity
from gwconfig.errors import PlanError
from gwconfig.reconcile.changes import (
    ACTIONS,
    AddItem,
    AnyField,
    Change,
    Create,
    Delete,
    Diff,
    FieldChange,
    RemoveItem,
    SensitiveField,
    SetField,
    Update,
)

# The change types are defined in gwconfig.reconcile.changes; importing them from here keeps
# working.
__all__ = [
    "ACTIONS", "CHILDREN", "DEFAULT_ROUTE_KEY", "ENTITY_TYPES", "NEEDS_PRUNE", "PROTECTED",
    "AddItem", "Change", "Create", "Delete", "Diff", "Entity", "EntityType", "FieldChange",
    "RemoveItem", "SensitiveField", "SetField", "Update",
    "diff", "entities", "entity_label", "field_changes", "is_secret_field", "mask_entity",
    "selected_providers",
]  # fmt: skip

NEEDS_PRUNE = "needs --prune"
PROTECTED = "deletion_protection is set in the database"

_MISSING: Any = object()


class Entity(NamedTuple):
    """One diffable entity of a canonical configuration (a tuple: cheap to make by the 10,000)."""

    entity: EntityType
    provider_id: str | None
    body: Mapping[str, Any]

    @property
    def kind(self) -> EntityKind:
        """The entity's kind (what behaviour per kind dispatches on)."""
        return KINDS[self.entity]


def entities(
    config: Mapping[str, Any],
    skip: Collection[str] = (),
    other: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Entity]:
    """Flatten a canonical configuration into ``key -> Entity``.

    Providers in ``skip`` are left out; with ``other`` (the other side's providers by id),
    models equal on both sides are left out too, so a large provider with one changed model
    costs one dict lookup per model instead of an entity per model on each side.
    """
    out: dict[str, Entity] = {}
    provider_key, param_key, api_key_key, model_key, route_key = (
        KEY_FUNCTIONS[k] for k in ("provider", "connection_parameter", "api_key", "model", "route")
    )
    for p in config.get("providers", ()):
        pid = p["provider_id"]
        if pid in skip:
            continue
        body = {k: v for k, v in p.items() if k not in CHILDREN}
        out[provider_key(pid, body)] = Entity("provider", pid, body)
        for c in p.get("connection_parameters", ()):
            out[param_key(pid, c)] = Entity("connection_parameter", pid, c)
        for k in p.get("api_keys", ()):
            out[api_key_key(pid, k)] = Entity("api_key", pid, k)
        twin = other.get(pid) if other is not None else None
        theirs = {m["model_id"]: m for m in twin.get("models", ())} if twin else {}
        for m in p.get("models", ()):
            if theirs.get(m["model_id"]) == m:
                continue
            out[model_key(pid, m)] = Entity("model", pid, m)
    gateway = config.get("gateway") or {}
    for r in gateway.get("routes", ()):
        out[route_key(None, r)] = Entity("route", None, r)
    out[DEFAULT_ROUTE_KEY] = Entity(
        "default_route", None, {"default_route": gateway.get("default_route")}
    )
    if gateway.get("egress") is not None:
        out[EGRESS_POLICY_KEY] = Entity("egress_policy", None, gateway["egress"])
    consumer_key = KEY_FUNCTIONS["consumer"]
    for c in config.get("consumers", ()):
        out[consumer_key(None, c)] = Entity("consumer", None, c)
    return out


def selected_providers(
    desired: Mapping[str, Any],
    actual: Mapping[str, Any],
    targets: Iterable[str] = (),
    tags: Iterable[str] = (),
) -> frozenset[str] | None:
    """Provider ids chosen by ``--target``/``--select-tag`` on either side (None: everything)."""
    targets, tags = set(targets), set(tags)
    if not targets and not tags:
        return None
    chosen = set(targets)
    for config in (desired, actual):
        for p in config.get("providers", ()):
            if tags.intersection(p.get("tags", ())):
                chosen.add(p["provider_id"])
    return frozenset(chosen)


def _in_selection(ent: Entity, selected: Collection[str] | None, routes: set[str]) -> bool:
    if selected is None:
        return True
    kind = ent.kind
    if kind is ROUTE:
        return ent.body["name"] in routes
    if kind is DEFAULT_ROUTE:
        return ent.body.get("default_route") in routes
    if kind is EGRESS_POLICY:  # apply stores the manifests' policy whatever is selected
        return True
    if kind is CONSUMER:  # a selection of providers leaves the consumers alone
        return False
    return ent.provider_id in selected


def _selected_routes(
    want: Mapping[str, Entity], have: Mapping[str, Entity], selected: Collection[str]
) -> set[str]:
    """Routes whose every target belongs to a selected provider (desired side wins)."""
    names: set[str] = set()
    for key in set(want) | set(have):
        ent = want.get(key) or have[key]
        if ent.kind is not ROUTE:
            continue
        if all(t["provider_id"] in selected for t in ent.body.get("targets", ())):
            names.add(ent.body["name"])
    return names


def field_changes(
    old: Any, new: Any, path: str = "", sensitive: frozenset[str] = frozenset()
) -> list[AnyField]:
    """Field-level differences, recursing into dicts; scalar lists item by item."""
    if path in sensitive:
        unknown = new.get("unknown") if isinstance(new, Mapping) else None
        return [SensitiveField(path=path, unknown=unknown)]
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[AnyField] = []
        for k in sorted(set(old) | set(new)):
            a, b = old.get(k, _MISSING), new.get(k, _MISSING)
            if a is _MISSING or b is _MISSING or a != b:
                sub = f"{path}.{k}" if path else str(k)
                out.extend(
                    field_changes(
                        None if a is _MISSING else a, None if b is _MISSING else b, sub, sensitive
                    )
                )
        return out
    if isinstance(old, list) and isinstance(new, list):
        if all(not isinstance(x, dict | list) for x in (*old, *new)):
            removed = [x for x in old if x not in new]
            added = [x for x in new if x not in old]
            if removed or added:
                items: list[AnyField] = [RemoveItem(path=path, old=x) for x in removed]
                return items + [AddItem(path=path, new=x) for x in added]
        elif len(old) == len(new):
            out = []
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                if a != b:
                    out.extend(field_changes(a, b, f"{path}[{i}]", sensitive))
            return out
    return [SetField(path=path, old=old, new=new)]


def _key_of(change: Change) -> str:
    return change.key


def _phase(change: Change) -> int:
    return phase(change.entity, change.action)


def _sensitive_paths(entity: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> frozenset[str]:
    if is_secret_field(entity, a) or is_secret_field(entity, b):
        return frozenset({"value"})
    return frozenset()


def diff(
    desired: Mapping[str, Any],
    actual: Mapping[str, Any],
    *,
    prune: bool = False,
    selected: Collection[str] | None = None,
    drift_keys: Collection[str] = frozenset(),
    drift_revision: int | None = None,
) -> Diff:
    """Compare two canonical configurations: the ordered changes, and warnings about them.

    Without ``prune`` deletions are listed but blocked; providers protected in ``actual`` are
    never deleted (nor their children). ``selected`` limits every change to those providers.
    ``drift_revision`` names the revision the drifted keys moved from (in a warning).
    """
    if prune and not desired.get("providers") and actual.get("providers"):
        raise PlanError(
            "refusing to delete everything: the manifests declare no providers but the database "
            f"has {len(actual['providers'])}",
            hint="check the manifest path; nothing was changed",
        )
    # fast path: a provider equal on both sides (one C-level deep compare) has no changes
    have_by_id = {p["provider_id"]: p for p in actual.get("providers", ())}
    want_by_id = {p["provider_id"]: p for p in desired.get("providers", ())}
    same = {pid for pid, p in want_by_id.items() if have_by_id.get(pid) == p}
    want, have = entities(desired, same, have_by_id), entities(actual, same, want_by_id)
    routes = _selected_routes(want, have, selected) if selected is not None else set()
    protected = {
        p["provider_id"]
        for p in actual.get("providers", ())
        if p.get("deletion_protection") and p["provider_id"] not in want
    }
    changes: list[Change] = []
    drift = frozenset(drift_keys)
    for key, w in want.items():
        h = have.get(key)
        if h is not None and h.body == w.body:
            continue
        if not _in_selection(w, selected, routes) and (
            h is None or not _in_selection(h, selected, routes)
        ):
            continue
        if h is None and w.kind is DEFAULT_ROUTE:  # the database has none: an update
            if w.body.get("default_route") is None:
                continue
            h = Entity("default_route", None, {"default_route": None})
        if h is None:
            changes.append(
                Create(
                    entity=w.entity,
                    key=key,
                    provider_id=w.provider_id,
                    after=w.body,
                    drift=key in drift,
                )
            )
        else:
            paths = _sensitive_paths(w.entity, h.body, w.body)
            fields = tuple(field_changes(h.body, w.body, "", paths))
            changes.append(
                Update(
                    entity=w.entity,
                    key=key,
                    provider_id=w.provider_id,
                    before=h.body,
                    after=w.body,
                    fields=fields,
                    drift=key in drift,
                )
            )
    for key, h in have.items():
        if key in want or not _in_selection(h, selected, routes):
            continue
        blocked = None
        if h.provider_id in protected:
            blocked = PROTECTED
        elif not prune and h.kind is not EGRESS_POLICY:  # a setting the Gateway manifest owns
            blocked = NEEDS_PRUNE
        changes.append(
            Delete(
                entity=h.entity,
                key=key,
                provider_id=h.provider_id,
                before=h.body,
                drift=key in drift,
                blocked=blocked,
            )
        )
    phases: dict[int, list[Change]] = {}
    for c in changes:
        phases.setdefault(_phase(c), []).append(c)
    changes = [c for n in sorted(phases) for c in sorted(phases[n], key=_key_of)]
    warnings: list[str] = []
    kept = [c for c in changes if c.blocked == PROTECTED and c.kind is PROVIDER]
    for c in kept:
        warnings.append(
            f"provider {c.key} is missing from the manifests but {PROTECTED}; it is kept "
            "(apply deletion_protection: false first to delete it)"
        )
    if not desired.get("providers") and actual.get("providers") and not prune:
        warnings.append("the manifests declare no providers; nothing will be deleted")
    if drift_revision is not None and any(c.drift for c in changes):
        n = sum(1 for c in changes if c.drift)
        warnings.append(
            f"drift since revision {drift_revision}: {n} change{'s' if n != 1 else ''} would "
            "revert edits made outside gwconfig"
        )
    return Diff(tuple(changes), tuple(warnings))
