"""The HTTP listener of ``gwconfig serve``: a request-head deadline and a connection bound.

uvicorn reads a request head for as long as the client takes to send it: a client that opens
connections and trickles a few bytes of a head now and then (slowloris) holds them forever.
:class:`HeadTimeoutProtocol` is uvicorn's httptools protocol with one more timer: a connection
whose request head is not complete ``header_timeout`` seconds after it opened, or after the
answer to its previous request, is closed (idle keep-alive connections still close after
uvicorn's shorter keep-alive timeout). It also bounds the connections of a worker: a request on
a connection past ``max_connections``, or past as many requests in progress, is answered with a
503 problem document and its connection closed (uvicorn's own ``limit_concurrency`` counts the
same way, but answers in plain text and one connection early). :class:`ListenerConfig` carries
both settings.

The configuration is built in the ``serve`` process and sent, pickled, to each worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gwconfig.server.problems import ProblemError, problem_response
from gwconfig.server.state import DEFAULT_HEADER_TIMEOUT, ServeSettings

log = logging.getLogger("uvicorn.error")

__all__ = ["HeadTimeoutProtocol", "ListenerConfig"]


class ListenerConfig(uvicorn.Config):
    """uvicorn's configuration with the listener settings of :class:`ServeSettings`."""

    def __init__(self, app: Any, settings: ServeSettings, **kwargs: Any) -> None:
        super().__init__(app, http=HeadTimeoutProtocol, **kwargs)
        self.header_timeout = settings.header_timeout_seconds
        self.max_connections: int | None = settings.max_connections


async def _over_the_bound(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request past the worker's connection bound."""
    problem = ProblemError(
        503,
        "Service Unavailable",
        "this worker has as many connections open as it takes: try again",
        headers={"Connection": "close", "Retry-After": "1"},
    )
    await problem_response(problem, scope.get("path"))(scope, receive, send)


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that closes a connection slow to send its request head."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout: float = getattr(config, "header_timeout", DEFAULT_HEADER_TIMEOUT)
        self.max_connections: int | None = getattr(config, "max_connections", None)
        self._head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]} " if self.client else ""
            log.info("%sclosed: no complete request head in %gs", client, self.header_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the head deadline of the first request."""
        super().connection_made(transport)
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        """The head arrived in time: the request runs without a deadline of ours (or gets 503
        past the connection bound: this connection is among the open ones)."""
        self._disarm_head_timer()
        bound = self.max_connections
        if bound is None or (len(self.connections) <= bound and len(self.tasks) < bound):
            super().on_headers_complete()
            return
        log.warning("a request past the bound of %d connections was answered 503", bound)
        app, self.app = self.app, _over_the_bound
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_response_complete(self) -> None:
        """Start the head deadline of the next request (unless it is already read, pipelined)."""
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm_head_timer()
        super().connection_lost(exc)
