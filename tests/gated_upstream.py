"""A loopback OpenAI-format upstream whose answers the test releases explicitly.

``GatedUpstream`` answers ``POST /v1/chat/completions`` (plain or streamed) only once the test
opens the gate; it counts the requests that have arrived (``wait_arrived(n)``) and, for a
stream, sends the first chunk at once and the rest after the gate opens, noticing when the
caller hangs up (``closed`` is set when the stream's generator is cancelled or closed, or when
the caller hangs up while a request waits for the gate). With ``hold_first`` a stream waits for
the gate before its first chunk too.
No sleeps: every step is an event.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from runtime_servers import FakeLLMServer


class GatedUpstream(FakeLLMServer):
    """A :class:`FakeLLMServer` whose chat completions wait for :meth:`release`."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = 0
        self._arrival = threading.Condition()
        self.closed = threading.Event()
        self.finished = threading.Event()
        self.hold_first = False
        self._gate: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server.config.app = Starlette(
            routes=[Route("/v1/chat/completions", self._gated, methods=["POST"])]
        )
        self._server.config.loaded = False

    def wait_arrived(self, n: int, timeout: float = 60) -> bool:
        """Block until ``n`` requests have arrived (the bound is a safety net only)."""
        with self._arrival:
            return self._arrival.wait_for(lambda: self.arrived >= n, timeout)

    def release(self) -> None:
        """Let every waiting and future request answer."""
        assert self._loop is not None and self._gate is not None
        self._loop.call_soon_threadsafe(self._gate.set)

    async def _held(self, request: Request, gate: asyncio.Event) -> bool:
        """Wait for the gate: True when it opened, False (``closed`` set) when the caller
        hung up first."""

        async def gone() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        opened = asyncio.ensure_future(gate.wait())
        left = asyncio.ensure_future(gone())
        await asyncio.wait((opened, left), return_when=asyncio.FIRST_COMPLETED)
        for task in (opened, left):
            task.cancel()
        if opened.done() and not opened.cancelled():
            return True
        self.closed.set()
        return False

    async def _gated(self, request: Request) -> Response:
        if self._gate is None:
            self._gate = asyncio.Event()
            self._loop = asyncio.get_running_loop()
        body = json.loads(await request.body())
        with self._arrival:
            self.arrived += 1
            self._arrival.notify_all()
        usage = {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
        gate = self._gate
        held = not body.get("stream") or self.hold_first
        if held and not await self._held(request, gate):
            return Response(status_code=499)
        if not body.get("stream"):
            message = {"role": "assistant", "content": "gated answer"}
            return JSONResponse(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": usage,
                }
            )

        def event(payload: dict[str, Any]) -> bytes:
            return f"data: {json.dumps(payload)}\n\n".encode()

        async def events() -> Any:
            try:
                yield event({"choices": [{"index": 0, "delta": {"content": "first "}}]})
                await gate.wait()
                yield event({"choices": [{"index": 0, "delta": {"content": "rest"}}]})
                yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                yield event({"choices": [], "usage": usage})
                yield b"data: [DONE]\n\n"
                self.finished.set()
            finally:
                if not self.finished.is_set():
                    self.closed.set()

        return StreamingResponse(events(), media_type="text/event-stream")
