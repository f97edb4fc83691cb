"""``/revisions`` and ``/revisions/{n}``: what ``gwconfig history`` and ``gwconfig show-revision``
show (configurations hold secret references only, never values)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from gwconfig.reconcile.revisions import history_rows, revision_details
from gwconfig.server.rest.access import Read, Reading
from gwconfig.server.rest.errors import READ_RESPONSES, translated
from gwconfig.server.rest.etags import json_response, not_modified
from gwconfig.server.rest.paging import Cursor, Limit, decode_cursor, paged
from gwconfig.server.rest.schemas import RevisionDetail, RevisionPage

router = APIRouter(tags=["revisions"])


@router.get("/revisions", response_model=RevisionPage, responses=READ_RESPONSES)
def list_revisions(limit: int = Limit, cursor: str | None = Cursor, r: Reading = Read) -> Response:
    """Configuration revisions, newest first, a page at a time (``gwconfig history``)."""
    before = decode_cursor(cursor, int)

    def page() -> list[dict[str, Any]]:
        rows = history_rows(r.session.connection(), limit + 1, before)
        return [r.to_json() for r in rows]

    items = translated(page)
    last = items[limit - 1]["number"] if len(items) > limit else None
    return paged(r.request, items[:limit], last, limit)


@router.get("/revisions/{number}", response_model=RevisionDetail, responses=READ_RESPONSES)
def get_revision(
    number: int = Path(ge=0, le=2**31 - 1, description="The revision number."),
    r: Reading = Read,
) -> Response:
    """One revision: metadata, configuration and changes (``gwconfig show-revision``)."""
    body = translated(lambda: revision_details(r.session.connection(), number))
    return not_modified(r.request, body) or json_response(body)
