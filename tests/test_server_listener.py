"""``gwconfig serve``'s listener and supervisor as a user runs them (real subprocesses): a
connection slow to send its request head is closed (``--header-timeout``), connections past
``--max-connections`` get 503, and with ``--workers 2`` a worker killed with ``SIGKILL`` leaves
no in-flight count and no ``gwconfig_config_revision{pid=...}`` behind. The requests held in
flight wait at a gated upstream; every wait is an event, a closed socket or a bounded poll."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from builders import write_manifests
from gated_upstream import GatedUpstream
from gateways import manifests
from gwconfig.db.session import open_database
from reconcile_helpers import apply
from serve_helpers import free_port, make_token

pytestmark = pytest.mark.slow  # real serve subprocesses: seconds each

#: the head deadline these servers run with (seconds)
HEAD_TIMEOUT = 0.5
#: the safety net of every wait (a hung server fails the test instead of hanging it)
BOUND = 30
CHAT = {"model": "main", "messages": [{"role": "user", "content": "hold"}]}


@dataclass
class Serve:
    """A ``gwconfig serve`` subprocess: its port, process and an ``admin`` token."""

    port: int
    proc: subprocess.Popen[str]
    token: str
    #: what the server wrote on stderr after the lines read (set once it stopped)
    rest: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def lines_until(self, pattern: str, count: int = 1) -> list[str]:
        """Read the server's stderr until ``count`` lines matched ``pattern`` (told by the
        server itself); the lines that matched."""
        assert self.proc.stderr is not None
        found: list[str] = []
        for line in self.proc.stderr:
            if re.search(pattern, line):
                found.append(line)
                if len(found) == count:
                    return found
        raise AssertionError(f"serve ended before {count} lines matching {pattern!r}")

    def hold(self) -> http.client.HTTPConnection:
        """A connection with a chat completion sent on it (its answer waits at the gate)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=BOUND)
        conn.request("POST", "/v1/chat/completions", json.dumps(CHAT), self.auth)
        return conn

    def metrics(self) -> str:
        with httpx.Client(timeout=BOUND) as client:
            return client.get(f"http://127.0.0.1:{self.port}/metrics", headers=self.auth).text


StartServe = Callable[..., AbstractContextManager[Serve]]


@pytest.fixture
def upstream() -> Iterator[GatedUpstream]:
    """A gated upstream (once released, it answers every request: one per test)."""
    server = GatedUpstream()
    server.start()
    yield server
    if server.arrived:
        server.release()
    server.stop()


