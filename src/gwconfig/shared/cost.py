"""A request's worst case before it is sent (tokens, USD) and its cost once answered, from the
models' manifest pricing (USD per million tokens)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from gwconfig.pricing import cost_usd
from gwconfig.runtime.config.gateway import GatewayConfig, Target
from gwconfig.runtime.messages import Usage

#: the completion tokens reserved when neither the request nor the model says a maximum
DEFAULT_OUTPUT_TOKENS = 8192


def prompt_bound(body_bytes: int) -> int:
    """The most prompt tokens a body of ``body_bytes`` bytes can hold: one per byte (byte-level
    tokenizers never make more tokens than bytes), so a reservation never falls short."""
    return max(body_bytes, 1)


def output_bound(requested: int | None, targets: Iterable[Target]) -> int:
    """The most completion tokens a request may get: its ``max_tokens`` (capped by the models'
    own limit), else the largest limit of the models it may reach."""
    limits = [t.model.max_tokens or t.model.context_window for t in targets]
    known = [n for n in limits if n]
    ceiling = max(known) if known and len(known) == len(limits) else None
    if requested is not None:
        return min(requested, ceiling) if ceiling is not None else requested
    return ceiling if ceiling is not None else DEFAULT_OUTPUT_TOKENS


def worst_case(targets: list[Target], prompt: int, output: int) -> float | None:
    """The highest cost of ``prompt`` + ``output`` tokens over ``targets`` (None: one of them
    has no pricing, so the worst case is unknown)."""
    worst = 0.0
    for target in targets:
        cost = cost_usd(target.model.pricing, Usage(prompt, output))
        if cost is None:
            return None
        worst = max(worst, cost)
    return worst


def targets_of(config: GatewayConfig, model: str) -> list[Target]:
    """Every target a request for ``model`` may reach (route, fallbacks)."""
    res = config.resolve(model or None)
    return [t for group in res.groups for t in group.targets]


def micro(usd: float) -> int:
    """USD as whole micro-USD, rounded up (counters are integers; rounding never undercounts)."""
    return max(math.ceil(usd * 1_000_000 - 1e-6), 0)


def answered_cost(config: GatewayConfig, provider: str, model: str, usage: Usage) -> float | None:
    """The cost of an answer from ``provider``/``model`` (None: no pricing known)."""
    pc = config.providers.get(provider)
    mc = pc.models.get(model) if pc is not None else None
    return cost_usd(mc.pricing if mc is not None else None, usage)
