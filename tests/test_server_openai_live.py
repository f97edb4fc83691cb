"""``gwconfig serve`` under way: a client hanging up mid-stream, a reload while requests run,
``/metrics`` after known traffic (one process, and ``--workers 2`` adding up both workers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from builders import write_manifests
from gated_upstream import GatedUpstream
from gateways import Gateway, GatewayFor, manifests
from gwconfig.db.session import open_database
from reconcile_helpers import apply
from serve_helpers import free_port, make_token


@pytest.fixture
def upstream() -> Iterator[GatedUpstream]:
    server = GatedUpstream().start()
    yield server
    server.release()
    server.stop()


@pytest.fixture
def gated(sqlite_url: str, gateway_for: GatewayFor, upstream: GatedUpstream) -> Iterator[Gateway]:
    with gateway_for(sqlite_url, upstream) as served:
        yield served


@pytest.fixture
def plain(sqlite_url: str, gateway_for: GatewayFor, module_server: Any) -> Iterator[Gateway]:
    with gateway_for(sqlite_url, module_server) as served:
        yield served


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` of a Prometheus exposition, by its sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_client_hanging_up_mid_stream_cancels_the_upstream_call(
    gated: Gateway, upstream: GatedUpstream
) -> None:
    body = {"model": "main", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    headers = {"Authorization": f"Bearer {gated.token}"}
    with (
        httpx.Client(base_url=gated.served.base_url, timeout=60) as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        lines = resp.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert '"first "' in first  # the upstream's first chunk, relayed
        # the upstream sent its first chunk and now waits for a gate nobody opens
    # the client is gone: gwconfig must close the upstream stream (bound: a safety net)
    assert upstream.closed.wait(60), "the upstream call was not cancelled"
    assert not upstream.finished.is_set()


@pytest.mark.parametrize("stream", [False, True])
def test_client_hanging_up_before_any_answer_cancels_the_upstream_call(
    gated: Gateway, upstream: GatedUpstream, stream: bool
) -> None:
    upstream.hold_first = True  # a stream's first chunk waits for the gate too
    body = json.dumps(
        {"model": "main", "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    )
    host, port = gated.served.base_url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {gated.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(request.encode())
        assert upstream.wait_arrived(1)  # the upstream holds the call; nothing was answered
    # the client is gone: gwconfig must close the upstream call (bound: a safety net)
    assert upstream.closed.wait(60), "the upstream call was not cancelled"
    assert not upstream.finished.is_set()
    runtime = gated.served.state.runtime
    assert runtime is not None
    deadline = time.monotonic() + 20  # well before the upstream's 30 s timeout

    def gone() -> float:
        found = samples(runtime.metrics.render().decode(), "gwconfig_requests_total")
        return sum(v for k, v in found.items() if dict(k).get("status") == "499")

    while gone() != 1:  # counted as a client that went away, not a timeout
        assert time.monotonic() < deadline, "the call was not cancelled by the disconnect"
        time.sleep(0.01)


def test_reload_while_requests_run_loses_none(
    gated: Gateway, upstream: GatedUpstream, module_server: Any
) -> None:
    runtime = gated.served.state.runtime
    assert runtime is not None
    reloaded = threading.Event()
    runtime.on_reload.append(reloaded.set)
    n = 6
    client = gated.openai()
    msg = [{"role": "user", "content": "x"}]

    def call(model: str) -> Any:
        return client.chat.completions.with_raw_response.create(model=model, messages=msg)  # type: ignore[arg-type]

    with ThreadPoolExecutor(n) as pool:
        inflight = [pool.submit(call, "main") for _ in range(n)]
        assert upstream.wait_arrived(n)  # all n are in flight, on revision 1
        # revision 2: route "main" now goes to the mock provider
        docs = manifests(upstream, reply="revision two")
        docs[-1]["routes"][0]["targets"] = [{"model": "mock/chat"}]
        apply(write_manifests(gated.root, *docs), gated.url)
        assert reloaded.wait(60), "the new revision was not loaded"
        after = call("main")
        assert after.parse().choices[0].message.content == "revision two"
        assert after.headers["x-gwconfig-revision"] == "2"
        upstream.release()
        results = [f.result() for f in inflight]
    for raw in results:  # every request in flight finished, on the configuration it began with
        assert raw.parse().choices[0].message.content == "gated answer"
        assert raw.headers["x-gwconfig-revision"] == "1"
        assert raw.headers["x-gwconfig-provider"] == "up"


def test_metrics_count_known_traffic(plain: Gateway) -> None:
    gated = plain
    client = gated.openai()
    msg = [{"role": "user", "content": "x"}]
    for _ in range(3):
        client.chat.completions.create(model="local", messages=msg)  # type: ignore[arg-type]
    for _ in range(2):
        client.chat.completions.create(model="fallback", messages=msg)  # type: ignore[arg-type]
    list(client.chat.completions.create(model="main", messages=msg, stream=True))  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=msg)  # type: ignore[arg-type]
    with httpx.Client(base_url=gated.served.base_url, timeout=30) as http:
        assert http.get("/metrics").status_code == 401
        reader = make_token(gated.url, "read")
        resp = http.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    requests = samples(resp.text, "gwconfig_requests_total")

    def count(**labels: str) -> float:
        return sum(
            v for k, v in requests.items() if all(dict(k).get(n) == x for n, x in labels.items())
        )

    assert count(model="local", provider="mock", status="200", route="local") == 3
    assert count(model="fallback", provider="mock", status="200") == 2
    assert count(model="main", provider="up", status="200") == 1
    assert count(model="", status="404") == 1
    assert sum(samples(resp.text, "gwconfig_fallbacks_total").values()) == 2
    ttft = samples(resp.text, "gwconfig_gen_ai_server_time_to_first_token_seconds_count")
    assert sum(ttft.values()) == 1
    tokens = samples(resp.text, "gwconfig_gen_ai_client_token_usage_total")
    assert sum(v for k, v in tokens.items() if ("token_type", "output") in k) > 0
    assert samples(resp.text, "gwconfig_config_revision") == {(): 1.0}
    overhead = samples(resp.text, "gwconfig_overhead_seconds_count")
    assert sum(overhead.values()) == 4  # answered at the first attempt: 3 local + 1 main


def test_metrics_add_up_over_two_workers(
    sqlite_url: str,
    fernet_key: str,
    tmp_path: Path,
    module_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    env.update(GWCONFIG_ENCRYPTION_KEY=fernet_key, UP_KEY="sk-" + "k" * 30, TMPDIR=str(tmp_path))
    monkeypatch.setenv("GWCONFIG_ENCRYPTION_KEY", fernet_key)
    monkeypatch.setenv("UP_KEY", env["UP_KEY"])
    open_database(sqlite_url, upgrade=True).dispose()
    apply(write_manifests(tmp_path / "m", *manifests(module_server)), sqlite_url)
    token = make_token(sqlite_url, "admin", name="ops")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gwconfig.cli import main; main()", "serve", "--workers",
         "2", "--port", str(port), "--database-url", sqlite_url, "--no-access-log"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        started = 0
        for line in proc.stderr:  # told by the workers themselves
            started += "Application startup complete" in line
            if started == 2:
                break
        assert started == 2
        msg = {"model": "local", "messages": [{"role": "user", "content": "x"}]}
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(20):  # a new connection each: the kernel spreads them over the workers
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                assert http.post("/v1/chat/completions", json=msg, headers=auth).status_code == 200
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            text = http.get("/metrics", headers=auth).text
        requests = samples(text, "gwconfig_requests_total")
        assert sum(requests.values()) == 20
        assert len(list(tmp_path.glob("gwconfig-metrics-*"))) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert list(tmp_path.glob("gwconfig-metrics-*")) == []  # removed when serve stops
