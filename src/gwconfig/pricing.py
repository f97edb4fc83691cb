"""What a request costs, from the model's manifest ``pricing`` (prices per million tokens).

Pure and dependency-free, so every layer may use it: the usage recorder writes
:func:`cost_usd` into ``usage_records.cost_usd`` (the ledger of spend), validation refuses a
budget on a consumer that may call a model :func:`priced` says is not, and the limits that
reserve a request's worst case price it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

#: prices are per this many tokens
PER_TOKENS = 1_000_000


class TokenCounts(Protocol):
    """Token counts of one answer (:class:`gwconfig.runtime.messages.Usage`)."""

    @property
    def prompt_tokens(self) -> int:
        """Prompt (input) tokens, cached ones included."""

    @property
    def completion_tokens(self) -> int:
        """Completion (output) tokens."""

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens read from the provider's cache."""


def _fields(value: Any) -> Any:
    """A mapping as it is; a pydantic model (``ModelSpec``, ``Pricing``) as its fields; a
    slotted object (``ModelConfig``) as its ``pricing``."""
    if value is None or type(value) is dict or isinstance(value, Mapping):
        return value
    fields = getattr(value, "__dict__", None)
    return fields if fields is not None else getattr(value, "pricing", None)


def _pricing(model: Any) -> Mapping[str, Any] | None:
    """The prices of a model: a ``ModelConfig``, a canonical model dict, a manifest's
    ``ModelSpec``, or the pricing itself (a dict or the manifest's ``Pricing``)."""
    found = _fields(model)
    if found is not None and "pricing" in found:
        found = _fields(found["pricing"])
    if found is None or ("input_per_1m" not in found and "output_per_1m" not in found):
        return None
    return found  # type: ignore[no-any-return]


def priced(model: Any) -> bool:
    """True when ``model`` has a USD price for both its input and its output tokens."""
    pricing = _pricing(model)
    return (
        pricing is not None
        and (pricing.get("currency") or "USD") == "USD"
        and pricing.get("input_per_1m") is not None
        and pricing.get("output_per_1m") is not None
    )


def cost_usd(model: Any, usage: TokenCounts) -> float | None:
    """What ``usage`` cost on ``model`` in USD; None when the model is not :func:`priced`.

    ``prompt * input + completion * output`` per million tokens; the cached prompt tokens at
    ``cached_input_per_1m`` when the model prices them (else at the input price).
    """
    if not priced(model):
        return None
    pricing = _pricing(model)
    assert pricing is not None
    prompt = max(0, int(usage.prompt_tokens or 0))
    completion = max(0, int(usage.completion_tokens or 0))
    cached = min(prompt, max(0, int(getattr(usage, "cached_tokens", 0) or 0)))
    cached_price = pricing.get("cached_input_per_1m")
    if cached_price is None:
        cached, cached_price = 0, 0.0
    total = (
        (prompt - cached) * float(pricing["input_per_1m"])
        + cached * float(cached_price)
        + completion * float(pricing["output_per_1m"])
    )
    return total / PER_TOKENS
