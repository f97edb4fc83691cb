"""``/consumers``: each ``kind: Consumer`` with its spend in the current window, read only
(what ``gwconfig consumers`` prints; scope ``read``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from gwconfig.db.ledger import report
from gwconfig.server.rest.access import Read, Reading
from gwconfig.server.rest.errors import READ_RESPONSES, translated
from gwconfig.server.rest.paging import Cursor, Limit, decode_cursor, paged
from gwconfig.server.rest.schemas import ConsumerPage

router = APIRouter(tags=["consumers"])


@router.get("/consumers", response_model=ConsumerPage, responses=READ_RESPONSES)
def list_consumers(limit: int = Limit, cursor: str | None = Cursor, r: Reading = Read) -> Response:
    """Consumers by name, a page at a time: models, limits, budget, spend and what is left."""
    after = decode_cursor(cursor, str)

    def page() -> list[dict[str, Any]]:
        rows = report(r.session, after=after, limit=limit + 1)
        return [row.to_dict() for row in rows]

    items = translated(page)
    last = items[limit - 1]["name"] if len(items) > limit else None
    return paged(r.request, items[:limit], last, limit)
