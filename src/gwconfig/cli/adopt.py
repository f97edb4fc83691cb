"""``gwconfig dump``: a thin adapter over :mod:`gwconfig.adopt.dump`.

:data:`output_options` (``--out``, ``--seal-to``, ``--secrets``) and :func:`report_written`
are shared with the other commands that write manifests (``gwconfig import``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gwconfig.cli import database_url_option, with_options
from gwconfig.settings import DEFAULT_MANIFEST_PATH
from gwconfig.words import plural

# ``gwconfig --help`` imports every command module: the manifest writer and the dump
# (cryptography, SQLAlchemy) are imported inside the command, when it runs.

#: ``--out DIR``, ``--seal-to PUBKEY``, ``--secrets env``: where manifests go, how secrets are
#: written (see :func:`gwconfig.adopt.writer.secret_output`)
output_options: list[Callable[[Any], Any]] = [
    click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(DEFAULT_MANIFEST_PATH),
        show_default=True,
        help="Directory to write the manifests into (only changed files are rewritten).",
    ),
    click.option(
        "--seal-to",
        metavar="PUBKEY",
        help="Seal secrets to this public key file [default: OUT/sealing.pub when it exists].",
    ),
    click.option(
        "--secrets",
        "secrets_mode",
        type=click.Choice(["env"]),
        help="Write secrets as {env: NAME} references instead of sealing them (prints the names).",
    ),
    click.option(
        "--force",
        is_flag=True,
        help="Write even when it removes files or drops documents or routes from them.",
    ),
]


def confirm_losses(force: bool) -> Callable[[list[str]], bool]:
    """The ``confirm`` of a manifest write: it lists what the write would lose on stderr, then
    goes ahead with ``--force`` or a yes at a terminal's prompt (a script without ``--force``
    gets a no)."""

    def confirm(lost: list[str]) -> bool:
        click.echo(f"this write would lose {plural(len(lost), 'file')}:", err=True)
        for line in lost:
            click.echo(f"  {line}", err=True)
        if force:
            return True
        if not sys.stdin.isatty():
            return False
        try:
            return click.confirm("Write anyway?", default=False, err=True)
        except click.Abort:
            return False

    return confirm


def report_written(out_dir: Path, written: int, unchanged: int, removed: int) -> None:
    """``N files written, N unchanged, N removed in DIR`` on stderr."""
    click.echo(
        f"{plural(written, 'file')} written, {unchanged} unchanged, {removed} removed in {out_dir}",
        err=True,
    )


def report_env_names(names: list[tuple[str, str]]) -> None:
    """The variables ``--secrets env`` references (names and scopes, never values) on stdout."""
    if names:
        click.echo(f"set these {plural(len(names), 'variable')} before plan/apply:", err=True)
    for name, scope in names:
        click.echo(f"{name}\t# {scope}")


@click.command("dump")
@database_url_option
@with_options(output_options)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="PROVIDER_ID",
    help="Dump only this provider (repeatable); no gateway.yaml, nothing removed.",
)
@click.option(
    "--select-tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="Dump only providers with this tag (repeatable); no gateway.yaml, nothing removed.",
)
def dump_cmd(
    database_url: str | None,
    out_dir: Path,
    seal_to: str | None,
    secrets_mode: str | None,
    targets: tuple[str, ...],
    tags: tuple[str, ...],
    force: bool,
) -> None:
    """Write the gateway database's configuration as manifests (secrets sealed or as env refs).

    \b
    Example:
      gwconfig dump --out providers.d              # seals to providers.d/sealing.pub
      gwconfig dump --secrets env --target openai
    """
    from gwconfig.adopt.dump import DumpOptions, dump
    from gwconfig.adopt.writer import secret_output

    output = secret_output(seal_to, secrets_mode == "env", out_dir)
    result = dump(DumpOptions(out_dir, output, database_url, targets, tags, confirm_losses(force)))
    report_env_names(result.env_names)
    click.echo(
        f"dumped {plural(result.providers, 'provider')}, {plural(result.models, 'model')}, "
        f"{plural(result.api_keys, 'API key')}, {plural(result.parameters, 'parameter')}, "
        f"{plural(result.routes, 'route')}"
        + (f", {plural(result.consumers, 'consumer')}" if result.consumers else "")
        + (f" (secrets {'sealed' if output.mode == 'sealed' else 'as env references'})"),
        err=True,
    )
    r = result.report
    report_written(out_dir, len(r.written), len(r.unchanged), len(r.removed))
    for warning in result.warnings:
        click.echo(
            f"warning: {warning}; remove one of the two before 'gwconfig validate'", err=True
        )
