"""What a token of a ``kind: Consumer`` inherits on ``/v1``: its model patterns and its rate.

A token made with ``gwconfig tokens create NAME --consumer C`` carries the consumer's name
(:attr:`~gwconfig.server.auth.Caller.consumer`); the policy is looked up in the configuration
the request is served with, so a change of the consumer's manifest holds from the next reload.
A consumer the configuration does not have (deleted by an apply) lets its tokens call nothing.
"""

from __future__ import annotations

from gwconfig.runtime.config.consumers import ConsumerPolicy
from gwconfig.runtime.config.gateway import GatewayConfig
from gwconfig.server.auth import Caller
from gwconfig.server.openai.errors import WireError

#: the per-process limiter key of a consumer (token names hold no ``:``, so keys never meet)
KEY_PREFIX = "consumer:"


def caller_policy(caller: Caller, config: GatewayConfig) -> ConsumerPolicy | None:
    """The policy of the caller's consumer (None: a token of its own); a 403 when the
    configuration has no such consumer."""
    if caller.consumer is None:
        return None
    policy = config.consumers.get(caller.consumer)
    if policy is None:
        raise WireError(
            403,
            f"token '{caller.name}' belongs to consumer '{caller.consumer}', which the "
            "gateway's configuration does not have",
            "permission_error",
            "consumer_not_found",
        )
    return policy


def caller_patterns(caller: Caller, config: GatewayConfig) -> tuple[str, ...] | None:
    """The model patterns the caller may use: its consumer's, else the token's (None: all)."""
    policy = caller_policy(caller, config)
    if policy is not None:
        return policy.models
    return tuple(caller.models) if caller.models is not None else None


def caller_rate(caller: Caller, config: GatewayConfig) -> tuple[str, int, str] | None:
    """``(limiter key, requests per minute, who)`` of the caller's request limit, or None."""
    policy = caller_policy(caller, config)
    if policy is not None:
        if policy.rpm is None:
            return None
        return KEY_PREFIX + policy.name, policy.rpm, f"consumer '{policy.name}'"
    if caller.rpm is None:
        return None
    return caller.name, caller.rpm, f"token '{caller.name}'"