@pytest.fixture
def start(tmp_path: Path, upstream: GatedUpstream) -> Iterator[StartServe]:
    """``with start(*options, workers=N) as server``: ``gwconfig serve`` on a database routing
    ``main`` to the gated upstream, once its workers have started; stopped with SIGTERM."""
    from cryptography.fernet import Fernet

    root = tmp_path
    url = f"sqlite:///{root / 'gateway.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    env.update(
        GWCONFIG_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        UP_KEY="sk-" + os.urandom(12).hex(),
        TMPDIR=str(root),
    )
    with pytest.MonkeyPatch.context() as patch:
        for name in ("GWCONFIG_ENCRYPTION_KEY", "UP_KEY"):
            patch.setenv(name, env[name])
        open_database(url, upgrade=True).dispose()
        apply(write_manifests(root / "m", *manifests(upstream)), url)
    token = make_token(url, "admin", name="ops")
    started: list[subprocess.Popen[str]] = []

    @contextmanager
    def serve(*options: str, workers: int = 1) -> Iterator[Serve]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-c", "from gwconfig.cli import main; main()", "serve",
             "--port", str(port), "--workers", str(workers), "--database-url", url,
             "--no-access-log", *options],
            env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(proc)
        served = Serve(port, proc, token)
        try:
            # one process listens once started; several share the socket bound before
            if workers == 1:
                served.lines_until("Uvicorn running on")
            else:
                served.lines_until("Application startup complete", workers)
            yield served
        finally:
            proc.send_signal(signal.SIGTERM)
            served.rest = proc.communicate(timeout=60)[1]

    yield serve
    for proc in started:  # a test that failed before SIGTERM was answered
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes ``sock`` (it sends nothing before); False if it stays open
    for :data:`BOUND` seconds."""
    sock.settimeout(BOUND)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def test_slow_request_heads_are_closed_and_the_bound_answers_503(
    start: StartServe, upstream: GatedUpstream
) -> None:
    options = ("--header-timeout", str(HEAD_TIMEOUT), "--max-connections", "2")
    with start(*options) as server:
        address = ("127.0.0.1", server.port)
        held = [server.hold(), server.hold()]
        assert upstream.wait_arrived(2, BOUND)
        # the two connections held are the bound: a third gets 503 and is closed
        with httpx.Client(timeout=BOUND) as client:
            refused = client.get(f"http://127.0.0.1:{server.port}/healthz")
        assert refused.status_code == 503 and refused.headers["connection"] == "close"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 503 and refused.headers["retry-after"] == "1"
        # half a request head, then nothing: closed after the deadline, over the bound or not
        with socket.create_connection(address, timeout=BOUND) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            assert closed_by_server(slow)
        # the held requests, older than that deadline, were not cut: they answer once released
        upstream.release()
        for conn in held:
            answer = conn.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["choices"]
            conn.close()
        # a connection that sends nothing is closed too
        with socket.create_connection(address, timeout=BOUND) as idle:
            assert closed_by_server(idle)
        # past the bound's connections, requests are served again (closing is asynchronous)
        deadline = time.monotonic() + BOUND
        with httpx.Client(timeout=BOUND) as client:
            while client.get(f"http://127.0.0.1:{server.port}/healthz").status_code != 200:
                assert time.monotonic() < deadline, "the closed connections still count"
    assert "Traceback" not in server.rest and "no complete request head" in server.rest


def test_a_keep_alive_connection_serves_several_requests_within_the_deadline(
    start: StartServe,
) -> None:
    """The deadline is per request head: a connection used for many requests stays open."""
    with start("--header-timeout", str(HEAD_TIMEOUT)) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=BOUND)
        sock_ids = set()
        for _ in range(5):
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            assert answer.status == 200 and answer.read() == b'{"status":"ok"}'
            sock_ids.add(id(conn.sock))
        assert len(sock_ids) == 1  # one connection served them all
        conn.close()


def series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name``, by their sorted labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_worker_leaves_no_live_metrics_behind(
    start: StartServe, upstream: GatedUpstream
) -> None:
    with start(workers=2) as server:
        # one connection: /readyz names the worker, the chat completion then waits on it
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=BOUND)
        conn.request("GET", "/readyz")
        ready = json.loads(conn.getresponse().read())
        assert ready["status"] == "ready"
        victim = ready["pid"]
        conn.request("POST", "/v1/chat/completions", json.dumps(CHAT), server.auth)
        assert upstream.wait_arrived(1, BOUND)
        text = server.metrics()
        assert series(text, "gwconfig_requests_in_flight") == {(): 1.0}
        pids = {dict(k)["pid"] for k in series(text, "gwconfig_config_revision")}
        assert str(victim) in pids and len(pids) == 2

        os.kill(victim, signal.SIGKILL)
        server.lines_until(rf"Child process \[{victim}\] died")
        deadline = time.monotonic() + BOUND  # the supervisor forgets it right after that line
        while True:
            text = server.metrics()
            pids = {dict(k)["pid"] for k in series(text, "gwconfig_config_revision")}
            inflight = series(text, "gwconfig_requests_in_flight")
            if str(victim) not in pids and inflight == {(): 0.0}:
                break
            assert time.monotonic() < deadline, (pids, inflight)
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.getresponse()
        conn.close()
