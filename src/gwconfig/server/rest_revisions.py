"""``/revisions`` and ``/revisions/{n}``: what ``gwconfig history`` and ``gwconfig show-revision``
show (configurations hold secret references only, never values)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from gwconfig.reconcile.revisions import history_rows, revision_details
from gwconfig.server.auth import Caller
from gwconfig.server.rest_schemas import RevisionDetail, RevisionPage
from gwconfig.server.rest_support import (
    DEFAULT_LIMIT,
    MAX_CURSOR_CHARS,
    MAX_LIMIT,
    READ_RESPONSES,
    db_session,
    decode_cursor,
    encode_cursor,
    json_response,
    not_modified,
    reader,
    translated,
)

router = APIRouter(tags=["revisions"])


@router.get("/revisions", response_model=RevisionPage, responses=READ_RESPONSES)
def list_revisions(
    request: Request,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size."),
    cursor: str | None = Query(None, max_length=MAX_CURSOR_CHARS, description="From 'next'."),
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """Configuration revisions, newest first, a page at a time (``gwconfig history``)."""
    before = decode_cursor(cursor, int)

    def page() -> list[dict[str, Any]]:
        rows = history_rows(session.connection(), limit + 1, before)
        return [r.to_json() for r in rows]

    items = translated(page)
    nxt = None
    headers = {}
    if len(items) > limit:
        items = items[:limit]
        nxt = f"{request.url.path}?limit={limit}&cursor={encode_cursor(items[-1]['number'])}"
        headers["Link"] = f'<{nxt}>; rel="next"'
    body = {"items": items, "next": nxt}
    return not_modified(request, body) or json_response(body, headers=headers)


@router.get("/revisions/{number}", response_model=RevisionDetail, responses=READ_RESPONSES)
def get_revision(
    request: Request,
    number: int = Path(ge=0, le=2**31 - 1, description="The revision number."),
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """One revision: metadata, configuration and changes (``gwconfig show-revision``)."""
    body = translated(lambda: revision_details(session.connection(), number))
    return not_modified(request, body) or json_response(body)
