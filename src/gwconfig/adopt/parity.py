"""``gwconfig verify``: parity between the back-office and the gateway database.

Every provider, model, API key and connection parameter the back-office holds is compared field
by field with the gateway's. Secret values are compared by value: the gateway's ciphertexts are
decrypted in memory with the encryption keys and compared with the back-office's plaintexts in
constant time (:func:`hmac.compare_digest`); no secret value is ever shown. Fields the back-office
has no column for (tags, pricing, aliases, routes...) are the gateway's own and not compared.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gwconfig.entities import SecretScope
from gwconfig.manifests.diagnostics import clip

if TYPE_CHECKING:
    from gwconfig.adopt.backoffice import Backoffice
    from gwconfig.reconcile.state import ActualState
    from gwconfig.secrets.keys import EncryptionKeys

PROVIDER_FIELDS = (
    "provider_type", "display_name", "description", "enabled", "connection", "request_settings",
)  # fmt: skip
MODEL_FIELDS = (
    "display_name", "model_type", "context_window", "max_tokens", "enabled", "capabilities",
    "parameters",
)  # fmt: skip
CHILDREN = (("models", "model"), ("api_keys", "API key"), ("connection_parameters", "parameter"))
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


def _key(kind: str, item: dict[str, Any]) -> str:
    if kind == "models":
        return str(item["model_id"])
    return f"{item['name']}@{item['environment']}"


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
        for name in PROVIDER_FIELDS:
            if mine[name] != theirs[name]:
                parity.add(
                    f"provider {pid}: {name}: back-office {_shown(mine[name])}, gateway "
                    f"{_shown(theirs[name])}"
                )
        for kind, label in CHILDREN:
            _children(parity, bo, state, keys, pid, kind, label, mine[kind], theirs[kind])
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
    kind: str,
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
        if kind == "models":
            for name in MODEL_FIELDS:
                if item[name] != other[name]:
                    parity.add(
                        f"{where}: {name}: back-office {_shown(item[name])}, gateway "
                        f"{_shown(other[name])}"
                    )
            continue
        if kind == "api_keys" and item["expires_at"] != other["expires_at"]:
            parity.add(
                f"{where}: expires_at: back-office {item['expires_at']}, gateway "
                f"{other['expires_at']}"
            )
        sensitive = kind == "api_keys" or item["sensitive"]
        if kind == "connection_parameters" and item["sensitive"] != other["sensitive"]:
            parity.add(
                f"{where}: sensitive: back-office {item['sensitive']}, gateway {other['sensitive']}"
            )
            continue
        if not sensitive:
            if item["value"] != other["value"]:
                parity.add(
                    f"{where}: value: back-office {_shown(item['value'])}, gateway "
                    f"{_shown(other['value'])}"
                )
            continue
        scope = SecretScope.of(
            "api_key" if kind == "api_keys" else "connection_parameter", pid, item
        )
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
