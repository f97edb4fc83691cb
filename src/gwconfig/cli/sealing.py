"""``gwconfig seal-keygen``, ``seal`` and ``reseal``: adapters over gwconfig.secrets.sealing."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from gwconfig.errors import SealingError
from gwconfig.settings import DEFAULT_MANIFEST_PATH

# The schema's patterns (gwconfig.manifests.model.SLUG_PATTERN and the parameter name's), copied
# so that 'seal' does not import pydantic (~0.25 s); tests/test_cli_sealing.py keeps them equal.
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9_.-]{0,62}[a-z0-9])?$"
PARAM_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
#: an HTTP header name (RFC 9110 token)
HEADER_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,120}$"

# ``gwconfig --help`` imports every command module: sealing (cryptography) is imported inside
# the commands, when they run.


def _check(value: str, pattern: str, what: str) -> str:
    if not re.fullmatch(pattern, value):
        raise click.BadParameter(f"{value!r} is not a valid {what}")
    return value


@click.command("seal-keygen")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory to write NAME.pub and NAME.key into.",
)
@click.option("--name", default="sealing", show_default=True, help="Base name of the key files.")
@click.option("--force", is_flag=True, help="Replace existing key files.")
def seal_keygen_cmd(out_dir: Path, name: str, force: bool) -> None:
    """Create a sealing key pair: NAME.pub (commit it) and NAME.key (0600, for CI only)."""
    from gwconfig.secrets.sealed_files import write_keypair

    result = write_keypair(out_dir, name, force=force)
    click.echo(f"public key:  {result.public_path} (key id {result.key_id})")
    click.echo(f"private key: {result.private_path} (mode 0600)")
    if result.git_root is not None:
        click.echo(
            f"warning: {result.private_path} is inside the git work tree {result.git_root}; "
            "never commit it: move it to CI's secret store and delete it here",
            err=True,
        )
    click.echo(
        f"next: copy {result.public_path.name} to {DEFAULT_MANIFEST_PATH}/sealing.pub and commit "
        f"it; store the content of {result.private_path.name} as the CI secret "
        "GWCONFIG_SEALING_KEY",
        err=True,
    )


@click.command("seal")
@click.option("--provider", "provider_id", required=True, help="provider_id the value is for.")
@click.option("--name", "key_name", default=None, help="API key name (the key's 'name').")
@click.option("--param", "param_name", default=None, help="Sensitive connection parameter name.")
@click.option(
    "--header", "header_name", default=None, help="Credential header name (connection.headers)."
)
@click.option("--environment", default="default", show_default=True, help="Environment.")
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help=f"Public key file [default: {DEFAULT_MANIFEST_PATH}/sealing.pub or the only *.pub there].",
)
def seal_cmd(
    provider_id: str,
    key_name: str | None,
    param_name: str | None,
    header_name: str | None,
    environment: str,
    public_key: Path | None,
) -> None:
    """Seal a secret read from standard input; print the YAML `value:` line to paste.

    \b
    Example:
      pbpaste | gwconfig seal --provider openai --name default --environment prod
    The value only opens for that provider, key (or --param) and environment.
    """
    from gwconfig.secrets.sealed_files import default_public_key, read_secret_text
    from gwconfig.secrets.sealing import describe_scope, load_public_key, seal

    if sum(x is not None for x in (key_name, param_name, header_name)) != 1:
        raise click.UsageError(
            "give exactly one of --name (API key), --param (parameter) or --header (header)"
        )
    if header_name is not None:  # stored as the sensitive parameter header:NAME
        if not re.fullmatch(HEADER_PATTERN, header_name):
            raise click.BadParameter(f"{header_name!r} is not a valid header name")
        if environment != "default":
            raise click.BadParameter("a header has no environment: leave --environment out")
    _check(provider_id, SLUG_PATTERN, "provider id")
    _check(environment, SLUG_PATTERN, "environment")
    if key_name is not None:
        name = _check(key_name, SLUG_PATTERN, "key name")
    elif header_name is not None:
        name = f"param:header:{header_name}"
    else:
        name = "param:" + _check(param_name or "", PARAM_PATTERN, "parameter name")
    key = (
        load_public_key(public_key)
        if public_key
        else default_public_key(Path(DEFAULT_MANIFEST_PATH))
    )
    if sys.stdin.isatty():
        secret = click.prompt("secret", hide_input=True, confirmation_prompt=True, err=True)
    else:
        secret = read_secret_text(sys.stdin.buffer.read())
    if not secret:
        raise SealingError("nothing to seal: standard input was empty")
    scope = (provider_id, name, environment)
    blob = seal(secret, scope, key)
    click.echo(f'value: {{sealed: "{blob}"}}')
    click.echo(f"sealed for {describe_scope(scope)} to key id {key.key_id}", err=True)


@click.command("reseal")
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The new public key to seal every value to.",
)
@click.option("--dry-run", is_flag=True, help="Open and re-seal in memory; write nothing.")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def reseal_cmd(public_key: Path, dry_run: bool, paths: tuple[Path, ...]) -> None:
    """Re-seal every sealed value in PATHS [default: providers.d, environments] to a new key.

    The values are opened with the old private key(s) in GWCONFIG_SEALING_KEY. Only the sealed
    strings change; every other byte of the files stays. Nothing is written if any value fails.
    """
    from gwconfig.secrets.sealed_files import default_reseal_paths, reseal_files
    from gwconfig.secrets.sealing import load_public_key

    if not paths:
        paths = tuple(default_reseal_paths(Path(DEFAULT_MANIFEST_PATH)))
    result = reseal_files(paths, load_public_key(public_key), dry_run=dry_run)
    verb = "would re-seal" if dry_run else "re-sealed"
    click.echo(
        f"{verb} {result.resealed} value{'s' if result.resealed != 1 else ''} in "
        f"{len(result.files)} file{'s' if len(result.files) != 1 else ''}"
        + (f"; {result.unchanged} already sealed to the new key" if result.unchanged else "")
    )
    for f in result.files:
        click.echo(f"  {f}")
