"""The state an apply leaves behind, computed from the base state and the changes (pure).

``apply`` hashes the state it leaves and stores it in the revision without reading the gateway
tables back: the writes are exactly the plan's effective changes, so the result is the base
state with those changes patched in: the same canonical shape and order as
:func:`gwconfig.reconcile.state.read_state` gives (providers by id, parameters and keys by (name,
environment), models by id, routes and consumers by name), with the values the rows were
written from. The reconciler tests check it against a real re-read on every engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gwconfig.entities import (
    CHILD_KINDS,
    CHILDREN,
    CONNECTION_PARAMETER,
    CONSUMER,
    EGRESS_POLICY,
    PROVIDER,
    ROUTE,
    SecretScope,
)
from gwconfig.reconcile.diff import Change

#: the canonical provider's list -> the fields that order it (as the state reader sorts it)
_ORDER = {
    k.parent: tuple(f for _, f in k.identity if f is not None) for k in CHILD_KINDS if k.parent
}


def _identity(kind: str, body: Mapping[str, Any]) -> Any:
    fields = _ORDER[kind]
    return body[fields[0]] if len(fields) == 1 else tuple(body[f] for f in fields)


def patched_state(
    base: Mapping[str, Any],
    base_secrets: Mapping[SecretScope, str],
    changes: Iterable[Change],
    default_route: str | None,
    ciphertexts: Mapping[SecretScope, str],
) -> tuple[dict[str, Any], dict[SecretScope, str], dict[SecretScope, str | None]]:
    """(state data, secret ciphertexts, fingerprints) after writing ``changes`` onto ``base``.

    ``default_route`` is the route apply flagged as default; ``ciphertexts`` are the ciphertexts
    it wrote for created or updated secrets.
    """
    providers: dict[str, dict[str, Any]] = {p["provider_id"]: p for p in base["providers"]}
    children: dict[str, dict[str, dict[Any, Mapping[str, Any]]]] = {}
    routes: dict[str, Mapping[str, Any]] = {r["name"]: r for r in base["gateway"]["routes"]}
    secrets = dict(base_secrets)
    gone: set[str] = set()
    egress = base["gateway"].get("egress")
    consumers: dict[str, Mapping[str, Any]] = {c["name"]: c for c in base.get("consumers", ())}

    def kids(pid: str, kind: str) -> dict[Any, Mapping[str, Any]]:
        mine = children.setdefault(pid, {})
        if kind not in mine:
            mine[kind] = {_identity(kind, b): b for b in providers[pid].get(kind, ())}
        return mine[kind]

    for c in changes:
        of = c.kind
        if of is PROVIDER:
            pid = c.key
            if c.action == "delete":
                providers.pop(pid, None)
                children.pop(pid, None)
                gone.add(pid)
                continue
            old = providers.get(pid)
            kept = {k: old[k] for k in CHILDREN} if old is not None else {k: [] for k in CHILDREN}
            providers[pid] = {**(c.after or {}), **kept}
        elif of.parent is not None:
            kind = of.parent
            pid = c.provider_id or ""
            body = c.after if c.action != "delete" else c.before
            assert body is not None
            ident = _identity(kind, body)
            if c.action == "delete":
                kids(pid, kind).pop(ident, None)
            else:
                kids(pid, kind)[ident] = body
            if of.secret_fields:
                key = SecretScope.of(c.entity, pid, body)
                if c.action != "delete" and key in ciphertexts:
                    secrets[key] = ciphertexts[key]
                else:
                    secrets.pop(key, None)
        elif of is EGRESS_POLICY:
            egress = None if c.action == "delete" else c.after
        elif of is ROUTE or of is CONSUMER:
            name = (c.before or c.after or {})["name"]
            named = routes if of is ROUTE else consumers
            if c.action == "delete":
                named.pop(name, None)
            else:
                named[name] = c.after or {}
    for pid, kinds in children.items():
        if pid in providers:
            p = providers[pid] = dict(providers[pid])
            for kind, items in kinds.items():
                p[kind] = [items[k] for k in sorted(items)]
    if gone:
        secrets = {k: v for k, v in secrets.items() if k[0] not in gone}
    fingerprints: dict[SecretScope, str | None] = {}
    for pid in providers:
        p = providers[pid]
        for k in p["api_keys"]:
            fingerprints[SecretScope.of("api_key", pid, k)] = k["value"]["fingerprint"]
        for prm in p["connection_parameters"]:
            if CONNECTION_PARAMETER.is_secret(prm):
                scope = SecretScope.of("connection_parameter", pid, prm)
                fingerprints[scope] = prm["value"]["fingerprint"]
    data = {
        **base,
        "providers": [providers[pid] for pid in sorted(providers)],
        "gateway": {
            "default_route": default_route if default_route in routes else None,
            "routes": [routes[name] for name in sorted(routes)],
        },
    }
    if egress is not None:  # only when set: states without a policy keep their hash
        data["gateway"]["egress"] = egress
    data.pop("consumers", None)
    if consumers:  # only when there are any, as the state reader gives them
        data["consumers"] = [consumers[name] for name in sorted(consumers)]
    return data, secrets, fingerprints
