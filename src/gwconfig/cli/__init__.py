"""The ``gwconfig`` command line: a thin adapter over the core (see STYLE.md).

Subcommands live in sibling modules and are imported only when invoked, so ``gwconfig validate``
never pays for SQLAlchemy or httpx. Every :class:`~gwconfig.errors.GwconfigError` is translated to
a message and an exit code here, in one place; ``gwconfig --debug`` re-raises instead.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click

from gwconfig.errors import GwconfigError, ManifestError, MissingExtraError

# command name -> (module under gwconfig.cli, attribute)
_COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("frontend", "validate_cmd"),
    "compile": ("frontend", "compile_cmd"),
    "schema": ("frontend", "schema_cmd"),
    "db": ("database", "db_group"),
    "keys": ("database", "keys_group"),
    "plan": ("reconcile", "plan_cmd"),
    "apply": ("reconcile", "apply_cmd"),
    "history": ("reconcile", "history_cmd"),
    "show-revision": ("reconcile", "show_revision_cmd"),
    "rollback": ("reconcile", "rollback_cmd"),
    "seal-keygen": ("sealing", "seal_keygen_cmd"),
    "seal": ("sealing", "seal_cmd"),
    "reseal": ("sealing", "reseal_cmd"),
    "generate": ("runtime", "generate_cmd"),
    "dump": ("adopt", "dump_cmd"),
    "health": ("health", "health_cmd"),
    "serve": ("serving", "serve_cmd"),
    "tokens": ("serving", "tokens_group"),
    "consumers": ("consumers", "consumers_cmd"),
    "import": ("migrate", "import_cmd"),
    "verify": ("migrate", "verify_cmd"),
}

_F = TypeVar("_F", bound=Callable[..., Any])

#: ``--database-url URL``, shared by every command that opens the gateway database.
database_url_option = click.option(
    "--database-url",
    metavar="URL",
    help="Gateway database (default: GWCONFIG_DATABASE_URL or sqlite:///.gwconfig/gateway.db).",
)

#: ``--config FILE`` (as ``config_file``) of the commands that run the runtime
config_file_option = click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Use a compiled JSON file ('gwconfig compile') instead of the database.",
)
#: ``--environment`` of the commands that pick API keys
environment_option = click.option(
    "--environment", default=None, help="API key environment (GWCONFIG_ENVIRONMENT)."
)


def format_option(choices: list[str], help: str) -> Callable[[_F], _F]:
    """``--format`` (as ``fmt``), one of ``choices``, ``text`` by default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="text",
        show_default=True,
        help=help,
    )


def lock_timeout_option(help: str) -> Callable[[_F], _F]:
    """``--lock-timeout SECONDS``: how long to wait for the apply lock (60 by default)."""
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help=help,
    )


def with_options(options: list[Callable[[Any], Any]]) -> Callable[[_F], _F]:
    """Apply a list of click options to a command, in the list's order (first option first)."""

    def wrap(f: _F) -> _F:
        for option in reversed(options):
            f = option(f)
        return f

    return wrap


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        name = f"gwconfig.cli.{target[0]}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # command group not installed in this build
            if exc.name == name:
                return None
            raise
        cmd: click.Command = getattr(module, target[1])
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GwconfigError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            report_error(exc)
            ctx.exit(exc.exit_code)


#: optional extra -> the modules it installs (``pyproject.toml``'s optional dependencies)
_EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "starlette", "uvicorn", "prometheus_client"),
    "redis": ("redis", "hiredis"),
}


def require_extra(command: str, extra: str) -> None:
    """Raise :class:`~gwconfig.errors.MissingExtraError` naming ``extra`` when one of its
    modules cannot be imported (``command`` is the subcommand that needs it)."""
    for module in _EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtraError(
                f"gwconfig {command} needs the '{extra}' extra: pip install 'gwconfig[{extra}]'",
                hint=f"{exc.name or module} cannot be imported",
            ) from None


def report_error(exc: Exception) -> None:
    """Print a gwconfig error as ``error: message`` (+ hint) on stderr."""
    if isinstance(exc, ManifestError) and exc.diagnostics:
        for d in exc.diagnostics:
            click.echo(d.format(), err=True)
        n = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(f"{n} error{'s' if n != 1 else ''}", err=True)
        return
    click.echo(f"error: {exc}", err=True)
    hint = getattr(exc, "hint", None)
    if hint:
        click.echo(f"  hint: {hint}", err=True)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of friendly errors.")
@click.version_option(package_name="gwconfig")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """gwconfig: LLM gateway configuration as code (validate, plan, apply, route)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


#: ``main()`` as the process's entry point ends the process itself once the command is done
#: (see :func:`_exit_now`); tests that call ``main()`` in-process can turn this off.
FAST_EXIT = True


def _exit_now(code: object) -> None:
    """End the process at once with ``code``, skipping the interpreter's teardown.

    A plan or apply leaves ~10^6 objects behind; freeing them one by one and tearing down every
    module costs ~0.1 s after the work is done (mypy exits the same way). Exit handlers still
    run and output is flushed first; with other threads alive, the normal exit is kept.
    """
    if threading.active_count() > 1:
        return
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    status = code if isinstance(code, int) else 0 if code is None else 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # a closed pipe, say: let the normal exit report it
        return
    os._exit(status)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; turns unexpected exceptions into a short message."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="gwconfig", standalone_mode=True)
    except SystemExit as exc:
        if argv is None and FAST_EXIT:
            _exit_now(exc.code)
        raise
    except Exception as exc:  # a bug: keep the traceback away from users unless --debug
        if debug:
            raise
        click.echo(
            f"internal error: {type(exc).__name__} (run with 'gwconfig --debug ...' for details)",
            err=True,
        )
        sys.exit(70)
