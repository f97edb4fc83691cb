"""How the gateway behaves when its shared state (Redis) does not answer: the ``shared_state``
of the ``Gateway`` manifest, as the runtime reads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPEN, CLOSED = "open", "closed"


@dataclass(frozen=True, slots=True)
class SharedStatePolicy:
    """Failure behaviour of the shared limits (defaults: limits open, budgets closed, the
    breaker opening after 3 failures for 5 seconds)."""

    #: request and token limits while Redis is unreachable: ``open`` falls back to per-process
    #: limits, ``closed`` refuses (503)
    limits_on_unavailable: str = OPEN
    #: budgets while Redis is unreachable: ``closed`` refuses (503), ``open`` lets requests
    #: through unmetered
    budgets_on_unavailable: str = CLOSED
    breaker_failures: int = 3
    breaker_cooloff_seconds: float = 5.0
    #: how often a replica reads the cooldowns other replicas published
    cooldown_refresh_seconds: float = 1.0

    @classmethod
    def from_canonical(cls, data: Mapping[str, Any] | None) -> SharedStatePolicy:
        """The policy of a canonical ``gateway.shared_state`` (None: the defaults)."""
        if not data:
            return cls()
        unavailable = data.get("on_unavailable") or {}
        breaker = data.get("breaker") or {}
        default = cls()
        return cls(
            limits_on_unavailable=unavailable.get("limits", default.limits_on_unavailable),
            budgets_on_unavailable=unavailable.get("budgets", default.budgets_on_unavailable),
            breaker_failures=int(breaker.get("failures", default.breaker_failures)),
            breaker_cooloff_seconds=float(
                breaker.get("cooloff_seconds", default.breaker_cooloff_seconds)
            ),
            cooldown_refresh_seconds=float(
                data.get("cooldown_refresh_seconds", default.cooldown_refresh_seconds)
            ),
        )
