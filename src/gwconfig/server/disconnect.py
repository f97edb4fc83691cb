"""Work that stops when its HTTP client goes away (a long-poll, a streamed answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

_T = TypeVar("_T")


async def disconnected(receive: Receive) -> None:
    """Return when the client has gone away (the request's body is already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_gone(work: Coroutine[Any, Any, _T], receive: Receive) -> asyncio.Task[_T]:
    """Run ``work`` until it ends or the client goes away, whichever comes first; the other is
    cancelled and awaited. The task of ``work``: done, or cancelled when the client left."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(disconnected(receive))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for each in (task, gone):
            each.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)
    return task
