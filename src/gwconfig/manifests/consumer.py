"""``kind: Consumer``: who may call which models, with which limits and budget.

A consumer is a team or a service. Its tokens (``gwconfig tokens create NAME --consumer C``)
inherit its model patterns and limits; its spend is what the usage records of its tokens cost
by the models' manifest pricing (see docs/consumers.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, StrictStr, model_validator

from gwconfig.manifests.model import Slug, Text, _Strict

#: the most requests per minute and tokens per minute a consumer's limit may name
MAX_RPM = 1_000_000
MAX_TPM = 1_000_000_000
#: the largest budget (USD per period)
MAX_BUDGET_USD = 1_000_000_000
#: the most model patterns a consumer may list, and the longest one
MAX_MODELS = 100
MAX_PATTERN_CHARS = 255

ModelPattern = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=MAX_PATTERN_CHARS,
        pattern=r"^\S+$",
        description="A route name, a model alias, or a provider_id/model_id pattern "
        "(shell-style: openai/*, */gpt-4o*).",
    ),
]


class ConsumerLimits(_Strict):
    """Request and token limits over all the consumer's tokens; any subset."""

    rpm: StrictInt | None = Field(
        default=None, ge=1, le=MAX_RPM, description="Requests per minute."
    )
    tpm: StrictInt | None = Field(
        default=None, ge=1, le=MAX_TPM, description="Tokens (prompt plus completion) per minute."
    )


class ConsumerBudget(_Strict):
    """Spend allowed per UTC calendar period, priced by the models' ``pricing``."""

    usd: float = Field(gt=0, le=MAX_BUDGET_USD, description="US dollars per period.")
    period: Literal["day", "week", "month"] = Field(
        description="day, week (from Monday) or month, UTC calendar windows."
    )


class ConsumerManifest(_Strict):
    """``kind: Consumer``: one team or service calling the gateway."""

    apiVersion: Literal["gwconfig/v1"] = Field(description="Always gwconfig/v1.")
    kind: Literal["Consumer"]
    name: Slug = Field(description="Unique consumer name, e.g. team-search.")
    description: Text | None = Field(default=None, description="Free text (at most 64 KiB).")
    models: tuple[ModelPattern, ...] = Field(
        min_length=1,
        max_length=MAX_MODELS,
        description="What the consumer's tokens may call: route names, aliases, or "
        "provider_id/model_id patterns.",
    )
    limits: ConsumerLimits = Field(
        default_factory=ConsumerLimits, description="Request and token limits (any subset)."
    )
    budget: ConsumerBudget | None = Field(
        default=None, description="Spend per period; every model it may call needs pricing."
    )
    tags: tuple[Slug, ...] = Field(default=(), description="Labels for reports.")

    @model_validator(mode="after")
    def _distinct_models(self) -> ConsumerManifest:
        seen: set[str] = set()
        for pattern in self.models:
            if pattern in seen:
                raise ValueError(f"model {pattern!r} is listed twice")
            seen.add(pattern)
        return self
