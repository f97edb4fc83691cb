"""The providers of the REST API (``/providers`` and ``/providers/{id}``); their models, API
keys and connection parameters are in :mod:`gwconfig.server.rest.children`, and
:mod:`gwconfig.server.rest.router` puts the parts together.

Shapes are the migration guide's dicts (:mod:`gwconfig.seed.service`); secrets are never
returned (API keys and sensitive parameters are masked, fingerprints shortened). Writes go
through the audited :class:`~gwconfig.seed.service.ProviderService` with the token's name as
the actor, so the next ``gwconfig plan`` shows them as drift. Every resource has an ETag; PUT
and DELETE honour ``If-Match`` (see :mod:`gwconfig.server.rest.etags`).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from gwconfig.db import columns as col
from gwconfig.db import reads
from gwconfig.seed.service import ProviderService
from gwconfig.server.auth import Caller
from gwconfig.server.problems import ProblemError
from gwconfig.server.rest.access import (
    IfMatch,
    ProviderId,
    Read,
    Reading,
    Write,
    Writing,
    cached_provider,
    page_of_providers,
    provider_path,
    read_provider,
    reader,
)
from gwconfig.server.rest.errors import (
    READ_RESPONSES,
    WRITE_RESPONSES,
    DepthLimitedRoute,
    not_found,
    translated,
)
from gwconfig.server.rest.etags import json_response, not_modified_etag
from gwconfig.server.rest.paging import Cursor, Limit, decode_cursor, paged
from gwconfig.server.rest.schemas import (
    Deleted,
    ProviderDetail,
    ProviderFields,
    ProviderIn,
    ProviderPage,
)

router = APIRouter(tags=["providers"], route_class=DepthLimitedRoute)


def _provider_write(
    w: Writing, pid: str, if_match: str | None, action: Callable[[ProviderService], object]
) -> None:
    """Run ``action`` on provider ``pid``, locked and checked against ``If-Match``."""
    current = lambda: read_provider(w.session, pid)  # noqa: E731
    w.locked(pid, current, if_match, f"provider {pid!r}", action)


# -- routes ------------------------------------------------------------------------------------


@router.get("/providers", response_model=ProviderPage, responses=READ_RESPONSES)
def list_providers(
    limit: int = Limit,
    cursor: str | None = Cursor,
    tag: str | None = Query(None, max_length=col.IDENT, description="Only providers with it."),
    r: Reading = Read,
) -> Response:
    """Providers (without children) ordered by id, a page at a time; ``next`` links on."""
    after = decode_cursor(cursor, str)
    items, last = translated(lambda: page_of_providers(r.session, after, limit, tag))
    return paged(r.request, items, last, limit, **({"tag": tag} if tag else {}))


@router.post(
    "/providers", status_code=201, response_model=ProviderDetail, responses=WRITE_RESPONSES
)
def create_provider(body: ProviderIn, w: Writing = Write) -> Response:
    """Create a provider with nested models, API key(s) and connection parameters."""
    data = body.model_dump(exclude_unset=True)
    w.run(lambda service: service.create_provider(data))
    pid = body.provider_id
    created = read_provider(w.session, pid)
    return json_response(created, status=201, headers={"Location": provider_path(w.request, pid)})


@router.get("/providers/{provider_id}", response_model=ProviderDetail, responses=READ_RESPONSES)
async def get_provider(
    request: Request,
    provider_id: str = ProviderId,
    _caller: Caller = Depends(reader),
) -> Response:
    """One provider with its models, API keys (masked) and connection parameters."""
    rendered = await cached_provider(request.app, provider_id)
    if rendered.body is None or rendered.etag is None:
        raise not_found(f"provider {provider_id!r}")
    etag = rendered.etag
    return not_modified_etag(request.headers.get("if-none-match"), etag) or Response(
        rendered.body, media_type="application/json", headers={"ETag": etag}
    )


@router.put("/providers/{provider_id}", response_model=ProviderDetail, responses=WRITE_RESPONSES)
def update_provider(
    body: ProviderFields,
    provider_id: str = ProviderId,
    if_match: str | None = IfMatch,
    w: Writing = Write,
) -> Response:
    """Change provider-level fields (those given; dicts merge key by key)."""
    data = body.model_dump(exclude_unset=True)
    _provider_write(w, provider_id, if_match, lambda s: s.update_provider(provider_id, data))
    return json_response(read_provider(w.session, provider_id))


@router.delete("/providers/{provider_id}", response_model=Deleted, responses=WRITE_RESPONSES)
def delete_provider(
    provider_id: str = ProviderId, if_match: str | None = IfMatch, w: Writing = Write
) -> Response:
    """Delete a provider and its children (refused under deletion_protection)."""

    def delete(service: ProviderService) -> bool:
        p = reads.find_provider(w.session, provider_id)
        if p is not None and p.deletion_protection:
            raise ProblemError(
                409,
                "Conflict",
                f"provider {provider_id!r} has deletion_protection; nothing was deleted. Set it "
                'to false first (PUT {"deletion_protection": false}), or remove it from the '
                "manifests",
            )
        return service.delete_provider(provider_id)

    _provider_write(w, provider_id, if_match, delete)
    return json_response({"deleted": True, "provider_id": provider_id}, etag=False)
