"""``gwconfig plan | apply | history | show-revision | rollback``: thin adapters over reconcile."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from gwconfig.cli import (
    database_url_option,
    format_option,
    lock_timeout_option,
    with_options,
)
from gwconfig.db import columns as col
from gwconfig.entities import entity_label
from gwconfig.errors import PlanError
from gwconfig.reconcile import commands, revisions
from gwconfig.reconcile.commands import WriteOptions
from gwconfig.reconcile.plan import Plan, PlanOptions, render_json, render_markdown, render_text
from gwconfig.words import plural

_selection = [
    click.option("--env", "env", metavar="NAME", help="Environment whose values file to use."),
    click.option("--prune", is_flag=True, help="Delete entities missing from the manifests."),
    click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="PROVIDER_ID",
        help="Limit every change to this provider (repeatable).",
    ),
    click.option(
        "--select-tag",
        "tags",
        multiple=True,
        metavar="TAG",
        help="Limit every change to providers with this tag (repeatable).",
    ),
]
_apply_safety = [
    lock_timeout_option("How long to wait for another apply to finish."),
    click.option(
        "--max-deletes",
        type=click.IntRange(min=0),
        default=20,
        show_default=True,
        metavar="N",
        help="Refuse plans that delete more entities than this.",
    ),
    click.option(
        "--actor",
        metavar="NAME",
        callback=lambda _ctx, _param, value: _fits(value, col.ACTOR),
        help=f"Who applies (audit; at most {col.ACTOR} characters); default from environment.",
    ),
    click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation."),
    format_option(["text", "json"], "Output format."),
]


def _selecting(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``_selection`` options, handed to the command as one ``options: PlanOptions``."""

    @functools.wraps(f)
    def run(
        *args: Any, env: str | None, prune: bool, targets: Any, tags: Any, **kwargs: Any
    ) -> Any:
        options = PlanOptions(env=env, prune=prune, targets=targets, tags=tags)
        return f(*args, options=options, **kwargs)

    return with_options(_selection)(run)


