"""``gwconfig consumers``: each consumer's models, limits, budget and spend in its window."""

from __future__ import annotations

import click
import orjson

from gwconfig.cli import database_url_option, format_option


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


@click.command("consumers")
@format_option(["text", "json"], "Output format.")
@database_url_option
def consumers_cmd(fmt: str, database_url: str | None) -> None:
    """Each consumer's models, limits, budget, spend in the current window and what is left.

    Spend is what the consumer's tokens' requests cost by the models' pricing (the usage
    records), since the start of the budget's UTC day, week (Monday) or month; a consumer
    without a budget shows today's.
    """
    from gwconfig.db.ledger import report
    from gwconfig.db.session import open_database, translate_errors

    db = open_database(database_url)
    try:
        with translate_errors(db.url, "reading the consumers of"), db.session() as session:
            rows = report(session)
    finally:
        db.dispose()
    if fmt == "json":
        click.echo(orjson.dumps([r.to_dict() for r in rows], option=orjson.OPT_INDENT_2))
        return
    if not rows:
        click.echo("no consumers (declare them in 'kind: Consumer' manifests)", err=True)
        return
    click.echo(
        f"{'NAME':<24} {'RPM':>9} {'TPM':>11} {'BUDGET':>12} {'PERIOD':<6} {'SPENT':>12} "
        f"{'LEFT':>12} MODELS"
    )
    for r in rows:
        rpm = "-" if r.rpm is None else str(r.rpm)
        tpm = "-" if r.tpm is None else str(r.tpm)
        click.echo(
            f"{r.name:<24} {rpm:>9} {tpm:>11} {_usd(r.budget_usd):>12} {r.period:<6} "
            f"{_usd(r.spend_usd):>12} {_usd(r.remaining_usd):>12} {', '.join(r.models)}"
        )
