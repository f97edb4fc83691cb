"""How ``gwconfig serve`` runs uvicorn: one process, or a supervisor and N workers.

With several workers the metrics live in files of a shared directory, one set per worker
(prometheus_client's multiprocess mode). A worker that stops cleanly drops its live gauges
itself; one that dies (``kill -9``, out of memory) cannot, and its in-flight count and its
``gwconfig_config_revision{pid=...}`` would stay in every scrape. :class:`WorkerSupervisor` is
uvicorn's supervisor that, whenever a worker leaves its list (dead and replaced, hung and
killed, or retired), marks that worker's files dead.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from gwconfig.server.app import create_app
from gwconfig.server.connections import ListenerConfig
from gwconfig.server.metrics import process_exited
from gwconfig.server.state import ServeSettings

__all__ = ["AppFactory", "WorkerSupervisor", "run"]

#: uvicorn's exit status when the server never started
STARTUP_FAILURE = 3


@dataclass(frozen=True)
class AppFactory:
    """The app factory of each worker: ``create_app(settings)``, in the worker.

    It reaches the workers pickled in uvicorn's configuration, the settings with it: one value
    for every setting of ``serve``, not one environment variable each.
    """

    settings: ServeSettings

    def __call__(self) -> Any:
        """The worker's app."""
        # imported here: the supervisor never builds an app (FastAPI, the runtime, providers)

        return create_app(self.settings)


class WorkerSupervisor(Multiprocess):
    """uvicorn's multiprocess supervisor that forgets the live metrics of workers gone."""

    def __init__(
        self,
        config: uvicorn.Config,
        sockets: list[Any],
        on_exit: Callable[[int], None] = process_exited,
    ) -> None:
        if "target" in inspect.signature(Multiprocess.__init__).parameters:  # uvicorn < 0.52
            init: Any = super().__init__
            init(config, target=uvicorn.Server(config).run, sockets=sockets)
        else:
            super().__init__(config, sockets)
        self.on_exit = on_exit

    def _forgetting_exits(self, step: Callable[[], None]) -> None:
        before = {p.pid for p in self.processes}
        step()
        # a worker leaves the list only once joined (uvicorn joins before it replaces one)
        for pid in before - {p.pid for p in self.processes}:
            if pid is not None:
                self.on_exit(pid)

    def keep_subprocess_alive(self) -> None:
        """Replace dead or hung workers (uvicorn), then forget the ones replaced."""
        self._forgetting_exits(super().keep_subprocess_alive)

    def handle_signals(self) -> None:
        """Handle queued signals (uvicorn: ``HUP`` restarts, ``TTOU`` retires a worker), then
        forget the workers that left."""
        self._forgetting_exits(super().handle_signals)


def run(
    app: Any,
    settings: ServeSettings,
    *,
    host: str,
    port: int,
    workers: int,
    graceful_timeout: int,
) -> None:
    """Serve ``app`` (an ASGI app, or with ``workers > 1`` an :class:`AppFactory`)
    until a signal stops it; exits with uvicorn's startup-failure status if it never served."""
    config = ListenerConfig(
        app,
        settings,
        host=host,
        port=port,
        workers=workers,
        factory=workers > 1,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout,
    )
    if workers > 1:
        WorkerSupervisor(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    # uvicorn re-raises the SIGINT it handled once it has shut down: that is the normal end
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
