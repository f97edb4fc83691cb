"""The seed service's and REST API's part of the key origin binding and the egress policy.

* an ``api_base`` written here passes :func:`gwconfig.manifests.egress.api_base_refusal` under
  the egress policy the last apply stored (:func:`check_api_base`);
* a change of a provider's origin never moves a stored secret: secrets still unbound (NULL,
  stored before revision 0008) and the provider's ``key_origin`` are first bound to the origin
  the provider had (:func:`keep_bindings`);
* a secret written here is bound to the provider's ``key_origin`` (the origin apply or an
  ``admin`` token last bound its secrets to), or, with ``rebind`` (an ``admin`` token), to the
  provider's current origin, which then becomes its ``key_origin`` (:func:`secret_origin`).

See docs/secrets.md, "Threat model".
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, true, update
from sqlalchemy.orm import Session

from gwconfig.db.models import ApiKey, ConnectionParameter, Provider
from gwconfig.errors import ValidationFailed
from gwconfig.manifests.egress import api_base_refusal
from gwconfig.reconcile.gateway_settings import read_egress_policy
from gwconfig.secrets.origin import connection_origin

FIELD = ("connection_params", "api_base")


def check_api_base(session: Session, canon: dict[str, Any], what: str) -> None:
    """Refuse a canonical provider whose ``api_base`` the egress rules do not allow (422)."""
    api_base = (canon.get("connection") or {}).get("api_base")
    if not api_base:
        return
    why = api_base_refusal(api_base, read_egress_policy(session))
    if why is None:
        return
    failed = ValidationFailed(
        f"invalid {what}: {'.'.join(FIELD)}: {why}; nothing was written",
        hint="the egress policy is the Gateway manifest's egress.allow (applied by gwconfig apply)",
    )
    failed.errors = ((FIELD, why),)
    raise failed


def origin_now(provider: Provider) -> str:
    """The origin ``provider`` sends its requests to now."""
    return connection_origin(provider.provider_type, provider.connection_params)


def keep_bindings(session: Session, provider: Provider, before: str) -> None:
    """Before ``provider``'s origin moves away from ``before``: bind what is unbound to it."""
    if origin_now(provider) == before:
        return
    if provider.key_origin is None:
        provider.key_origin = before
    keys, params = cast(Table, ApiKey.__table__), cast(Table, ConnectionParameter.__table__)
    pid = provider.provider_id
    for table, secret in ((keys, true()), (params, params.c.is_sensitive.is_(True))):
        session.execute(
            update(table)
            .where(table.c.provider_id == pid, table.c.origin.is_(None), secret)
            .values(origin=before)
        )


def secret_origin(provider: Provider, *, rebind: bool) -> str:
    """The origin a secret written now for ``provider`` is bound to (see the module doc)."""
    current = origin_now(provider)
    if rebind or provider.key_origin is None:
        provider.key_origin = current
        return current
    return provider.key_origin
