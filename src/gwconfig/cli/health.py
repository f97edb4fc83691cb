"""``gwconfig health``: one small real call per model, a table, exit 1 if any fails."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import orjson

from gwconfig import settings
from gwconfig.cli import (
    config_file_option,
    database_url_option,
    environment_option,
    format_option,
)

if TYPE_CHECKING:
    from gwconfig.runtime.health import HealthResult

# ``gwconfig --help`` imports every command module: asyncio and the runtime (~0.15 s) are
# imported inside the command, when it runs.


@click.command("health")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    help="Route, alias, model id or provider/model to check (repeatable).",
)
@click.option(
    "--all",
    "check_all",
    is_flag=True,
    help="Check every enabled model (default: the targets of every route).",
)
@database_url_option
@config_file_option
@environment_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=600),
    default=30.0,
    show_default=True,
    help="Seconds each check may take (retries included).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Checks running at once.",
)
@format_option(["text", "json"], "Output format.")
def health_cmd(
    models: tuple[str, ...],
    check_all: bool,
    database_url: str | None,
    config_file: str | None,
    environment: str | None,
    timeout: float,
    concurrency: int,
    fmt: str,
) -> None:
    """Send one short request to each model and print whether it answered."""
    import asyncio

    from gwconfig.runtime import (
        ConfigLoader,
        LLMGatewayClient,
        NoRouteError,
        ProviderFactory,
        health,
    )

    if models and check_all:
        raise click.UsageError("give either --model or --all, not both")
    if config_file and database_url:
        raise click.UsageError("give either --config or --database-url, not both")
    loader = ConfigLoader(
        config_file or settings.database_url(database_url), environment=environment
    )
    config = loader.load_config_as_object()
    if models:
        targets = health.resolve_targets(config, models)
    elif check_all:
        targets = health.all_targets(config)
    else:
        targets = health.route_targets(config)
    if not targets:
        raise NoRouteError(
            f"nothing to check in {loader.describe()}",
            hint="name models with --model, or check every model with --all",
        )

    async def run() -> list[HealthResult]:
        async with LLMGatewayClient(config, ProviderFactory(), loader=loader) as client:
            return await health.check_all(client, targets, timeout=timeout, concurrency=concurrency)

    results = asyncio.run(run())
    if fmt == "json":
        docs = [
            {
                "model": r.target,
                "ok": r.ok,
                "latency_ms": round(r.latency_ms, 1),
                "attempts": r.attempts,
                "error": r.error,
            }
            for r in results
        ]
        click.echo(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode())
    else:
        _table(results)
    failed = sum(1 for r in results if not r.ok)
    if failed:
        click.echo(f"{failed} of {len(results)} failed", err=True)
        click.get_current_context().exit(1)


def _table(results: list[HealthResult]) -> None:
    width = max([len("MODEL"), *(len(r.target) for r in results)])
    click.echo(f"{'MODEL':<{width}}  STATUS  LATENCY_MS  ERROR")
    for r in results:
        status = "ok" if r.ok else "FAIL"
        click.echo(
            f"{r.target:<{width}}  {status:<6}  {r.latency_ms:>10.1f}  {r.error or ''}".rstrip()
        )
