"""The budget periods: UTC calendar days, weeks (from Monday) and months.

One definition for everything that counts spend over a period: the ledger's reports
(:mod:`gwconfig.db.ledger`) and the shared budget counters (:mod:`gwconfig.shared.limits`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

#: the budget periods, shortest first
PERIODS = ("day", "week", "month")


def period_start(period: str, now: datetime) -> datetime:
    """The start (aware UTC) of the ``day``, ``week`` (Monday) or ``month`` holding ``now``
    (a naive ``now`` is taken as UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown budget period {period!r} (day, week or month)")


def period_seconds(period: str, start: datetime) -> int:
    """How long the period starting at ``start`` lasts, in seconds."""
    if period == "day":
        return 86_400
    if period == "week":
        return 7 * 86_400
    nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return int((nxt - start).total_seconds())
