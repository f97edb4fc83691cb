"""``gwconfig serve`` in a test: the app under uvicorn in a thread on a free 127.0.0.1 port.

``with serve_app(ServeSettings(database_url=url)) as server:`` starts :func:`create_app` (the
real app, the real HTTP stack), returns once the server accepts connections, and stops it
cleanly (lifespan shutdown included), failing the test with the reason when it does not
(:class:`threaded_server.ThreadedServer`). ``make_token(url, "admin")`` stores a token of a scope in
that database and returns its text. Other server tests build on these two.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from gwconfig.server.app import create_app
from gwconfig.server.state import ServerState, ServeSettings
from threaded_server import ThreadedServer


@dataclass
class ServedApp:
    """A running server: its base URL, the app and the app's :class:`ServerState`."""

    base_url: str
    app: FastAPI

    @property
    def state(self) -> ServerState:
        """``app.state.gw``."""
        state: ServerState = self.app.state.gw
        return state

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client on the server (with ``Authorization: Bearer token`` when given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers started in another process)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_app(
    settings: ServeSettings | str, *, prepare: Callable[[FastAPI], None] | None = None
) -> Iterator[ServedApp]:
    """Serve ``create_app(settings)`` (or settings for the database URL given) on loopback.

    ``prepare(app)`` runs before the server starts (a test adds its own routes there).
    """
    if isinstance(settings, str):
        settings = ServeSettings(database_url=settings)
    app = create_app(settings)
    if prepare is not None:
        prepare(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    server = ThreadedServer(config, sock, name=f"gwconfig serve on port {port}")
    try:
        # told by the server itself; the bound only keeps a broken start from hanging
        server.start(60)
        yield ServedApp(base_url=f"http://127.0.0.1:{port}", app=app)
    finally:
        try:
            server.stop()  # fails the test when the server does not stop cleanly
        finally:
            sock.close()
            app.state.gw.close()


def make_token(
    database_url: str,
    scope: str = "admin",
    name: str | None = None,
    **options: Any,
) -> str:
    """Store a token of ``scope`` (named ``name`` or a random name) and return its text."""
    from gwconfig.db.session import open_database
    from gwconfig.db.tokens import create_token

    db = open_database(database_url, upgrade=True)
    try:
        token, _record = create_token(
            db, name or f"t-{scope}-{uuid.uuid4().hex[:8]}", scope, **options
        )
    finally:
        db.dispose()
    return token
