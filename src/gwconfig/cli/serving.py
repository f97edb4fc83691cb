"""``gwconfig serve`` and ``gwconfig tokens create | list | revoke``: thin adapters."""

from __future__ import annotations

import os
import tempfile

import click
import orjson

from gwconfig import settings as gw_settings
from gwconfig.cli import database_url_option, format_option, require_extra

# ``gwconfig --help`` imports every command module: the server (FastAPI, uvicorn) and the
# database layer (SQLAlchemy) are imported inside the commands, when they run.

#: the most worker processes ``serve`` starts
MAX_WORKERS = 64
#: the longest ``--graceful-timeout`` (seconds)
MAX_GRACEFUL_SECONDS = 600
#: the longest ``--header-timeout`` (seconds) and the largest ``--max-connections``
MAX_HEADER_SECONDS = 600.0
MAX_CONNECTIONS = 100_000
#: the longest a token may be served from its last good lookup while the database is down
MAX_TOKEN_STALE_SECONDS = 7 * 24 * 3600.0


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="TCP port."
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=1,
    show_default=True,
    help="Worker processes (each opens its own database connections).",
)
@click.option("--read-only", is_flag=True, help="Refuse every write (405): manifests own it.")
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1, 64 * 1024 * 1024),
    default=1024 * 1024,
    show_default=True,
    help="Refuse request bodies over this size (413).",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0, 600),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a write of the REST API waits for a running apply, then 503.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="JSON access lines on stderr (no prompt, no token, no secret).",
)
@click.option(
    "--graceful-timeout",
    type=click.IntRange(1, MAX_GRACEFUL_SECONDS),
    default=10,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM, wait this long for requests in flight (held long-polls included), "
    "then cancel them.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0, MAX_HEADER_SECONDS, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Close a connection whose request head is not complete this long after it opened "
    "(or after its previous answer).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, MAX_CONNECTIONS),
    default=1000,
    show_default=True,
    metavar="N",
    help="Open connections per worker; a request past them gets 503 and its connection closes.",
)
@click.option(
    "--token-stale-seconds",
    type=click.FloatRange(0, MAX_TOKEN_STALE_SECONDS),
    default=900.0,
    show_default=True,
    metavar="SECONDS",
    help="While the database is unreachable, a token keeps working this long after its last "
    "good lookup.",
)
@click.option(
    "--public-docs",
    is_flag=True,
    help="Serve /docs, /redoc and /openapi.json without a token (by default any valid token).",
)
@click.option(
    "--redis-url",
    envvar="GWCONFIG_REDIS_URL",
    metavar="URL",
    help="Share request limits, token limits, budgets and cooldowns with every replica through "
    "this Redis (redis://, rediss://, redis+cluster://); without it they are per process "
    "[env: GWCONFIG_REDIS_URL].",
)
@click.option(
    "--redis-timeout-ms",
    type=click.FloatRange(0, 10_000, min_open=True),
    default=50.0,
    show_default=True,
    metavar="MS",
    help="The longest one Redis call may take; then it counts as failed (see the Gateway's "
    "shared_state.on_unavailable).",
)
@database_url_option
def serve_cmd(
    host: str,
    port: int,
    workers: int,
    read_only: bool,
    max_body_bytes: int,
    lock_timeout: float,
    access_log: bool,
    graceful_timeout: int,
    header_timeout: float,
    max_connections: int,
    token_stale_seconds: float,
    public_docs: bool,
    redis_url: str | None,
    redis_timeout_ms: float,
    database_url: str | None,
) -> None:
    """Serve the gateway (FastAPI + uvicorn): the OpenAI-compatible /v1, the REST API under
    /api/v1, /docs, /metrics, /healthz and /readyz."""
    require_extra("serve", "server")  # before importing the server, which needs the extra
    if redis_url:
        require_extra("serve --redis-url", "redis")
    from gwconfig.server.state import ENV_METRICS_DIR, ServeSettings

    settings = ServeSettings(
        database_url=gw_settings.database_url(database_url),
        read_only=read_only,
        max_body_bytes=max_body_bytes,
        public_docs=public_docs,
        header_timeout_seconds=header_timeout,
        max_connections=max_connections,
        lock_timeout=lock_timeout,
        token_stale_seconds=token_stale_seconds,
        workers=workers,
        access_log=access_log,
        redis_url=redis_url or None,
        redis_timeout_ms=redis_timeout_ms,
    )
    assert settings.database_url is not None
    from gwconfig.shared.redis_backend import redacted

    shared = f"redis at {redacted(redis_url)}" if redis_url else "per-process"
    banner = (
        f"serving {gw_settings.mask_url(settings.database_url)} on http://{host}:{port} "
        f"({workers} worker{'s' if workers != 1 else ''}{', read-only' if read_only else ''}; "
        f"shared state: {shared})"
    )
    from gwconfig.server import workers as serving

    def run(app: object) -> None:
        serving.run(
            app, settings, host=host, port=port, workers=workers, graceful_timeout=graceful_timeout
        )

    if workers == 1:
        from gwconfig.server.app import create_app

        # opened before listening: a database not at the head revision stops the command
        # with the CLI's message
        app = create_app(settings)
        click.echo(banner, err=True)
        run(app)
        return
    # the supervisor only checks the schema (same message) and stays small: the workers
    # import and build the app themselves
    from gwconfig.db.session import open_database

    open_database(settings.database_url).dispose()
    click.echo(banner, err=True)
    # the workers add up their metrics in a private directory, removed when serve stops
    with tempfile.TemporaryDirectory(prefix="gwconfig-metrics-") as metrics_dir:
        os.environ[ENV_METRICS_DIR] = metrics_dir
        run(serving.AppFactory(settings))


