"""Gateways for the shared-limits tests: the manifests (a priced ``mock`` model behind route
``local``) and ``gwconfig serve`` processes started and stopped by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serve_helpers import free_port

#: USD per million tokens of the mock model (a token costs 1 micro-USD in and 2 out)
PRICING = {"currency": "USD", "input_per_1m": 1.0, "output_per_1m": 2.0}


def shared_manifests(reply: str = "one two three", **params: Any) -> list[dict[str, Any]]:
    """Provider ``mock`` (model ``chat``, priced, at most 16 output tokens) and route ``local``."""
    mock = {
        "apiVersion": "gwconfig/v1",
        "kind": "Provider",
        "provider_id": "mock",
        "provider_type": "mock",
        "request_settings": {"cooldown_failures": 1, "cooldown_seconds": 600, "max_retries": 0},
        "models": [
            {"model_id": "chat", "max_tokens": 16, "pricing": PRICING,
             "parameters": {"reply": reply, **params}},
            {"model_id": "flaky", "max_tokens": 16, "pricing": PRICING,
             "parameters": {"reply": "late", "fail_times": 1000}},
        ],
    }  # fmt: skip
    gateway = {
        "apiVersion": "gwconfig/v1",
        "kind": "Gateway",
        "routes": [
            {"name": "local", "targets": [{"model": "mock/chat"}]},
            {"name": "flaky", "targets": [{"model": "mock/flaky"}, {"model": "mock/chat"}]},
        ],
    }
    return [mock, gateway]


class ServeProcess:
    """One ``gwconfig serve`` process (with its workers) on a free port."""

    def __init__(self, args: list[str], env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from gwconfig.cli import main; main()", "serve",
             "--port", str(self.port), "--workers", str(workers), "--no-access-log", *args],
            env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._workers = workers
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        started = 0
        for line in self.proc.stderr:  # drained to the end: a full pipe would stall the server
            self.lines.append(line)
            started += "Application startup complete" in line
            if started == self._workers:
                self._ready.set()
        self._ready.set()

    def wait_ready(self, timeout: float = 120) -> None:
        """Return once every worker said its application started (told by the workers)."""
        assert self._ready.wait(timeout), "".join(self.lines[-20:])
        assert self.proc.poll() is None, "".join(self.lines[-20:])

    def stop(self) -> None:
        """SIGINT, then wait (the process and its workers shut down cleanly)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)


@contextmanager
def serve_processes(
    count: int, args: list[str], env_extra: dict[str, str], tmp_path: Path, workers: int = 2
) -> Iterator[list[ServeProcess]]:
    """``count`` serve processes with ``args``, ready; stopped at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    env.update(env_extra, TMPDIR=str(tmp_path))
    procs: list[ServeProcess] = []
    try:
        for _ in range(count):  # one after the other: their workers' imports do not compete
            procs.append(ServeProcess(args, env, workers))
            procs[-1].wait_ready()
        yield procs
    finally:
        for p in procs:
            p.stop()
