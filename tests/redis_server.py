"""A private ``redis-server`` for a test: its own free loopback port, no persistence
(``--save '' --appendonly no``), its own temporary directory; stopped only by the fixture
that started it. Tests using it skip with a reason when ``redis-server`` is not installed.

``redis_server`` (a fixture, registered in conftest.py) yields a :class:`RedisServer`;
``stop()`` / ``start()`` let a test take Redis away and bring it back on the same port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_helpers import free_port

READY_SECONDS = 20.0


def _pong(port: int) -> bool:
    """True when a Redis on ``port`` answers PING (one raw RESP round trip)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up (with a password)
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process this test owns."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> RedisServer:
        """Start it (``extra``: more ``redis-server`` options) and wait until it answers."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--protected-mode", "no", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + READY_SECONDS
        while not _pong(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)  # polling a process that is starting, not synchronising a test
        return self

    def stop(self) -> None:
        """Stop the process this object started (only that one)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh ``redis-server`` for this test (skipped when the binary is absent)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="gwconfig-redis-") as root:
        server = RedisServer(binary, Path(root)).start()
        try:
            yield server
        finally:
            server.stop()
