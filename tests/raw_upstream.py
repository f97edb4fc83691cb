"""A loopback upstream whose every answer the test writes byte for byte.

:class:`RawUpstream` is an asyncio server on 127.0.0.1 (a free port) that reads each HTTP/1.1
request (head and ``Content-Length`` body, recorded in ``requests``) and hands the request to
``answer(request, writer)``, a coroutine the test gives that writes whatever it wants (and may
wait on events it is given). It counts the connections accepted (``connections``) and sets
``closed`` when a caller hangs up on a request not answered to its end (``arrived`` once a
request is in). :meth:`RawUpstream.thread` runs it in a thread of its own with ``base_url``,
for a gateway served in another thread.
No sleeps: every step is an event.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

Answer = Callable[["Request", asyncio.StreamWriter], Awaitable[None]]


class Request:
    """One request as received: its head lines and its body (JSON when it is)."""

    def __init__(self, head: bytes, body: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.line = lines[0]
        self.headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)
        }
        self.body = body

    def json(self) -> Any:
        """The body, decoded."""
        return json.loads(self.body)


class RawUpstream:
    """An HTTP/1.1 server answering with the bytes ``answer`` writes."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self.connections = 0
        #: set from the server's loop; wait on them from anywhere (``asyncio.to_thread``)
        self.arrived = threading.Event()
        self.closed = threading.Event()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RawUpstream:
        """Listen (in the running event loop)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        buf = bytearray()  # what the caller sent and was not read as a request yet

        async def fill() -> None:
            data = await reader.read(65536)
            if not data:
                raise ConnectionResetError("the caller closed the connection")
            buf.extend(data)

        async def hung_up() -> None:  # returns (raises) when the caller closes its side
            while True:
                await fill()

        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    await fill()
                end = buf.index(b"\r\n\r\n") + 4
                request = Request(bytes(buf[:end]), b"")
                length = int(request.headers.get("content-length", "0"))
                while len(buf) < end + length:
                    await fill()
                request.body = bytes(buf[end : end + length])
                del buf[: end + length]
                self.requests.append(request)
                self.arrived.set()
                answering = asyncio.ensure_future(self.answer(request, writer))
                gone = asyncio.ensure_future(hung_up())
                await asyncio.wait((answering, gone), return_when=asyncio.FIRST_COMPLETED)
                if not answering.done():  # the caller left before the answer ended
                    answering.cancel()
                    await asyncio.gather(answering, return_exceptions=True)
                    self.closed.set()
                    break
                gone.cancel()
                await asyncio.gather(gone, return_exceptions=True)
                if gone.done() and not gone.cancelled():
                    break  # the caller closed right after the answer
                await writer.drain()
                if answering.exception() is not None or writer.is_closing():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    @contextmanager
    def thread(self) -> Iterator[RawUpstream]:
        """Run the server in a thread with its own event loop until the block ends."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()

        worker = threading.Thread(target=run, name="raw upstream", daemon=True)
        worker.start()
        assert ready.wait(30), "the raw upstream did not start"
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            worker.join(30)
            loop.close()


def sse_answer(events: list[bytes], *, chunked: bool = True) -> bytes:
    """An HTTP 200 ``text/event-stream`` answer of ``events`` (each a whole event's bytes)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    if not chunked:
        body = b"".join(events)
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    parts = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(parts) + b"0\r\n\r\n"
