"""``gwconfig import`` and ``gwconfig verify``: from a back-office database to manifests, and
parity between the back-office and the gateway (see docs/migration.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gwconfig.cli import database_url_option, format_option, with_options
from gwconfig.cli.adopt import confirm_losses, output_options, report_env_names, report_written
from gwconfig.words import plural

# ``gwconfig --help`` imports every command module: the back-office reader, the manifest writer
# and the gateway's state reader (cryptography, SQLAlchemy, pydantic) are imported inside the
# commands, when they run.

_mapping_option = click.option(
    "--mapping",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="YAML file renaming the back-office's tables and columns (tables:, columns:).",
)
_legacy_option = click.option(
    "--legacy-decrypt",
    metavar="MODULE:FUNCTION",
    help="Function opening keys stored encrypted (default: the Fernet key(s) in "
    "GWCONFIG_LEGACY_KEY).",
)


@click.command("import")
@click.option("--from-url", "from_url", required=True, metavar="URL", help="The back-office.")
@_mapping_option
@with_options(output_options)
@_legacy_option
def import_cmd(
    from_url: str,
    mapping: str | None,
    out_dir: Path,
    seal_to: str | None,
    secrets_mode: str | None,
    legacy_decrypt: str | None,
    force: bool,
) -> None:
    """Write manifests from a back-office database (read only; secrets sealed).

    \b
    Example:
      gwconfig import --from-url postgresql+psycopg://ro@bo-db/backoffice
      gwconfig import --from-url sqlite:///bo.db --mapping mapping.yaml --secrets env
    """
    from gwconfig.adopt.importing import import_backoffice
    from gwconfig.adopt.mapping import load_mapping
    from gwconfig.adopt.writer import secret_output

    output = secret_output(seal_to, secrets_mode == "env", out_dir)
    result = import_backoffice(
        from_url,
        load_mapping(mapping),
        output,
        out_dir,
        legacy_decrypt=legacy_decrypt,
        confirm=confirm_losses(force),
    )
    bo, report = result.backoffice, result.report
    for warning in bo.warnings:
        click.echo(f"warning: {warning}", err=True)
    report_env_names(result.rendered.env_names)
    c = bo.counts
    expired = f" ({c.expired_keys} expired, kept)" if c.expired_keys else ""
    click.echo(
        f"imported {plural(c.providers, 'provider')}, {plural(c.models, 'model')}, "
        f"{plural(c.keys, 'API key')}{expired}, {plural(c.parameters, 'parameter')}; "
        f"{plural(len(bo.warnings), 'warning')}",
        err=True,
    )
    report_written(out_dir, len(report.written), len(report.unchanged), len(report.removed))


@click.command("verify")
@click.option("--against", required=True, metavar="URL", help="The back-office database.")
@_mapping_option
@database_url_option
@format_option(["text", "json"], "Output format.")
@_legacy_option
def verify_cmd(
    against: str,
    mapping: str | None,
    database_url: str | None,
    fmt: str,
    legacy_decrypt: str | None,
) -> None:
    """Compare the back-office with the gateway database; exit 1 unless at parity."""
    from gwconfig.adopt.backoffice import read_backoffice
    from gwconfig.adopt.mapping import load_mapping
    from gwconfig.adopt.parity import compare, render_text
    from gwconfig.reconcile.commands import Context
    from gwconfig.reconcile.state import read_state

    bo = read_backoffice(against, load_mapping(mapping), legacy_decrypt=legacy_decrypt)
    with Context(database_url) as ctx:
        state = read_state(ctx.read_only("verifying against"))
    parity = compare(bo, state, ctx.keys)
    if fmt == "json":
        click.echo(json.dumps(parity.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(render_text(parity), nl=False)
    if not parity.ok:
        click.get_current_context().exit(1)