def _writing(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``_apply_safety`` options, handed to the command as ``write``, ``review`` and ``fmt``."""

    @functools.wraps(f)
    def run(
        *args: Any,
        lock_timeout: float,
        max_deletes: int,
        actor: str | None,
        auto_approve: bool,
        fmt: str,
        **kwargs: Any,
    ) -> Any:
        write = WriteOptions(actor, lock_timeout, max_deletes, interactive=not auto_approve)
        return f(*args, write=write, review=_reviewer(fmt, auto_approve), fmt=fmt, **kwargs)

    return with_options(_apply_safety)(run)


def _fits(value: str | None, limit: int) -> str | None:
    """An option value that ends up in a database column: refused when it does not fit."""
    why = None if value is None else col.too_long_chars(value, limit)
    if why is not None:
        raise click.BadParameter(why)
    return value


def use_color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _render(plan: Plan, fmt: str) -> str:
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    return render_text(plan, color=use_color())


@click.command("plan")
@click.argument("path", required=False, type=click.Path())
@database_url_option
@_selecting
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for 'apply --plan'.")
@format_option(["text", "json", "markdown"], "Output format (markdown for a PR comment).")
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 2 with changes, 1 on error."
)
@click.pass_context
def plan_cmd(
    ctx: click.Context,
    path: str | None,
    database_url: str | None,
    options: PlanOptions,
    out: str | None,
    fmt: str,
    detailed_exitcode: bool,
) -> None:
    """Show what apply would change in the gateway database."""
    plan = commands.plan(path, database_url, options)
    if out:
        Path(out).write_bytes(plan.to_json_bytes(saved=True))
    click.echo(_render(plan, fmt), nl=False)
    if out and fmt == "text":
        click.echo(f"Saved the plan to {out}; apply it with: gwconfig apply --plan {out}")
    if detailed_exitcode and plan.has_changes:
        ctx.exit(2)


def _reviewer(fmt: str, auto_approve: bool) -> Callable[[Plan], bool]:
    def review(plan: Plan) -> bool:
        if fmt == "text":
            click.echo(render_text(plan, color=use_color()), nl=False)
        if not plan.effective_changes or auto_approve:
            return True
        if fmt != "text":  # keep stdout for the JSON document; review on stderr
            click.echo(render_text(plan), err=True, nl=False)
        try:
            return click.confirm("Apply these changes?", default=False, err=fmt != "text")
        except click.Abort:
            raise PlanError(
                "no confirmation: nothing was applied",
                hint="answer 'y' at the prompt, or pass --auto-approve in scripts and CI",
            ) from None

    return review


def _report(plan: Plan, result: Any, fmt: str, what: str) -> None:
    applied = result.revision is not None
    if fmt == "json":
        doc = {
            "applied": applied,
            "revision": result.revision,
            "state_hash": result.state_hash,
            "plan": plan.to_json_dict(),
        }
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    if applied:
        s = plan.summary
        click.echo(
            f"{what} complete: revision {result.revision} ({s['add']} added, "
            f"{s['change']} changed, {s['delete']} deleted)."
        )
    elif plan.effective_changes:
        click.echo(f"{what} cancelled; nothing was changed.")


@click.command("apply")
@click.argument("path", required=False, type=click.Path())
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), help="A saved plan.")
@database_url_option
@_selecting
@_writing
def apply_cmd(
    path: str | None,
    plan_file: str | None,
    database_url: str | None,
    options: PlanOptions,
    write: WriteOptions,
    review: Callable[[Plan], bool],
    fmt: str,
) -> None:
    """Apply the manifests (or a saved plan) to the gateway database in one transaction."""
    if plan_file:
        if path or options != PlanOptions():
            raise click.UsageError(
                "--plan applies a saved plan as it was made; PATH, --env, --prune, --target "
                "and --select-tag belong to 'gwconfig plan'"
            )
        plan, result = commands.apply_saved(plan_file, database_url, review=review, write=write)
    else:
        plan, result = commands.apply(path, database_url, options, review=review, write=write)
    _report(plan, result, fmt, "Apply")


@click.command("history")
@database_url_option
@click.option(
    "--limit", type=click.IntRange(min=1, max=col.INTEGER_MAX), default=20, show_default=True
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def history_cmd(database_url: str | None, limit: int, fmt: str) -> None:
    """List applied revisions, newest first."""
    found = revisions.history(database_url, limit)
    if fmt == "json":
        data = [r.to_json() for r in found]
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    if not found:
        click.echo("No revisions yet: nothing has been applied.")
        return
    click.echo(f"{'REV':>5}  {'APPLIED (UTC)':20}  {'ACTOR':16}  {'GIT':10}  CHANGES")
    for r in found:
        s = r.summary
        changes = f"+{s.get('add', 0)} ~{s.get('change', 0)} -{s.get('delete', 0)}"
        if s.get("drift_revision") is not None:
            changes += f" (reverted drift since {s['drift_revision']})"
        click.echo(
            f"{r.number:>5}  {r.created_at or '':20}  {r.actor[:16]:16}  "
            f"{(r.git_sha or '-')[:10]:10}  {changes}"
        )


@click.command("show-revision")
@click.argument("number", type=click.IntRange(min=1, max=col.INTEGER_MAX))
@database_url_option
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def show_revision_cmd(number: int, database_url: str | None, fmt: str) -> None:
    """Show one revision: who, when, what changed, and its configuration (secrets as refs)."""
    info = revisions.show_revision(database_url, number)
    if fmt == "json":
        click.echo(orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
        return
    s = info["summary"]
    click.echo(f"Revision {info['number']}")
    click.echo(f"  applied:  {info['created_at']} by {info['actor']}")
    click.echo(f"  git sha:  {info['git_sha'] or '-'}")
    click.echo(f"  manifests {info['content_hash']}")
    click.echo(f"  state     {info['state_hash']}")
    click.echo(
        f"  changes:  {s.get('add', 0)} added, {s.get('change', 0)} changed, "
        f"{s.get('delete', 0)} deleted"
    )
    config = info.get("config") or {}
    providers = config.get("providers", [])
    models = sum(len(p.get("models", [])) for p in providers)
    routes = len((config.get("gateway") or {}).get("routes", []))
    click.echo(
        f"  config:   {plural(len(providers), 'provider')}, {plural(models, 'model')}, "
        f"{plural(routes, 'route')}"
    )
    symbols = {"create": "+", "update": "~", "delete": "-"}
    for c in info["changes"]:
        label = entity_label(c["entity"], c["key"])
        click.echo(f"    {symbols.get(c['action'], '?')} {c['entity']} {label}")


@click.command("rollback")
@click.argument("revision", type=click.IntRange(min=1, max=col.INTEGER_MAX))
@database_url_option
@_writing
def rollback_cmd(
    revision: int,
    database_url: str | None,
    write: WriteOptions,
    review: Callable[[Plan], bool],
    fmt: str,
) -> None:
    """Return the gateway to a revision's configuration through plan and apply."""
    plan, result = commands.rollback(database_url, revision, review=review, write=write)
    _report(plan, result, fmt, f"Rollback to revision {revision}")
