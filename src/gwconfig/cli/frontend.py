"""``gwconfig validate``, ``gwconfig compile`` and ``gwconfig schema``: the front end's CLI."""

from __future__ import annotations

from pathlib import Path

import click

from gwconfig import manifests
from gwconfig.cli import format_option
from gwconfig.manifests.diagnostics import to_github, to_json, to_text
from gwconfig.settings import DEFAULT_MANIFEST_PATH
from gwconfig.words import plural

_PATH = click.argument("path", default=DEFAULT_MANIFEST_PATH, type=click.Path(path_type=Path))
_ENV = click.option(
    "--env",
    "env",
    default=None,
    metavar="NAME",
    help="Environment for templates: renders *.yaml.j2 with environments/NAME.yaml as 'vars'.",
)


@click.command("validate")
@_PATH
@_ENV
@format_option(
    ["text", "json", "github"], "text for people, json for tools, github for workflow annotations."
)
@click.pass_context
def validate_cmd(ctx: click.Context, path: Path, env: str | None, fmt: str) -> None:
    """Check the manifests under PATH and report every problem at once (exit 1 on errors)."""
    result = manifests.validate_run(path, env=env)
    diags = result.diagnostics
    errors = sum(1 for d in diags if d.severity == "error")
    if fmt == "json":
        click.echo(to_json(diags))
    elif fmt == "github":
        if diags:
            click.echo(to_github(diags))
    elif diags:
        click.echo(to_text(diags), err=True)
    if fmt != "json":
        if errors:
            warnings = sum(1 for d in diags if d.severity == "warning")
            summary = plural(errors, "error")
            if warnings:
                summary += f", {plural(warnings, 'warning')}"
            click.echo(summary, err=True)
        else:
            click.echo(
                f"ok: {plural(result.files, 'file')}, {plural(result.providers, 'provider')}, "
                f"{plural(result.models, 'model')}, {plural(result.routes, 'route')}"
                + (f", {plural(result.consumers, 'consumer')}" if result.consumers else ""),
                err=fmt == "github",
            )
    if errors:
        ctx.exit(1)


@click.command("compile")
@_PATH
@_ENV
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the compiled JSON here instead of standard output.",
)
def compile_cmd(path: Path, env: str | None, output: Path | None) -> None:
    """Compile the manifests under PATH into canonical JSON with a content hash."""
    config = manifests.compile_path(path, env=env)
    data = config.to_json_bytes()
    if output is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    click.echo(f"wrote {output} ({config.content_hash})", err=True)


@click.command("schema")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the JSON Schemas into this directory.",
)
@click.option(
    "--check",
    "check",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Exit 1 when the JSON Schemas in this directory are missing or out of date.",
)
@click.pass_context
def schema_cmd(ctx: click.Context, out: Path | None, check: Path | None) -> None:
    """Write (--out) or verify (--check) the JSON Schemas of the manifest kinds."""
    # building the pydantic manifest models takes ~50 ms: not at every command's start
    from gwconfig.manifests.jsonschema import stale_schemas, write_schemas

    if out is None and check is None:
        raise click.UsageError("give --out DIR to write the schemas or --check DIR to verify them")
    if out is not None:
        for written in write_schemas(out):
            click.echo(f"wrote {written}")
    if check is not None:
        stale = stale_schemas(check)
        if stale:
            for name in stale:
                click.echo(f"{check / name}: out of date", err=True)
            click.echo(f"  hint: run 'gwconfig schema --out {check}'", err=True)
            ctx.exit(1)
        click.echo(f"ok: schemas in {check} are up to date")
