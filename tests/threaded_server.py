"""A uvicorn server in a thread of the test process, whose start and stop are checked.

:meth:`ThreadedServer.start` returns once the server accepts connections and raises when it did
not start (with the exception of the server's thread, if one ended it). :meth:`ThreadedServer.stop`
asks it to exit and waits, with a bound, for its thread; it fails the test, saying why, when the
server is still running after the bound (what it is stuck on: open connections, running requests,
the lifespan shutdown, with the stack of every task of its event loop), when its thread raised,
or when it stopped only by cancelling connections or requests still open after the graceful
shutdown timeout (a stop that took that long passed silently before).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import sys
import threading
import traceback
from typing import Any

import uvicorn


class ServerDidNotStop(AssertionError):
    """A test server did not stop cleanly; the message says what it was doing."""


class ThreadedServer(uvicorn.Server):
    """``uvicorn.Server`` serving ``sock`` in a daemon thread named ``name``."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, name: str) -> None:
        super().__init__(config)
        self.name = name
        self.ready = threading.Event()
        self.error: BaseException | None = None
        #: what the server is doing, for the message of a stop that hangs
        self.stage = "starting"
        #: (connections, request tasks) still open when the graceful shutdown ended
        self.left_open = (0, 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- in the server's thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self.serve(sockets=[self._sock]))
        except BaseException as exc:  # SystemExit too: uvicorn exits on a failed bind
            self.error = exc
        finally:
            self.ready.set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        lifespan_shutdown = self.lifespan.shutdown

        async def shutdown_lifespan() -> None:
            # uvicorn calls this once its connections and tasks are done or the graceful
            # timeout has passed and it cancelled what was left
            state = self.server_state
            self.left_open = (len(state.connections), len(state.tasks))
            self.stage = "the lifespan shutdown (the app's shutdown handlers)"
            await lifespan_shutdown()
            self.stage = "closing its event loop"

        self.lifespan.shutdown = shutdown_lifespan  # type: ignore[method-assign]
        try:
            await super().startup(sockets=sockets)
        finally:
            self.stage = "serving"
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.stage = "waiting for its connections and requests to finish"
        await super().shutdown(sockets=sockets)

    # -- in the test's thread ----------------------------------------------------------------------

    def start(self, bound: float = 60) -> None:
        """Start serving; return once the server accepts connections (``bound``: a safety net)."""
        self._thread.start()
        if not self.ready.wait(bound):
            raise RuntimeError(f"{self.name} did not start within {bound:g} s")
        if self.error is not None or not self.started:
            raise RuntimeError(f"{self.name} did not start") from self.error

    def stop(self, bound: float | None = None) -> None:
        """Ask the server to exit and wait for it; fail with the reason if it does not stop
        cleanly within ``bound`` seconds (default: the graceful shutdown timeout plus 10)."""
        graceful = self.config.timeout_graceful_shutdown or 0
        bound = graceful + 10 if bound is None else bound
        self.should_exit = True
        self._thread.join(bound)
        if self._thread.is_alive():
            self.force_exit = True  # let it go once the test has failed
            raise ServerDidNotStop(
                f"{self.name} did not stop within {bound:g} s of should_exit: "
                f"stuck in {self.stage}; {self._describe()}"
            )
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed in its thread") from self.error
        connections, tasks = self.left_open
        if connections or tasks:
            raise ServerDidNotStop(
                f"{self.name} stopped only by cancelling {connections} connection(s) and "
                f"{tasks} request task(s) still open after the graceful shutdown timeout "
                f"({graceful:g} s): a request or stream the test left running"
            )

    def _describe(self) -> str:
        state = self.server_state
        head = f"{len(state.connections)} open connection(s), {len(state.tasks)} request task(s)"
        loop = self._loop
        if loop is None or loop.is_closed():
            return head
        found: concurrent.futures.Future[list[str]] = concurrent.futures.Future()

        def collect() -> None:
            found.set_result([_task_stack(task) for task in asyncio.all_tasks()])

        loop.call_soon_threadsafe(collect)
        try:
            stacks = found.result(timeout=2)
        except concurrent.futures.TimeoutError:
            frame = sys._current_frames().get(self._thread.ident or -1)
            where = "".join(traceback.format_stack(frame)) if frame is not None else "unknown"
            return f"{head}; its event loop is blocked, in:\n{where}"
        return head + "; its tasks:\n" + "\n".join(stacks)


def _first(obj: Any, *names: str) -> Any:
    return next((v for n in names if (v := getattr(obj, n, None)) is not None), None)


def _task_stack(task: asyncio.Task[Any], depth: int = 6) -> str:
    """Where ``task`` waits: the innermost ``depth`` frames of its chain of awaits."""
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = _first(awaited, "cr_frame", "gi_frame", "ag_frame")
        if frame is not None:
            frames.append(frame)
        awaited = _first(awaited, "cr_await", "gi_yieldfrom", "ag_await")
    summary = traceback.StackSummary.extract((f, f.f_lineno) for f in frames[-depth:])
    return f"- {task.get_name()}:\n" + "".join(summary.format())
