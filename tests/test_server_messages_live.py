"""``/v1/messages`` under way: a client hanging up (mid-stream, or before any answer) cancels
the upstream call as on chat completions, and answered requests leave usage records."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from gated_upstream import GatedUpstream
from gateways import Gateway, GatewayFor

ASK = {"model": "main", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}]}


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


def test_client_hanging_up_mid_stream_cancels_the_upstream_call(
    gated: Gateway, upstream: GatedUpstream
) -> None:
    headers = {"x-api-key": gated.token}
    with (
        httpx.Client(base_url=gated.served.base_url, timeout=60) as http,
        http.stream("POST", "/v1/messages", json={**ASK, "stream": True}, headers=headers) as resp,
    ):
        assert resp.status_code == 200
        lines = resp.iter_lines()
        assert next(lines) == "event: message_start"
        # the upstream sent its first chunk and now waits for a gate nobody opens
    # the client is gone: gwconfig must close the upstream stream (bound: a safety net)
    assert upstream.closed.wait(60), "the upstream call was not cancelled"
    assert not upstream.finished.is_set()


@pytest.mark.parametrize("stream", [False, True])
def test_client_hanging_up_before_any_answer_cancels_the_upstream_call(
    gated: Gateway, upstream: GatedUpstream, stream: bool
) -> None:
    upstream.hold_first = True  # a stream's first chunk waits for the gate too
    body = json.dumps({**ASK, "stream": stream})
    host, port = gated.served.base_url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\n"
        f"x-api-key: {gated.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(request.encode())
        assert upstream.wait_arrived(1)  # the upstream holds the call; nothing was answered
    assert upstream.closed.wait(60), "the upstream call was not cancelled"
    assert not upstream.finished.is_set()


def test_answered_messages_leave_usage_records_naming_the_token(plain: Gateway) -> None:
    headers = {"x-api-key": plain.token}
    with httpx.Client(base_url=plain.served.base_url, timeout=30) as http:
        answer = http.post("/v1/messages", json={**ASK, "model": "up/gpt-ok"}, headers=headers)
        assert answer.status_code == 200 and answer.headers["x-gwconfig-provider"] == "up"
        assert answer.headers["x-gwconfig-attempts"] == "1"
        streamed = http.post(
            "/v1/messages", json={**ASK, "model": "up/gpt-ok", "stream": True}, headers=headers
        )
        assert streamed.text.rstrip().endswith('data: {"type":"message_stop"}')
    runtime = plain.served.state.runtime
    assert runtime is not None and runtime.client.usage is not None
    assert runtime.client.usage.flush()
    engine = create_engine(plain.url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT token_name, outcome, prompt_tokens, completion_tokens FROM usage_records")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("app", "ok", 1, 2), ("app", "ok", 1, 2)]
