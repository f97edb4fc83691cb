"""``shared_state`` of the ``Gateway`` manifest: what the gateway does when its shared state
(Redis) does not answer, and how long it waits for it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OnUnavailable(_Strict):
    """What each kind of limit does while Redis is unreachable."""

    limits: Literal["open", "closed"] = Field(
        default="open",
        description="Request and token limits: open falls back to per-process limits (a log "
        "line and a metric), closed refuses with 503.",
    )
    budgets: Literal["closed", "open"] = Field(
        default="closed",
        description="Budgets: closed refuses with 503 (never unmetered spend), open lets "
        "requests through unmetered.",
    )


class Breaker(_Strict):
    """The circuit breaker in front of Redis."""

    failures: int = Field(default=3, ge=1, le=1000, description="Failures in a row that open it.")
    cooloff_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="How long Redis is skipped before one probe."
    )


class SharedStateSpec(_Strict):
    """How limits and budgets behave when the shared state (Redis) does not answer."""

    on_unavailable: OnUnavailable = Field(default_factory=OnUnavailable)
    breaker: Breaker = Field(default_factory=Breaker)
    cooldown_refresh_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often a replica reads the cooldowns other replicas published.",
    )

    def canonical(self) -> dict[str, Any]:
        """The canonical ``gateway.shared_state``."""
        return self.model_dump(mode="json")
