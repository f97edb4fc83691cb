"""ConsumerPolicy: who may call what, and how much, for one ``kind: Consumer`` manifest.

A token made with ``gwconfig tokens create NAME --consumer C`` carries the consumer's name;
the server looks the policy up in the loaded configuration on every request.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

#: the budget periods (UTC calendar windows)
BUDGET_PERIODS = ("day", "week", "month")


@dataclass(frozen=True, slots=True)
class ConsumerPolicy:
    """One consumer's model patterns, limits and budget (every limit is over all its tokens
    and every replica)."""

    name: str
    #: route names, aliases or ``provider/model`` patterns (``fnmatch``) it may call
    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    #: ``day``, ``week`` or ``month`` when ``budget_usd`` is set
    budget_period: str | None = None
    tags: tuple[str, ...] = ()
    description: str = ""

    def allows_model(self, model: str) -> bool:
        """True when ``model`` matches one of the consumer's patterns."""
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)
