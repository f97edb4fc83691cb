"""``gwconfig verify``: parity between the back-office and the gateway database.

Every provider, model, API key and connection parameter the back-office holds is compared field
by field with the gateway's: the fields whose spec is ``compared`` (see
:mod:`gwconfig.entities.fields`). Secret values are compared by value: the gateway's ciphertexts are
decrypted in memory with the encryption keys and compared with the back-office's plaintexts in
constant time (:func:`hmac.compare_digest`); no secret value is ever shown. Fields the back-office
has no column for (tags, pricing, aliases, routes...) are the gateway's own and not compared.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gwconfig.entities import (
    API_KEY,
    CONNECTION_PARAMETER,
    MODEL,
    PROVIDER,
    EntityKind,
    SecretScope,
)
from gwconfig.entities.fields import Field
from gwconfig.manifests.diagnostics import clip

if TYPE_CHECKING:
    from gwconfig.adopt.backoffice import Backoffice
    from gwconfig.reconcile.state import ActualState
    from gwconfig.secrets.keys import EncryptionKeys

#: the children compared, and how the report names them
CHILDREN: tuple[tuple[EntityKind, str], ...] = (
    (MODEL, "model"), (API_KEY, "API key"), (CONNECTION_PARAMETER, "parameter"),
)  # fmt: skip
#: counted per provider: canonical list -> the name in reports
COUNTED = {"models": "models", "api_keys": "keys", "connection_parameters": "parameters"}
#: the most differences listed (the count is always exact)
MAX_LISTED = 1000


@dataclass
class Parity:
    """Differences (readable lines, no secret values) and counts per provider on both sides."""

    differences: list[str] = field(default_factory=list)
    total: int = 0
    #: provider_id -> {"backoffice": {"models": n, ...}, "gateway": {...}}
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True at parity."""
        return self.total == 0

    def add(self, line: str) -> None:
        """Record one difference."""
        self.total += 1
        if len(self.differences) < MAX_LISTED:
            self.differences.append(line)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (``gwconfig verify --format json``)."""
        return {
            "parity": self.ok,
            "differences": self.total,
            "listed": self.differences,
            "providers": self.counts,
        }


def _shown(value: Any) -> str:
    return clip(repr(value), 120)


def _key(kind: EntityKind, item: dict[str, Any]) -> str:
    """A child's identity within its provider (``model_id``, ``name@environment``)."""
    return "@".join(str(item[f]) for _, f in kind.identity if f is not None)


def _compared(kind: EntityKind, secret: bool) -> tuple[Field, ...]:
    return tuple(f for f in kind.specs if f.compared and f.secret == secret)


#: kind -> the compared fields that never hold a secret, and those that may
_PLAIN = {kind: _compared(kind, False) for kind in (PROVIDER, MODEL, API_KEY, CONNECTION_PARAMETER)}
_SECRET = {kind: _compared(kind, True) for kind in (PROVIDER, MODEL, API_KEY, CONNECTION_PARAMETER)}


def _compare_fields(
    parity: Parity, where: str, fields: tuple[Field, ...], mine: dict[str, Any],
    theirs: dict[str, Any],
) -> bool:  # fmt: skip
    """Record each of ``fields`` that differs; True when one did."""
    differ = False
    for f in fields:
        a, b = mine[f.name], theirs[f.name]
        if a != b:
            differ = True
            shown = (str(a), str(b)) if f.store == "timestamp" else (_shown(a), _shown(b))
            parity.add(f"{where}: {f.name}: back-office {shown[0]}, gateway {shown[1]}")
    return differ


def _counts(provider: dict[str, Any] | None) -> dict[str, int]:
    return {name: len(provider[kind]) if provider else 0 for kind, name in COUNTED.items()}


def compare(bo: Backoffice, state: ActualState, keys: EncryptionKeys) -> Parity:
    """Compare the back-office with the gateway state read by ``read_state``."""
    parity = Parity()
    gateway = {p["provider_id"]: p for p in state.data["providers"]}
    for mine in bo.data["providers"]:
        pid = mine["provider_id"]
        theirs = gateway.get(pid)
        parity.counts[pid] = {"backoffice": _counts(mine), "gateway": _counts(theirs)}
        if theirs is None:
            parity.add(f"provider {pid}: only in the back-office ({bo.rows.get(pid, 'providers')})")
            continue
        _compare_fields(parity, f"provider {pid}", _PLAIN[PROVIDER], mine, theirs)
        for kind, label in CHILDREN:
            lists = mine[kind.parent or ""], theirs[kind.parent or ""]
            _children(parity, bo, state, keys, pid, kind, label, *lists)
    for pid in sorted(set(gateway) - {p["provider_id"] for p in bo.data["providers"]}):
        parity.counts[pid] = {"backoffice": _counts(None), "gateway": _counts(gateway[pid])}
        parity.add(f"provider {pid}: only in the gateway")
    return parity


def _children(
    parity: Parity,
    bo: Backoffice,
    state: ActualState,
    keys: EncryptionKeys,
    pid: str,
    kind: EntityKind,
    label: str,
    mine: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
) -> None:
    gateway = {_key(kind, item): item for item in theirs}
    seen = set()
    for item in mine:
        ident = _key(kind, item)
        seen.add(ident)
        other = gateway.get(ident)
        where = f"provider {pid}: {label} {ident}"
        if other is None:
            parity.add(f"{where}: only in the back-office")
            continue
        differ = _compare_fields(parity, where, _PLAIN[kind], item, other)
        if not _SECRET[kind] or (differ and kind.secret_when is not None):
            continue  # nothing secret, or the fields that make it secret differ
        if not kind.is_secret(item):
            _compare_fields(parity, where, _SECRET[kind], item, other)
            continue
        scope = SecretScope.of(kind.name, pid, item)
        if not _same_secret(bo.secrets.get(scope), state.secrets.get(scope), keys):
            parity.add(f"{where}: value differs (values not shown)")
    for ident in sorted(set(gateway) - seen):
        parity.add(f"provider {pid}: {label} {ident}: only in the gateway")


def _same_secret(plain: str | None, token: str | None, keys: EncryptionKeys) -> bool:
    """Whether the gateway's ciphertext ``token`` opens to ``plain`` (constant-time compare)."""
    if plain is None or token is None:
        return False
    stored = keys.decrypt(token)
    return hmac.compare_digest(stored.encode(), plain.encode())


def render_text(parity: Parity) -> str:
    """The report as text: differences, then counts per provider, then the verdict."""
    lines = list(parity.differences)
    if parity.total > len(parity.differences):
        lines.append(f"... and {parity.total - len(parity.differences)} more differences")
    if lines:
        lines.append("")
    lines.append("provider: models, keys, parameters (back-office / gateway)")
    for pid in sorted(parity.counts):
        bo, gw = parity.counts[pid]["backoffice"], parity.counts[pid]["gateway"]
        parts = ", ".join(f"{bo[n]}/{gw[n]}" for n in COUNTED.values())
        mark = "" if bo == gw else "  <- counts differ"
        lines.append(f"  {pid}: {parts}{mark}")
    totals = {
        side: sum(c[side][n] for c in parity.counts.values() for n in ("models",))
        for side in ("backoffice", "gateway")
    }
    lines.append(
        f"{len(parity.counts)} providers, {totals['backoffice']} models in the back-office, "
        f"{totals['gateway']} in the gateway"
    )
    if parity.ok:
        lines.append("parity: the gateway holds everything the back-office holds")
    else:
        lines.append(f"no parity: {parity.total} difference{'s' if parity.total != 1 else ''}")
    return "\n".join(lines) + "\n"
