"""The checks of ``validate`` on every write of the seed service (and so of the REST API).

After a write is flushed, and before it commits, the providers it touched are read back from the
transaction, turned into the Provider documents ``gwconfig dump`` would write, and checked by
:func:`gwconfig.manifests.in_memory.check_providers` in the context of the rest of the stored
configuration (the other providers, the routes, the consumers): the database never holds a state
that no manifest could express (``max_tokens`` over ``context_window``, an alias taken twice, a
route to a model that was deleted or disabled, a consumer naming a model that is gone, ...). An
error refuses the write with :class:`~gwconfig.errors.ValidationFailed`, whose field errors name
the field.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.orm import Session

from gwconfig.errors import ValidationFailed
from gwconfig.manifests.in_memory import (
    CONSUMER_PREFIX,
    GATEWAY,
    Loc,
    check_providers,
    provider_info,
)
from gwconfig.manifests.model import API_VERSION
from gwconfig.reconcile.state import read_state
from gwconfig.secrets.names import param_header
from gwconfig.seed.validation import SEED_PLACEHOLDER, seed_loc


def provider_document(canon: Mapping[str, Any]) -> dict[str, Any]:
    """The Provider document of a stored provider (canonical form; secrets as placeholders)."""
    conn = canon["connection"]
    connection: dict[str, Any] = {
        k: conn[k] for k in ("api_base", "api_version") if conn.get(k) is not None
    }
    headers = dict(conn.get("headers") or {})
    params = []
    for p in canon["connection_parameters"]:
        header = param_header(p["name"])
        if header is not None:  # a credential header, stored as a secret parameter
            headers[header] = SEED_PLACEHOLDER
            continue
        params.append({"name": p["name"], "environment": p["environment"],
                       "sensitive": p["sensitive"],
                       "value": SEED_PLACEHOLDER if p["sensitive"] else p["value"]})  # fmt: skip
    if headers:
        connection["headers"] = headers
    if params:
        connection["parameters"] = params
    keys = [
        {"name": k["name"], "environment": k["environment"], "value": SEED_PLACEHOLDER,
         **({"expires_at": k["expires_at"]} if k["expires_at"] is not None else {})}
        for k in canon["api_keys"]
    ]  # fmt: skip
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Provider",
        **{
            k: canon[k]
            for k in ("provider_id", "provider_type", "display_name", "description", "enabled")
            if canon[k] is not None
        },
        "tags": list(canon["tags"]),
        "deletion_protection": canon["deletion_protection"],
        "connection": connection,
        "request_settings": dict(canon["request_settings"]),
        "api_keys": keys,
        "models": [{k: v for k, v in m.items() if v is not None} for m in canon["models"]],
    }
    return doc


def gateway_document(gateway: Mapping[str, Any]) -> dict[str, Any]:
    """The Gateway document of the stored routes (canonical form)."""
    routes = [
        {
            "name": r["name"],
            **({"description": r["description"]} if r["description"] is not None else {}),
            "strategy": r["strategy"],
            "targets": [
                {"model": f"{t['provider_id']}/{t['model_id']}", "weight": t["weight"]}
                for t in r["targets"]
            ],
            "fallbacks": list(r["fallbacks"]),
        }
        for r in gateway["routes"]
    ]
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "Gateway", "routes": routes}
    if gateway.get("default_route") is not None:
        doc["default_route"] = gateway["default_route"]
    return doc


def check_written(
    session: Session, touched: Collection[str], what: str, model: str | None = None
) -> None:
    """Refuse (:class:`ValidationFailed`) a flushed write that leaves providers ``touched`` in
    a state ``validate`` rejects. ``model``: the model the write was about (its errors name its
    fields as the request's; others' are ``models.<model_id>.<field>``)."""
    data = read_state(session).data
    docs, others = [], []
    for canon in data["providers"]:
        if canon["provider_id"] in touched:
            docs.append(provider_document(canon))
        else:
            others.append(provider_info(canon))
    gone = set(touched) - {d["provider_id"] for d in docs}
    gateway = gateway_document(data["gateway"]) if data["gateway"]["routes"] else None
    consumers = [
        {"apiVersion": API_VERSION, "kind": "Consumer", **{k: v for k, v in c.items() if v}}
        for c in data.get("consumers", ())
    ]
    problems = check_providers(
        docs, others=others, gateway=gateway, deleted=gone, consumers=consumers
    )
    if not problems:
        return
    by_id = {d["provider_id"]: d for d in docs}
    failed = ValidationFailed(
        f"{what}: "
        + "; ".join(p.message for p in problems[:20])
        + "; nothing was written (the configuration must stay one that 'gwconfig validate' "
        "accepts)"
    )
    failed.errors = tuple(
        (_field(by_id.get(p.document), p.document, p.loc, model), p.message) for p in problems
    )
    raise failed


def _field(doc: Mapping[str, Any] | None, document: str, loc: Loc, model: str | None) -> Loc:
    """Where a problem is: a field of the written model, of the provider, or of the routes."""
    if document.startswith(CONSUMER_PREFIX):  # a consumer the write would break
        return ("consumers", document.removeprefix(CONSUMER_PREFIX), *loc)
    if document == GATEWAY or doc is None:
        return (GATEWAY, *loc)
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        model_id = doc["models"][loc[1]]["model_id"]
        return loc[2:] if model_id == model else ("models", model_id, *loc[2:])
    return seed_loc(loc)
