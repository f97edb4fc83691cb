"""The ASGI application of ``gwconfig serve``: :func:`create_app` and the workers' factory.

:func:`create_app` opens the gateway database (refusing one that is not at the head schema
revision, with the CLI's message), builds the :class:`ServerState` every handler reaches with
:func:`~gwconfig.server.state.server_state`, installs the problem+json error handling and the
body limit, and includes the routers of :data:`ROUTERS`. ``gwconfig serve --workers N`` builds
it in each worker from its settings (:class:`gwconfig.server.workers.AppFactory`); ``uvicorn
--factory gwconfig.server.app:app_from_env`` builds the same app from the environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from gwconfig.db.session import open_database
from gwconfig.db.watch import stop_shared_watchers
from gwconfig.errors import GwconfigError
from gwconfig.server import problems, session_api
from gwconfig.server.auth import TokenAuthenticator
from gwconfig.server.auth_gate import AuthenticateFirst
from gwconfig.server.config import delivery
from gwconfig.server.openai import app as openai_app
from gwconfig.server.openai.openapi import add_gateway_paths
from gwconfig.server.rest.cache import TrackWrites
from gwconfig.server.rest.router import router as rest_router
from gwconfig.server.state import ServerState, ServeSettings, server_state

__all__ = ["ROUTERS", "ServeSettings", "ServerState", "app_from_env", "create_app"]

#: (router, prefix) of every part of the API; each part adds its own line here
ROUTERS: list[tuple[APIRouter, str]] = [
    (session_api.router, "/api/v1"),
    (rest_router, "/api/v1"),
    (delivery.router, "/api/v1"),
]

health = APIRouter(tags=["health"])


@health.get("/healthz", summary="Liveness: the process answers (no authentication)")
async def healthz() -> dict[str, str]:
    """Always ``{"status": "ok"}`` while the process serves requests."""
    return {"status": "ok"}


@health.get(
    "/readyz",
    summary="Readiness: the database answers (no authentication)",
    responses={503: {"description": "the database is unreachable"}},
)
def readyz(request: Request) -> Response:
    """``{"status": "ready", "revision": N, "revision_served": M, "generation": G,
    "database": D, "pid": P}`` (N: newest revision, null before any apply or while the database
    does not answer; M: the revision this process routes LLM requests with; G: the configuration
    generation ``GET /api/v1/config`` serves, null before its first request; D: ``up`` or
    ``unavailable``; P: this worker's process id, the ``pid`` label of its metrics), with
    ``shared_state``: ``redis`` or ``per-process`` (where limits and budgets are counted) and,
    with Redis, ``shared_state_breaker``: ``closed``, ``open`` or ``half_open``. While a
    configuration is loaded it stays 200 when the database does not answer (the last good one
    is served); 503 with ``{"status": "unavailable", ...}`` when the database does not answer
    before one is, or ``{"status": "starting", ...}`` before the LLM configuration is loaded."""
    state = server_state(request)
    runtime = state.runtime
    database = "up"
    try:
        revision = state.revision()
    except GwconfigError:
        if runtime is None or not runtime.ready:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "revision": None,
                    "database": "unavailable",
                    "detail": "the database is unreachable",
                },
                status_code=503,
            )
        # the data plane serves the last good configuration: stay in the load balancer
        database, revision = "unavailable", None
    if runtime is None or not runtime.ready:
        return JSONResponse(
            {"status": "starting", "revision": revision, "detail": "configuration not loaded"},
            status_code=503,
        )
    revision_served = runtime.revision(runtime.client.config)
    limits = state.limits
    shared = {"shared_state": limits.mode if limits is not None else "per-process"}
    breaker = limits.breaker_state() if limits is not None else None
    if breaker is not None:
        shared["shared_state_breaker"] = breaker
    served = delivery.served_generation(request.app)
    generation = served[0].token if served is not None and served[0] is not None else None
    return JSONResponse(
        {
            "status": "ready",
            "revision": revision,
            "revision_served": revision_served,
            "generation": generation,
            "database": database,
            "pid": os.getpid(),
            **shared,
        }
    )


class _ShutdownCancels(logging.Filter):
    """uvicorn logs a full traceback for each request it cancels when ``--graceful-timeout``
    runs out (held long-polls, mostly), after one line saying it cancels them: keep one
    line per request, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError):
            record.msg, record.args = "a request in flight was cancelled at shutdown", None
            record.exc_info, record.exc_text, record.levelno = None, None, logging.WARNING
            record.levelname = "WARNING"
        return True


def _quiet_shutdown_cancels() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ShutdownCancels) for f in logger.filters):
        logger.addFilter(_ShutdownCancels())


def _version() -> str:
    try:
        return version("gwconfig")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


class GatewayAPI(FastAPI):
    """The FastAPI app whose OpenAPI document also has the paths the ASGI front answers
    (``/v1/...``, ``/metrics``: :mod:`gwconfig.server.openai.openapi`)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = add_gateway_paths(super().openapi())
        return self.openapi_schema


def create_app(settings: ServeSettings) -> FastAPI:
    """The gwconfig API on the database of ``settings`` (opened now; closed at shutdown).

    Raises :class:`~gwconfig.errors.SchemaVersionError` for a database that is not at the head
    revision (the embedded SQLite default upgrades itself, as in every command).
    """

    database = open_database(settings.database_url)
    _quiet_shutdown_cancels()
    tokens = TokenAuthenticator(
        database,
        cache_seconds=settings.token_cache_seconds,
        stale_seconds=settings.token_stale_seconds,
    )
    state = ServerState(settings, database, tokens)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            stop_shared_watchers()
            state.close()

    app = GatewayAPI(
        title="gwconfig",
        version=_version(),
        description="The LLM gateway's configuration API (see docs/serving.md).",
        lifespan=lifespan,
    )
    app.state.gw = state
    problems.install(app)
    app.add_middleware(TrackWrites, cache=state.provider_cache)
    app.add_middleware(
        AuthenticateFirst,
        tokens=tokens,
        docs_paths=(
            app.docs_url,
            app.redoc_url,
            app.openapi_url,
            app.swagger_ui_oauth2_redirect_url,
        ),
        public_docs=settings.public_docs,
    )
    app.add_middleware(problems.ErrorsAndLimits, max_body_bytes=settings.max_body_bytes)
    app.include_router(health)
    for router, prefix in ROUTERS:
        app.include_router(router, prefix=prefix)
    # outermost: /v1/... and /metrics skip the FastAPI stack
    state.runtime = openai_app.install(app, state)
    return app


def app_from_env() -> FastAPI:
    """The app from the environment (``uvicorn --factory``; see ``ServeSettings.from_env``)."""
    return create_app(ServeSettings.from_env())
