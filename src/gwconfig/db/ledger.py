"""The ledger of spend: ``usage_records`` with the consumer and the cost of each request.

The usage recorder writes each request's consumer and cost (by the model's manifest pricing,
:func:`gwconfig.pricing.cost_usd`); :func:`spend` adds up a consumer's since a UTC instant,
and :func:`~gwconfig.periods.period_start` gives the start of the UTC calendar window a budget
counts over. The
indexed ``(consumer, created_at)`` makes either one range scan. :func:`consumer_spends`
reports each consumer's window, spend and what is left of its budget (``gwconfig consumers``,
``/api/v1/consumers``, the ``/metrics`` gauges); :class:`EngineLedger` is what the shared
budgets rebuild their counters from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from gwconfig.db.models import Consumer, UsageRecord, utcnow
from gwconfig.periods import period_start

#: the window a consumer without a budget reports its spend over
DEFAULT_PERIOD = "day"
#: at most this many consumers are named in one ledger query
BATCH = 500


def spend(session: Any, consumer: str, since: datetime) -> float:
    """What ``consumer`` spent (USD) since ``since``, by the ledger; ``session``: a SQLAlchemy
    ``Session`` or ``Connection``."""
    return spends(session, {consumer: since}).get(consumer, 0.0)


def spends(session: Any, windows: Mapping[str, datetime]) -> dict[str, float]:
    """Each consumer's spend (USD) since its own instant: one grouped query per instant."""
    by_since: dict[datetime, list[str]] = {}
    for name, since in windows.items():
        by_since.setdefault(since, []).append(name)
    out = dict.fromkeys(windows, 0.0)
    u = UsageRecord.__table__.c
    for since, names in by_since.items():
        for i in range(0, len(names), BATCH):
            query = (
                select(u.consumer, func.sum(u.cost_usd))
                .where(u.consumer.in_(names[i : i + BATCH]), u.created_at >= since)
                .group_by(u.consumer)
            )
            for name, total in session.execute(query):
                out[name] = float(total or 0.0)
    return out


@dataclass(frozen=True)
class ConsumerSpend:
    """One consumer as ``gwconfig consumers`` reports it: its policy, window and spend."""

    name: str
    description: str | None
    models: tuple[str, ...]
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    #: the budget's period, or :data:`DEFAULT_PERIOD` for a consumer without a budget
    period: str
    window_start: datetime
    spend_usd: float
    tags: tuple[str, ...] = ()

    @property
    def remaining_usd(self) -> float | None:
        """What is left of the budget in this window (never below 0; None: no budget)."""
        if self.budget_usd is None:
            return None
        return max(self.budget_usd - self.spend_usd, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``consumers --format json``, ``/api/v1/consumers``)."""
        budget = None
        if self.budget_usd is not None:
            budget = {"usd": self.budget_usd, "period": self.period}
        limits = {k: v for k, v in (("rpm", self.rpm), ("tpm", self.tpm)) if v is not None}
        return {
            "name": self.name,
            "description": self.description,
            "models": list(self.models),
            "limits": limits,
            "budget": budget,
            "tags": list(self.tags),
            "window": {"period": self.period, "start": self.window_start.isoformat()},
            "spend_usd": round(self.spend_usd, 9),
            "remaining_usd": None if self.remaining_usd is None else round(self.remaining_usd, 9),
        }


def consumer_spends(
    session: Any, consumers: Iterable[Mapping[str, Any]], now: datetime | None = None
) -> list[ConsumerSpend]:
    """Canonical consumers (see :mod:`gwconfig.canonical`) with their spend in the current
    window, by name."""
    now = now or utcnow()
    listed = sorted(consumers, key=lambda c: c["name"])
    periods = {c["name"]: (c.get("budget") or {}).get("period") or DEFAULT_PERIOD for c in listed}
    windows = {name: period_start(period, now) for name, period in periods.items()}
    spent = spends(session, windows)
    out = []
    for c in listed:
        name, limits, budget = c["name"], c.get("limits") or {}, c.get("budget") or {}
        out.append(
            ConsumerSpend(
                name=name,
                description=c.get("description"),
                models=tuple(c.get("models") or ()),
                rpm=limits.get("rpm"),
                tpm=limits.get("tpm"),
                budget_usd=budget.get("usd"),
                period=periods[name],
                window_start=windows[name],
                spend_usd=spent[name],
                tags=tuple(c.get("tags") or ()),
            )
        )
    return out


def stored_consumers(
    session: Any, *, after: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The ``consumers`` rows as canonical consumers, by name (those after ``after``, at most
    ``limit`` of them: a page of the REST API)."""
    c = Consumer.__table__.c
    query = select(c.name, c.description, c.models, c.limits, c.budget, c.tags).order_by(c.name)
    if after is not None:
        query = query.where(c.name > after)
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query)
    return [
        {"name": r[0], "description": r[1], "models": list(r[2] or ()), "limits": dict(r[3] or {}),
         "budget": dict(r[4]) if r[4] is not None else None, "tags": list(r[5] or ())}
        for r in rows
    ]  # fmt: skip


def report(
    session: Any,
    now: datetime | None = None,
    *,
    after: str | None = None,
    limit: int | None = None,
) -> Sequence[ConsumerSpend]:
    """The stored consumers (all, or a page: see :func:`stored_consumers`) with their spend in
    the current window (``gwconfig consumers``, ``/api/v1/consumers``)."""
    return consumer_spends(session, stored_consumers(session, after=after, limit=limit), now)


class EngineLedger:
    """The database's ledger for the shared budgets (:class:`gwconfig.shared.ledger.Ledger`):
    :func:`spend` on a connection of its own, from the engine ``engine()`` gives when asked."""

    def __init__(self, engine: Callable[[], Any]) -> None:
        self._engine = engine

    def spend(self, consumer: str, since: datetime) -> float:
        """USD spent by ``consumer`` since ``since`` (blocking: called in a thread)."""
        with self._engine().connect() as conn:
            return spend(conn, consumer, since)
