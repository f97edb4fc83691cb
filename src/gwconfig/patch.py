"""The state an apply leaves behind, computed from the base state and the changes (pure).

``apply`` used to read every gateway table back after writing, only to hash the result and
store it in the revision. The writes are exactly the plan's effective changes, so the result is
the base state with those changes patched in: the same canonical shape and order as
:func:`gwconfig.state.read_state` gives (providers by id, parameters and keys by (name,
environment), models by id, routes by name), with the values the rows were written from. The
reconciler tests check it against a real re-read on every engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gwconfig.diff import CHILDREN, Change

#: ``(provider_id, "key" | "param", name, environment)``
SecretKey = tuple[str, str, str, str]
_CHILD = {"connection_parameter": "connection_parameters", "api_key": "api_keys", "model": "models"}


def _identity(kind: str, body: Mapping[str, Any]) -> Any:
    return body["model_id"] if kind == "models" else (body["name"], body["environment"])


def _secret_key(c: Change, body: Mapping[str, Any]) -> SecretKey:
    kind = "key" if c.entity == "api_key" else "param"
    return (c.provider_id or "", kind, body["name"], body["environment"])


def patched_state(
    base: Mapping[str, Any],
    base_secrets: Mapping[SecretKey, str],
    changes: Iterable[Change],
    default_route: str | None,
    ciphertexts: Mapping[SecretKey, str],
) -> tuple[dict[str, Any], dict[SecretKey, str], dict[SecretKey, str | None]]:
    """(state data, secret ciphertexts, fingerprints) after writing ``changes`` onto ``base``.

    ``default_route`` is the route apply flagged as default; ``ciphertexts`` are the ciphertexts
    it wrote for created or updated secrets.
    """
    providers: dict[str, dict[str, Any]] = {p["provider_id"]: p for p in base["providers"]}
    children: dict[str, dict[str, dict[Any, Mapping[str, Any]]]] = {}
    routes: dict[str, Mapping[str, Any]] = {r["name"]: r for r in base["gateway"]["routes"]}
    secrets = dict(base_secrets)
    gone: set[str] = set()

    def kids(pid: str, kind: str) -> dict[Any, Mapping[str, Any]]:
        mine = children.setdefault(pid, {})
        if kind not in mine:
            mine[kind] = {_identity(kind, b): b for b in providers[pid].get(kind, ())}
        return mine[kind]

    for c in changes:
        if c.entity == "provider":
            pid = c.key
            if c.action == "delete":
                providers.pop(pid, None)
                children.pop(pid, None)
                gone.add(pid)
                continue
            old = providers.get(pid)
            kept = {k: old[k] for k in CHILDREN} if old is not None else {k: [] for k in CHILDREN}
            providers[pid] = {**(c.after or {}), **kept}
        elif c.entity in _CHILD:
            kind = _CHILD[c.entity]
            pid = c.provider_id or ""
            body = c.after if c.action != "delete" else c.before
            assert body is not None
            ident = _identity(kind, body)
            if c.action == "delete":
                kids(pid, kind).pop(ident, None)
            else:
                kids(pid, kind)[ident] = body
            if c.entity != "model":
                key = _secret_key(c, body)
                if c.action != "delete" and key in ciphertexts:
                    secrets[key] = ciphertexts[key]
                else:
                    secrets.pop(key, None)
        elif c.entity == "route":
            name = (c.before or c.after or {})["name"]
            if c.action == "delete":
                routes.pop(name, None)
            else:
                routes[name] = c.after or {}
    for pid, kinds in children.items():
        if pid in providers:
            p = providers[pid] = dict(providers[pid])
            for kind, items in kinds.items():
                p[kind] = [items[k] for k in sorted(items)]
    if gone:
        secrets = {k: v for k, v in secrets.items() if k[0] not in gone}
    fingerprints: dict[SecretKey, str | None] = {}
    for pid in providers:
        p = providers[pid]
        for k in p["api_keys"]:
            fingerprints[(pid, "key", k["name"], k["environment"])] = k["value"]["fingerprint"]
        for prm in p["connection_parameters"]:
            if prm["sensitive"]:
                scope = (pid, "param", prm["name"], prm["environment"])
                fingerprints[scope] = prm["value"]["fingerprint"]
    data = {
        **base,
        "providers": [providers[pid] for pid in sorted(providers)],
        "gateway": {
            "default_route": default_route if default_route in routes else None,
            "routes": [routes[name] for name in sorted(routes)],
        },
    }
    return data, secrets, fingerprints