@click.group("tokens")
def tokens_group() -> None:
    """Bearer tokens of 'gwconfig serve' (the database keeps only their hash)."""


@tokens_group.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["read", "write", "runtime", "invoke", "admin"]),
    required=True,
    help="What the token may do (write implies read; admin may do everything).",
)
@click.option(
    "--expires-in", metavar="DURATION", help="Lifetime: 90m, 12h, 30d, 2w (default: none)."
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="PATTERN",
    help="Allow only models/routes matching PATTERN (fnmatch; repeatable; default: all).",
)
@click.option("--rpm", type=int, help="Requests per minute allowed to this token.")
@click.option(
    "--consumer",
    metavar="NAME",
    help="The kind: Consumer the token belongs to: it inherits its models and limits.",
)
@database_url_option
def create_cmd(
    name: str,
    scope: str,
    expires_in: str | None,
    models: tuple[str, ...],
    rpm: int | None,
    consumer: str | None,
    database_url: str | None,
) -> None:
    """Create token NAME and print it, alone, on standard output (it is shown only once)."""
    from gwconfig.db.session import open_database
    from gwconfig.db.tokens import create_token, parse_duration

    lifetime = parse_duration(expires_in) if expires_in is not None else None
    db = open_database(database_url)
    try:
        token, record = create_token(
            db, name, scope, expires_in=lifetime, models=models or None, rpm=rpm,
            consumer=consumer,
        )  # fmt: skip
    finally:
        db.dispose()
    click.echo(token)
    until = f", expires {record.expires_at:%Y-%m-%dT%H:%MZ}" if record.expires_at else ""
    until += f", consumer {record.consumer}" if record.consumer else ""
    click.echo(
        f"token {name!r} (scope {scope}{until}) created; it is not shown again: store it in "
        "your secret manager",
        err=True,
    )


@tokens_group.command("list")
@format_option(["text", "json"], "Output format.")
@database_url_option
def list_cmd(fmt: str, database_url: str | None) -> None:
    """List the tokens (name, scope, status, dates): never the tokens themselves."""
    from gwconfig.db.session import open_database
    from gwconfig.db.tokens import list_tokens

    db = open_database(database_url)
    try:
        records = list_tokens(db)
    finally:
        db.dispose()
    if fmt == "json":
        click.echo(orjson.dumps([r.to_dict() for r in records], option=orjson.OPT_INDENT_2))
        return
    if not records:
        click.echo("no tokens", err=True)
        return

    def when(value: object) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value is not None else "-"

    click.echo(
        f"{'NAME':<24} {'SCOPE':<8} {'STATUS':<8} {'CREATED':<16} {'EXPIRES':<16} "
        f"{'LAST USED':<16} CONSUMER"
    )
    for r in records:
        click.echo(
            f"{r.name:<24} {r.scope:<8} {r.status():<8} {when(r.created_at):<16} "
            f"{when(r.expires_at):<16} {when(r.last_used_at):<16} {r.consumer or '-'}"
        )


@tokens_group.command("revoke")
@click.argument("name")
@database_url_option
def revoke_cmd(name: str, database_url: str | None) -> None:
    """Revoke token NAME (a running server stops accepting it within a second)."""
    from gwconfig.db.session import open_database
    from gwconfig.db.tokens import revoke_token

    db = open_database(database_url)
    try:
        record = revoke_token(db, name)
    finally:
        db.dispose()
    assert record.revoked_at is not None
    click.echo(f"token {name!r} revoked at {record.revoked_at:%Y-%m-%dT%H:%M:%SZ}")
