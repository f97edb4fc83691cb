"""Which models a caller limited to model patterns may use.

A pattern (shell-style, ``openai/*``) is matched against what a name resolves to, never against
the name as the client spelt it: a route by its route name, anything else (``provider/model``,
an alias, a bare model id) by the ``provider_id/model_id`` of its one target. So a model whose
id is ``openai/gpt-4o`` under provider ``up`` is ``up/openai/gpt-4o``, whatever the client types.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from gwconfig.errors import GwconfigError
from gwconfig.runtime.config.gateway import GatewayConfig, Resolution
from gwconfig.runtime.errors import NoRouteError, UnknownModelError


def resolved_name(res: Resolution) -> str | None:
    """The name patterns are matched against: the route, or the one target's
    ``provider_id/model_id`` (None when a non-route name resolves to several targets)."""
    if res.route is not None:
        return res.route
    targets = [t for g in res.groups for t in g.targets]
    return targets[0].key if len(targets) == 1 else None


def matches(name: str, patterns: Sequence[str]) -> bool:
    """True when ``name`` matches one of ``patterns``."""
    return any(fnmatchcase(name, p) for p in patterns)


def permits(config: GatewayConfig, model: str, patterns: Sequence[str]) -> bool:
    """True when a caller limited to ``patterns`` may ask for ``model`` (resolved first).

    Raises the runtime's errors for a name that does not resolve; an unknown name's
    :class:`NoRouteError` hints only at names the caller may use."""
    try:
        res = config.resolve(model)
    except UnknownModelError as exc:
        hint = config.suggest(model, lambda name: may_use(config, name, patterns))
        raise NoRouteError(exc.message, hint=hint) from None
    return _permitted(res, patterns)


def may_use(config: GatewayConfig, model: str, patterns: Sequence[str]) -> bool:
    """:func:`permits`, False for a name that does not resolve (never raises)."""
    try:
        res = config.resolve(model)
    except GwconfigError:
        return False
    return _permitted(res, patterns)


def _permitted(res: Resolution, patterns: Sequence[str]) -> bool:
    name = resolved_name(res)
    return name is not None and matches(name, patterns)
