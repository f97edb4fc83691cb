"""The suite's threaded test servers fail the test, with the reason, when they do not stop cleanly
(instead of costing a bound and passing), and raise what ended their thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from threaded_server import ServerDidNotStop, ThreadedServer


def _server(app: Any, graceful: float = 0.5) -> tuple[ThreadedServer, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="critical", lifespan="on", timeout_graceful_shutdown=graceful
    )
    return ThreadedServer(config, sock, name="probe"), f"http://127.0.0.1:{port}"


def _app(lifespan: Callable[[Starlette], Any] | None = None) -> Starlette:
    async def hold(_request: Request) -> PlainTextResponse:
        await asyncio.Event().wait()  # never set: a request the test leaves running
        return PlainTextResponse("never")

    async def ok(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/hold", hold), Route("/ok", ok)], lifespan=lifespan)


def test_a_clean_stop_passes() -> None:
    server, url = _server(_app())
    server.start()
    assert httpx.get(url + "/ok").text == "ok"
    server.stop()


def test_a_hanging_lifespan_shutdown_fails_and_says_where() -> None:
    release = threading.Event()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        while not release.is_set():
            await asyncio.sleep(0.01)

    server, _ = _server(_app(lifespan))
    server.start()
    try:
        with pytest.raises(ServerDidNotStop) as failed:
            server.stop(bound=1)
    finally:
        release.set()
    message = str(failed.value)
    assert "did not stop within 1 s" in message
    assert "stuck in the lifespan shutdown" in message
    assert "lifespan" in message.split("its tasks:")[1]  # the stack of the waiting task


def test_a_request_left_running_fails_the_stop() -> None:
    server, url = _server(_app())
    server.start()
    client = threading.Thread(
        target=lambda: httpx.get(url + "/hold", timeout=30), daemon=True, name="held"
    )
    client.start()
    arrived = threading.Event()
    while not server.server_state.tasks:
        assert client.is_alive(), "the held request ended"
        arrived.wait(0.01)
    with pytest.raises(ServerDidNotStop, match=r"stopped only by cancelling 1 connection"):
        server.stop()


def test_a_server_that_does_not_start_says_so() -> None:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        raise KeyError("the app refused to start")
        yield

    server, _ = _server(_app(lifespan))
    with pytest.raises(RuntimeError, match="probe did not start"):
        server.start()


def test_what_ends_the_server_thread_is_raised() -> None:
    server, _ = _server("no_such_module_here:app")  # uvicorn exits its thread: SystemExit
    with pytest.raises(RuntimeError, match="probe did not start") as failed:
        server.start()
    assert isinstance(failed.value.__cause__, SystemExit)
