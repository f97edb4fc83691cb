"""A streamed answer from an OpenAI-shaped upstream reaches an OpenAI client as the upstream
sent it, only ``model`` rewritten: every field (known or not), the role, finish and usage
chunks, then ``[DONE]``; the usage chunk only when the client asked; the usage is recorded; a
secret the upstream echoes in a chunk is scrubbed all the same."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from gateways import Gateway, GatewayFor
from raw_upstream import RawUpstream, Request, sse_answer

UPSTREAM_MODEL = "gpt-ok-2026-01-01"
USAGE = {
    "prompt_tokens": 7,
    "completion_tokens": 3,
    "total_tokens": 10,
    "prompt_tokens_details": {"cached_tokens": 2},
}


def event(payload: dict[str, Any]) -> bytes:
    """One event as OpenAI writes it (compact JSON, ``model`` fourth)."""
    head = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": UPSTREAM_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_up",
    }
    body = json.dumps({**head, **payload}, separators=(",", ":"))
    return f"data: {body}\n\n".encode()


def delta(d: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}
    return event({"choices": [choice], "usage": None, "obfuscation": "aBc"})


def events(words: list[str]) -> list[bytes]:
    """The upstream's stream: role, the words, finish, usage (``[DONE]`` added on sending)."""
    out = [delta({"role": "assistant", "content": "", "refusal": None})]
    out += [delta({"content": w}) for w in words]
    out.append(delta({}, "stop"))
    out.append(event({"choices": [], "usage": USAGE}))
    return out


async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
    """The stream; for ``leak:json`` a word that is the key the gateway sent."""
    body = request.json()
    words = ["Hello", " there"]
    if body["model"] == "leak:json":
        words.append(" key=" + request.headers["authorization"].removeprefix("Bearer "))
    writer.write(sse_answer([*events(words), b"data: [DONE]\n\n"]))


@pytest.fixture
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(answer).thread() as server:
        yield server


@pytest.fixture
def gateway(sqlite_url: str, gateway_for: GatewayFor, upstream: RawUpstream) -> Iterator[Gateway]:
    with gateway_for(sqlite_url, upstream) as served:
        yield served


def post(gateway: Gateway, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        gateway.served.base_url + "/v1/chat/completions",
        json={**body, **extra},
        headers={"Authorization": f"Bearer {gateway.token}"},
        timeout=60,
    )


def relayed(model: str, chunks: list[bytes]) -> bytes:
    """``chunks`` as the client gets them: ``model`` rewritten, then ``[DONE]``."""
    old, new = f'"model":"{UPSTREAM_MODEL}"', f'"model":"{model}"'
    return b"".join(c.replace(old.encode(), new.encode()) for c in chunks) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("asked", [True, False])
def test_the_upstream_events_are_relayed_as_sent_only_model_rewritten(
    gateway: Gateway, upstream: RawUpstream, asked: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if asked else {}
    resp = post(gateway, "main", **options)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    sent = events(["Hello", " there"])
    expected = sent if asked else sent[:-1]  # the usage chunk only when asked
    assert resp.content == relayed("main", expected)
    # the upstream was asked for the usage either way (the gateway records it)
    (request,) = upstream.requests
    assert request.json()["stream_options"] == {"include_usage": True}
    assert request.json()["model"] == "gpt-ok"


def test_a_relayed_stream_is_recorded_with_the_upstream_usage(gateway: Gateway) -> None:
    resp = post(gateway, "main")
    assert resp.status_code == 200
    runtime = gateway.served.state.runtime
    assert runtime is not None and runtime.client.usage is not None
    assert runtime.client.usage.flush()
    engine = create_engine(gateway.url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT token_name, outcome, prompt_tokens, completion_tokens FROM usage_records")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("app", "ok", 7, 3)]


def test_a_secret_echoed_in_a_chunk_is_scrubbed(gateway: Gateway, upstream: RawUpstream) -> None:
    stream = gateway.openai().chat.completions.create(
        model="up/leak:json", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    said = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    key = upstream.requests[0].headers["authorization"].removeprefix("Bearer ")
    assert said == "Hello there key=***"
    assert all(c.model == "up/leak:json" for c in chunks)
    raw = post(gateway, "up/leak:json").content
    assert key.encode() not in raw and key[:8].encode() not in raw
    assert chunks[-1].choices[0].finish_reason == "stop"
