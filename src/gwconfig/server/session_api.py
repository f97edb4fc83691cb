"""``GET /api/v1/whoami``: the caller as the server sees it (any scope; checks a token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from gwconfig.server.auth import Caller, require

router = APIRouter(tags=["session"])


@router.get("/whoami", summary="The token's name, scope and limits (any valid token)")
def whoami(caller: Caller = Depends(require())) -> dict[str, Any]:
    """Name, scope, allowed model patterns and rate limit of the calling token."""
    return {
        "name": caller.name,
        "scope": caller.scope,
        "models": list(caller.models) if caller.models is not None else None,
        "rpm": caller.rpm,
        "consumer": caller.consumer,
    }
