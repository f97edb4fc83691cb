"""The ledger of spend: ``cost_usd`` of a request, ``period_start`` of a budget's window,
``spend`` from ``usage_records`` on every engine, and migration 0009 up and down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text

from gwconfig.db.ledger import consumer_spends, period_start, spend, spends
from gwconfig.db.models import ApiToken, UsageRecord
from gwconfig.db.session import open_database
from gwconfig.pricing import cost_usd, priced
from gwconfig.runtime.config.table import model_config
from gwconfig.runtime.messages import Usage
from gwconfig.runtime.usage import UsageRecorder

PRICES = {"currency": "USD", "input_per_1m": 2.0, "output_per_1m": 10.0, "cached_input_per_1m": 0.5}
PRICED = {"model_id": "m", "pricing": PRICES}


def test_cost_is_prompt_times_input_plus_completion_times_output() -> None:
    assert cost_usd(PRICED, Usage(1_000_000, 0)) == pytest.approx(2.0)
    assert cost_usd(PRICED, Usage(1000, 500)) == pytest.approx(0.002 + 0.005)
    # cached prompt tokens at the cached price when the model has one
    assert cost_usd(PRICED, Usage(1000, 500, cached_tokens=400)) == pytest.approx(
        600 * 2e-6 + 400 * 0.5e-6 + 500 * 10e-6
    )
    no_cached = {"pricing": {"input_per_1m": 2.0, "output_per_1m": 10.0}}
    assert cost_usd(no_cached, Usage(1000, 0, cached_tokens=400)) == pytest.approx(0.002)
    # a ModelConfig (what the router holds) prices the same as the canonical dict
    assert cost_usd(model_config(PRICED), Usage(1000, 500)) == cost_usd(PRICED, Usage(1000, 500))


@pytest.mark.parametrize(
    "pricing",
    [None, {"input_per_1m": 1.0}, {"output_per_1m": 1.0},
     {"currency": "EUR", "input_per_1m": 1.0, "output_per_1m": 1.0}],
)  # fmt: skip
def test_a_model_without_usd_input_and_output_prices_costs_nothing_known(
    pricing: dict[str, object] | None,
) -> None:
    model = {"model_id": "m", "pricing": pricing}
    assert not priced(model) and cost_usd(model, Usage(10, 10)) is None


@pytest.mark.parametrize(
    ("period", "now", "start"),
    [
        ("day", datetime(2026, 12, 9, 17, 3, 4, 5, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC)),
        # a Wednesday: the week started on Monday the 7th
        ("week", datetime(2026, 12, 9, 17, 3, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),
        ("week", datetime(2026, 12, 7, 0, 0, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),
        ("week", datetime(2026, 12, 6, 23, 59, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)),
        ("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        # in UTC, whatever the zone of ``now``: 01:00 at +02:00 is the previous day in UTC
        ("day", datetime(2026, 12, 9, 1, 0, tzinfo=timezone(timedelta(hours=2))),
         datetime(2026, 12, 8, tzinfo=UTC)),
        ("month", datetime(2027, 1, 1, 0, 30), datetime(2027, 1, 1, tzinfo=UTC)),  # naive: UTC
    ],
)  # fmt: skip
def test_period_start_is_the_utc_calendar_window(
    period: str, now: datetime, start: datetime
) -> None:
    assert period_start(period, now) == start


def test_an_unknown_period_is_refused() -> None:
    with pytest.raises(ValueError, match="year"):
        period_start("year", datetime.now(UTC))


def _row(consumer: str | None, cost: float | None, when: datetime) -> dict[str, object]:
    return {"created_at": when, "provider_id": "p", "model_id": "m", "attempts": 1,
            "outcome": "ok", "consumer": consumer, "cost_usd": cost}  # fmt: skip


def test_spend_adds_up_a_consumers_costs_since_an_instant(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    start = datetime(2026, 12, 7, tzinfo=UTC)
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(UsageRecord), [
                _row("a", 0.25, start + timedelta(hours=1)),
                _row("a", 0.000001234, start + timedelta(days=2)),
                _row("a", None, start + timedelta(hours=3)),  # not priced: counts nothing
                _row("a", 7.0, start - timedelta(seconds=1)),  # before the window
                _row("b", 1.5, start),  # the window's first second counts
                _row(None, 9.0, start + timedelta(hours=1)),  # no consumer
            ])  # fmt: skip
        with db.session() as session:
            assert spend(session, "a", start) == pytest.approx(0.250001234)
            assert spend(session, "b", start) == pytest.approx(1.5)
            assert spend(session, "nobody", start) == 0.0
            assert spends(session, {"a": start - timedelta(days=1), "b": start}) == {
                "a": pytest.approx(7.250001234),
                "b": pytest.approx(1.5),
            }
            now = start + timedelta(days=2, hours=5)  # Wednesday
            report = consumer_spends(session, [
                {"name": "b", "models": ["x"], "budget": {"usd": 1.0, "period": "day"}},
                {"name": "a", "models": ["x"], "limits": {"rpm": 5},
                 "budget": {"usd": 10.0, "period": "week"}},
            ], now)  # fmt: skip
        assert [r.name for r in report] == ["a", "b"]
        assert report[0].spend_usd == pytest.approx(0.250001234)
        assert report[0].remaining_usd == pytest.approx(10 - 0.250001234)
        assert report[1].window_start == datetime(2026, 12, 9, tzinfo=UTC)
        assert report[1].spend_usd == 0.0 and report[1].remaining_usd == 1.0
    finally:
        db.dispose()


def test_the_recorder_writes_consumer_and_cost(db_url: str) -> None:
    db = open_database(db_url, upgrade=True)
    recorder = UsageRecorder(db.engine, flush_interval=0.01)
    try:
        recorder.record(
            provider_id="p", model_id="m", session_id=None, prompt_tokens=1000,
            completion_tokens=500, latency_ms=1.0, attempts=1, outcome="ok", token_name="t",
            consumer="team-a", cost_usd=cost_usd(PRICED, Usage(1000, 500)),
        )  # fmt: skip
        assert recorder.flush()
        with db.session() as session:
            row = session.execute(select(UsageRecord.consumer, UsageRecord.cost_usd)).one()
            assert row[0] == "team-a" and row[1] == pytest.approx(0.007)
            assert spend(session, "team-a", datetime.now(UTC) - timedelta(minutes=5)) == (
                pytest.approx(0.007)
            )
    finally:
        recorder.close()
        db.dispose()


def _alembic(url: str, step: str, revision: str) -> None:
    from alembic import command

    from gwconfig.db.migrate import alembic_config

    db = open_database(url, upgrade=False, check=False)
    try:
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, step)(cfg, revision)
    finally:
        db.dispose()


def test_0009_adds_consumers_and_keeps_earlier_rows(db_url: str) -> None:
    _alembic(db_url, "upgrade", "0008")
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO usage_records (created_at, provider_id, model_id, attempts, outcome)"
                " VALUES ('2026-12-01 10:00:00', 'p', 'm', 1, 'ok')"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO api_tokens (name, scope, token_hash, created_at)"
                " VALUES ('old', 'invoke', 'aa', '2026-12-01 10:00:00')"
            ))  # fmt: skip
        _alembic(db_url, "upgrade", "head")
        with engine.connect() as conn:
            assert "consumers" in inspect(conn).get_table_names()
            usage = conn.execute(select(UsageRecord.consumer, UsageRecord.cost_usd)).all()
            tokens = conn.execute(select(ApiToken.name, ApiToken.consumer)).all()
        assert [tuple(r) for r in usage] == [(None, None)]
        assert [tuple(r) for r in tokens] == [("old", None)]
        _alembic(db_url, "downgrade", "0008")
        with engine.connect() as conn:
            assert "consumers" not in inspect(conn).get_table_names()
            columns = {c["name"] for c in inspect(conn).get_columns("usage_records")}
            token_columns = {c["name"] for c in inspect(conn).get_columns("api_tokens")}
            assert conn.execute(text("SELECT count(*) FROM usage_records")).scalar() == 1
        assert not {"consumer", "cost_usd"} & columns and "consumer" not in token_columns
    finally:
        engine.dispose()
