"""The seed's REST API under ``/api/v1``: providers (this module), their models, API keys and
connection parameters (:mod:`gwconfig.server.rest_children`), revisions
(:mod:`gwconfig.server.rest_revisions`).

Shapes are the migration guide's dicts (:mod:`gwconfig.seed.service`); secrets are never
returned (API keys and sensitive parameters are masked, fingerprints shortened). Writes go
through the audited :class:`~gwconfig.seed.service.ProviderService` with the token's name as
the actor, so the next ``gwconfig plan`` shows them as drift. Every resource has an ETag; PUT
and DELETE honour ``If-Match`` (see :mod:`gwconfig.server.rest_support`). Include ``router``
with the prefix ``/api/v1``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from gwconfig.db import columns as col
from gwconfig.db.models import Provider
from gwconfig.seed.service import ProviderService
from gwconfig.server import rest_children, rest_revisions
from gwconfig.server.auth import Caller
from gwconfig.server.problems import ProblemError
from gwconfig.server.rest_access import (
    IfMatch,
    ProviderId,
    cached_provider,
    locked_write,
    page_of_providers,
    provider_path,
    read_provider,
    service_for,
)
from gwconfig.server.rest_schemas import (
    Deleted,
    ProviderDetail,
    ProviderFields,
    ProviderIn,
    ProviderPage,
)
from gwconfig.server.rest_support import (
    READ_RESPONSES,
    WRITE_RESPONSES,
    Cursor,
    Limit,
    db_session,
    decode_cursor,
    json_response,
    not_found,
    not_modified_etag,
    paged,
    reader,
    translated,
    writer,
)

router = APIRouter(tags=["providers"])


def _provider_write(
    request: Request,
    session: Session,
    caller: Caller,
    pid: str,
    if_match: str | None,
    action: Callable[[ProviderService], object],
) -> None:
    """Run ``action`` on provider ``pid``, locked and checked against ``If-Match``."""
    current = lambda: read_provider(session, pid)  # noqa: E731
    locked_write(request, session, caller, pid, current, if_match, f"provider {pid!r}", action)


# -- routes ------------------------------------------------------------------------------------


@router.get("/providers", response_model=ProviderPage, responses=READ_RESPONSES)
def list_providers(
    request: Request,
    limit: int = Limit,
    cursor: str | None = Cursor,
    tag: str | None = Query(None, max_length=col.IDENT, description="Only providers with it."),
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """Providers (without children) ordered by id, a page at a time; ``next`` links on."""
    after = decode_cursor(cursor, str)
    items, last = translated(lambda: page_of_providers(session, after, limit, tag))
    return paged(request, items, last, limit, **({"tag": tag} if tag else {}))


@router.post(
    "/providers", status_code=201, response_model=ProviderDetail, responses=WRITE_RESPONSES
)
def create_provider(
    request: Request,
    body: ProviderIn,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Create a provider with nested models, API key(s) and connection parameters."""
    data = body.model_dump(exclude_unset=True)
    service = translated(lambda: service_for(request, session, caller))
    translated(lambda: service.create_provider(data))
    pid = body.provider_id
    created = read_provider(session, pid)
    return json_response(created, status=201, headers={"Location": provider_path(request, pid)})


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
    request: Request,
    body: ProviderFields,
    provider_id: str = ProviderId,
    if_match: str | None = IfMatch,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Change provider-level fields (those given; dicts merge key by key)."""
    data = body.model_dump(exclude_unset=True)
    update = lambda service: service.update_provider(provider_id, data)  # noqa: E731
    _provider_write(request, session, caller, provider_id, if_match, update)
    return json_response(read_provider(session, provider_id))


@router.delete("/providers/{provider_id}", response_model=Deleted, responses=WRITE_RESPONSES)
def delete_provider(
    request: Request,
    provider_id: str = ProviderId,
    if_match: str | None = IfMatch,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a provider and its children (refused under deletion_protection)."""
    what = f"provider {provider_id!r}"

    def delete(service: ProviderService) -> bool:
        p = session.get(Provider, provider_id)
        if p is not None and p.deletion_protection:
            raise ProblemError(
                409,
                "Conflict",
                f"{what} has deletion_protection; nothing was deleted. Set it to false first "
                '(PUT {"deletion_protection": false}), or remove it from the manifests',
            )
        return service.delete_provider(provider_id)

    _provider_write(request, session, caller, provider_id, if_match, delete)
    return json_response({"deleted": True, "provider_id": provider_id}, etag=False)


router.include_router(rest_children.router)
router.include_router(rest_revisions.router)
