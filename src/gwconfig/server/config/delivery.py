"""``GET /api/v1/config``: the runtime configuration, conditional and long-polling.

Scope ``runtime`` (``admin`` passes too). The body is the document of
:mod:`gwconfig.server.config.payload` (secrets as stored ciphertexts) with a strong ``ETag``,
the configuration generation ``"<epoch>.<n>"``. ``If-None-Match`` with the current ETag gives
304 without touching the database (the generation comes from the process's
:class:`~gwconfig.db.watch.GenerationWatcher`); with ``?wait=SECONDS`` (0-60) the 304 is held
until a new generation is committed, and the new document is sent as soon as it is.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gwconfig.db.notify import ConfigGeneration
from gwconfig.db.watch import GenerationWatcher, shared_watcher
from gwconfig.runtime.config.remote import MAX_WAIT
from gwconfig.server.auth import Caller, require
from gwconfig.server.config.payload import PayloadCache
from gwconfig.server.disconnect import unless_gone
from gwconfig.server.state import server_state

router = APIRouter(tags=["config"])

_SCOPES = ("runtime",)
#: the longest If-None-Match header looked at
_MAX_INM = 1024


#: the caller, if its token has scope ``runtime`` (or ``admin``)
runtime_caller = require(*_SCOPES)


async def app_watcher(app: Starlette) -> GenerationWatcher:
    """The generation watcher of the app's database (started on first use, in a thread)."""
    watcher: GenerationWatcher | None = getattr(app.state, "config_watcher", None)
    if watcher is None:
        watcher = await run_in_threadpool(shared_watcher, server_state(app).database.engine)
        app.state.config_watcher = watcher
    return watcher


def _cache(app: Starlette) -> PayloadCache:
    cache: PayloadCache | None = getattr(app.state, "config_cache", None)
    if cache is None:
        cache = app.state.config_cache = PayloadCache(server_state(app).database.engine)
    return cache


def served_generation(app: Starlette) -> tuple[ConfigGeneration | None, int | None] | None:
    """``(generation, revision)`` of the last document this process built (None: none yet)."""
    cache: PayloadCache | None = getattr(app.state, "config_cache", None)
    payload = cache.latest if cache is not None else None
    return None if payload is None else (payload.generation, payload.revision)


def _known(header: str | None) -> list[ConfigGeneration]:
    """The generations an ``If-None-Match`` header names (weak or strong, comma-separated)."""
    if not header or len(header) > _MAX_INM:
        return []
    out = []
    for part in header.split(","):
        part = part.strip().removeprefix("W/")
        gen = ConfigGeneration.parse(part) if part.startswith('"') else None
        if gen is not None:
            out.append(gen)
    return out


def _not_modified(gen: ConfigGeneration) -> Response:
    return Response(status_code=304, headers={"ETag": gen.etag, "Cache-Control": "no-cache"})


async def _wait(
    request: Request, watcher: GenerationWatcher, current: ConfigGeneration, wait: float
) -> ConfigGeneration | None:
    """The new generation, or ``current`` after ``wait`` seconds or once the client is gone."""
    change = await unless_gone(watcher.wait_for_change(current, wait), request.receive)
    return current if change.cancelled() else change.result()


@router.get(
    "/config",
    summary="The runtime configuration (secrets encrypted); 304 and long-poll on its ETag",
    responses={
        200: {
            "description": "the configuration document (see docs/runtime.md)",
            "content": {"application/json": {}},
        },
        304: {"description": "unchanged: the If-None-Match ETag is the current generation"},
    },
)
async def get_config(
    request: Request,
    wait: float = Query(0.0, ge=0.0, le=MAX_WAIT, description="hold a 304 up to this many seconds"),
    _caller: Caller = Depends(runtime_caller),
) -> Response:
    """The configuration a runtime needs, or 304 when the caller has it already."""
    app = request.app
    watcher = await app_watcher(app)
    known = _known(request.headers.get("if-none-match"))
    current = watcher.current_generation
    if current is not None and current in known:
        if wait > 0:
            current = await _wait(request, watcher, current, wait)
        if current is None or current in known:
            return _not_modified(known[0] if current is None else current)
    payload = await run_in_threadpool(_cache(app).get, current)
    if payload.generation is not None and payload.generation in known:
        return _not_modified(payload.generation)
    headers = {"ETag": payload.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if payload.revision is not None:
        headers["X-Gwconfig-Revision"] = str(payload.revision)
    body = payload.body
    if payload.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = payload.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)
